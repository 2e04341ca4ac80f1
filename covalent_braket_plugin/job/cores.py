"""How much of the instance's cores a packed job's members use, and how many more may start.

With ``covalent_pack_parallel`` at 0 (the default), a packed job runs one member per core of
its instance, and more while the running ones leave cores idle: an electron that waits on a
QPU task, on the network or on a sleep uses almost no CPU, and its core would otherwise stay
billed and unused. Each member is a process group of its own; its CPU time (its processes' and
their reaped children's, from Linux's ``/proc``) is read at each look, every
:data:`LOOK_SECONDS` at most, and its share of a core over the last look is what it uses. A
member not yet looked at counts as a whole core. More members start while the cores the
running ones use, rounded, leave whole cores free, up to :data:`PER_CORE` members a core.

Where ``/proc`` cannot be read (not Linux) the job keeps to one member per core.
"""

from __future__ import annotations

import os
import time

#: The shortest time between two looks at the members' CPU time.
LOOK_SECONDS = 0.1
#: The most members per core at once, however idle they are.
PER_CORE = 8


def group_cpu_seconds(groups: set[int], proc: str = "/proc") -> dict[int, float] | None:
    """Each process group's CPU seconds so far (user and system, its processes' and their
    reaped children's); None when ``proc`` cannot be read."""
    try:
        names = os.listdir(proc)
        ticks = float(os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, AttributeError):
        return None
    used = dict.fromkeys(groups, 0.0)
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", "rb") as stat:
                line = stat.read()
        except OSError:
            continue  # gone since it was listed
        fields = line[line.rfind(b")") + 2 :].split()  # after "pid (comm) "
        try:
            group = int(fields[2])
            if group in used:
                used[group] += sum(int(value) for value in fields[11:15]) / ticks
        except (IndexError, ValueError):
            continue
    return used


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
        self._readable = group_cpu_seconds(set(), proc) is not None
        #: group -> (CPU seconds, when read) at the last look, and its share of a core since.
        self._last: dict[int, tuple[float, float]] = {}
        self._shares: dict[int, float] = {}
        self._looked = 0.0

    def started(self, group: int) -> None:
        """A member's process group began now, with no CPU time yet."""
        self._last[group] = (0.0, time.monotonic())

    def ended(self, group: int) -> None:
        self._last.pop(group, None)
        self._shares.pop(group, None)

    def room(self, running: list[int]) -> int:
        """How many more members may start beside the ``running`` groups."""
        if len(running) < self.cores:
            return self.cores - len(running)
        if not self._readable or len(running) >= self.most:
            return 0
        self._look(running)
        used = sum(self._shares.get(group, 1.0) for group in running)
        return max(0, min(round(self.cores - used), self.most - len(running)))

    def _look(self, running: list[int]) -> None:
        now = time.monotonic()
        if now - self._looked < LOOK_SECONDS:
            return
        self._looked = now
        read = group_cpu_seconds(set(running), self._proc)
        if read is None:
            self._readable = False
            return
        for group in running:
            before, when = self._last.get(group, (0.0, now))
            if now - when >= LOOK_SECONDS:
                self._shares[group] = max(0.0, read[group] - before) / (now - when)
                self._last[group] = (read[group], now)
