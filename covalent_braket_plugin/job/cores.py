"""How much of the instance's cores a packed job's members use, and how many more may start.

With ``covalent_pack_parallel`` at 0 (the default), a packed job runs one member per core of
its instance, and more while the running ones leave cores idle: an electron that waits on a
QPU task, on the network or on a sleep uses almost no CPU, and its core would otherwise stay
billed and unused. Each member's CPU time (its process's and its descendants', and their
reaped children's, from Linux's ``/proc``) is read at each look, every :data:`LOOK_SECONDS`
at most, and its share of a core over the last look is what it uses. A member not yet looked
at counts as the members looked at twice (past the burst of their start: the input read and
unpickled) do, the middle one of them, or as a whole core while there are none. More members
start while the cores the running ones use, rounded, leave whole cores free, up to
:data:`PER_CORE` members a core: members that wait start a core's worth at each turn of the
job's loop once the first ones have shown that they wait; members that compute, one a core.

Where ``/proc`` cannot be read (not Linux) the job keeps to one member per core.
"""

from __future__ import annotations

import os
import time

#: The shortest time between two looks at the members' CPU time.
LOOK_SECONDS = 0.1
#: The most members per core at once, however idle they are.
PER_CORE = 8


def tree_cpu_seconds(roots: set[int], proc: str = "/proc") -> dict[int, float] | None:
    """Each root process's CPU seconds so far with its descendants' (user and system, and
    their reaped children's); None when ``proc`` cannot be read. A descendant is found through
    ``/proc/<pid>/task/<tid>/children``: only the members' own trees are read, not every
    process of the machine."""
    if not os.path.isdir(proc):
        return None
    try:
        ticks = float(os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, AttributeError):
        return None
    used = {}
    for root in roots:
        total, stack, seen = 0, [root], set()
        while stack:
            pid = stack.pop()
            if pid in seen:
                continue
            seen.add(pid)
            stat = _read(f"{proc}/{pid}/stat")
            fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) "
            try:
                total += sum(int(value) for value in fields[11:15])
            except ValueError:
                pass
            try:
                tasks = os.listdir(f"{proc}/{pid}/task")
            except OSError:
                tasks = []
            for task in tasks:
                stack += [
                    int(child) for child in _read(f"{proc}/{pid}/task/{task}/children").split()
                ]
        used[root] = total / ticks
    return used


def _read(path: str) -> bytes:
    """The file's bytes; nothing when it is gone (its process ended) or cannot be read."""
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError:
        return b""


class Gauge:
    """Decides how many more members may start now.

    Args:
        cores: the instance's cores.
        proc: where ``/proc`` is (for tests).
    """

    def __init__(self, cores: int, proc: str = "/proc") -> None:
        self.cores = max(1, cores)
        self.most = self.cores * PER_CORE
        self._proc = proc
        self._readable = tree_cpu_seconds(set(), proc) is not None
        #: member -> (CPU seconds, when read) at the last look, and its share of a core since.
        self._last: dict[int, tuple[float, float]] = {}
        self._shares: dict[int, float] = {}
        #: member -> how many looks measured its share (the first one covers its start).
        self._looks: dict[int, int] = {}
        self._looked = 0.0

    def started(self, member: int) -> None:
        """A member's process began now, with no CPU time yet."""
        self._last[member] = (0.0, time.monotonic())

    def ended(self, member: int) -> None:
        self._last.pop(member, None)
        self._shares.pop(member, None)
        self._looks.pop(member, None)

    def room(self, running: list[int]) -> int:
        """How many more members may start beside the ``running`` members."""
        if len(running) < self.cores:
            return self.cores - len(running)
        if not self._readable or len(running) >= self.most:
            return 0
        self._look(running)
        used = sum(self._use(running))
        return max(0, min(round(self.cores - used), self.most - len(running)))

    def _use(self, running: list[int]) -> list[float]:
        """The share of a core each running member is taken to use (see the module)."""
        settled = sorted(self._shares[m] for m in running if self._looks.get(m, 0) >= 2)
        like_settled = settled[len(settled) // 2] if settled else 1.0  # the middle one
        return [self._shares.get(member, like_settled) for member in running]

    def _look(self, running: list[int]) -> None:
        now = time.monotonic()
        if now - self._looked < LOOK_SECONDS:
            return
        self._looked = now
        read = tree_cpu_seconds(set(running), self._proc)
        if read is None:
            self._readable = False
            return
        for member in running:
            before, when = self._last.get(member, (0.0, now))
            if now - when >= LOOK_SECONDS:
                self._shares[member] = max(0.0, read[member] - before) / (now - when)
                self._last[member] = (read[member], now)
                self._looks[member] = self._looks.get(member, 0) + 1
