"""Job slots: the hybrid jobs of an account stay within its job quotas.

Braket lets an account run a handful of hybrid jobs at once in a Region (the concurrent-jobs
quota, :data:`~covalent_braket_plugin.service.CONCURRENT_JOBS_QUOTA`), and its jobs use only
so many instances of each type (:data:`~covalent_braket_plugin.service.INSTANCE_QUOTAS`);
past either, ``CreateJob`` is refused with ``ServiceQuotaExceededException``. So every
executor of the process shares one :class:`SlotGate` per account and Region, as they share
:mod:`~covalent_braket_plugin.pacing`'s buckets: an electron takes a slot before it uploads
anything, and gives it back once its job is terminal (or whatever else ends it). Slots are
granted oldest first, among the waiting electrons whose instance type has room.

The gate's size is the quota as Service Quotas says (``GetServiceQuota``, read once per
account and Region), else the ``max_concurrent_jobs`` setting; an instance type's, its quota
or Braket's default. Other clients of the account hold slots the gate does not see: when a
``CreateJob`` is refused all the same, the gate counts the slots it lacks as theirs (it
shrinks to the jobs it holds), the refused electron waits again at its old place in the line
with its input and client token, and after a backoff the gate tries one slot more (a probe:
one ``CreateJob``, paced as every other). A job of ours that ends frees its slot for the
next electron at once.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import aws, packing, progress, server_board
from .config import BraketSettings
from .covalent_loader import server_log
from .service import CONCURRENT_JOBS_QUOTA, INSTANCE_QUOTAS, SERVICE_QUOTAS_CODE

#: After a refusal, the gate tries one more slot this soon, then twice as late each time it
#: is refused again (up to :data:`PROBE_MAX_SECONDS`), until a job is created.
PROBE_FIRST_SECONDS = 2.0
PROBE_MAX_SECONDS = 60.0
#: While electrons wait for a slot, the jobs holding slots are looked up at least this often
#: (one ``SearchJobs`` covers them all, well within its quota): a slot is handed on when its
#: job is seen to end, and with the default ``poll_freq`` of 30 s that could add 15 s on
#: average to every round of a sweep, against AWS's minute of job start.
WATCH_SECONDS = 1.0
#: A waiting electron asks whether it was cancelled this often (Covalent's flag).
CANCEL_CHECK_SECONDS = 5.0
#: Where a quota's value comes from when Service Quotas gave it.
FROM_SERVICE_QUOTAS = "Service Quotas"
#: What a caller without the permission to read Service Quotas is told.
NOT_ALLOWED = "not allowed to look: servicequotas:GetServiceQuota"


class WaitCancelled(Exception):
    """The electron was cancelled while it waited for a job slot: it created nothing."""


@dataclass(frozen=True)
class Quota:
    """One job quota of the account in a Region, as the executor knows it."""

    name: str
    #: Service Quotas' code ("" when the executor does not know it).
    code: str
    region: str
    value: int
    #: :data:`FROM_SERVICE_QUOTAS`, or why a default stands in for it.
    source: str
    #: The caller may not read Service Quotas.
    denied: bool = False

    @property
    def read(self) -> bool:
        return self.source == FROM_SERVICE_QUOTAS


def concurrent_jobs_quota(settings: BraketSettings) -> Quota:
    """The hybrid jobs the account may run at once in the job's Region; the
    ``max_concurrent_jobs`` setting when Service Quotas cannot say. Blocking."""
    code, _ = CONCURRENT_JOBS_QUOTA
    return _quota(
        settings,
        "Number of concurrent jobs",
        code,
        settings.max_concurrent_jobs,
        "max_concurrent_jobs",
    )


def instance_quota(settings: BraketSettings) -> Quota:
    """The instances of the ``classical_device`` type the account's jobs may use at once in
    the job's Region; Braket's default when Service Quotas cannot say. Blocking."""
    instance = settings.classical_device
    code, default = INSTANCE_QUOTAS.get(instance, ("", 0))
    name = f"Maximum number of instances of {instance} for jobs"
    return _quota(settings, name, code, default, "Braket's default")


def _quota(settings: BraketSettings, name: str, code: str, default: int, fallback: str) -> Quota:
    region = aws.clients_for(settings).region
    if not code:
        return Quota(name, code, region, default, f"{fallback} (its quota code is not known)")
    try:
        value = aws.service_quota(settings, SERVICE_QUOTAS_CODE, code)
    except aws.AwsError as exc:
        denied = exc.code in aws.DENIED
        why = NOT_ALLOWED if denied else f"Service Quotas could not be read: {exc}"
        return Quota(name, code, region, default, f"{fallback} ({why})", denied)
    return Quota(name, code, region, int(value), FROM_SERVICE_QUOTAS)


@dataclass(eq=False)
class _Waiter:
    """An electron in the gate's line (or holding its slot)."""

    order: int
    task: tuple[str, str]
    instance: str
    loop: asyncio.AbstractEventLoop
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    granted: bool = False
    cancelled: bool = False
    #: What the electron must share with others to run in their job (None: never packed).
    pack_key: Any = None
    pack_max: int = 1
    #: Granted a slot: the waiters taken into its job (a packed job's other members).
    companions: list[_Waiter] = field(default_factory=list)
    #: Taken into another's job: that waiter (it holds the slot).
    leader: _Waiter | None = None
    #: Handed to a running warm job instead (what :func:`SlotGate.hand_over` was given).
    handed: Any = None
    #: The executor's ``cache_dir`` setting: where the slot board shows the waiter.
    cache_dir: str = ""
    #: When it joined the line (epoch seconds).
    since: float = field(default_factory=time.time)


class SlotGate:
    """The job slots of one account in one Region, shared by the process's executors (and
    their event loops: a waiter is woken on its own loop)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.size = CONCURRENT_JOBS_QUOTA[1]
        self.instance_sizes: dict[str, int] = {}
        #: Slots believed taken by the account's other clients (learnt from refusals).
        self.others = 0
        self.others_by_type: Counter[str] = Counter()
        self.held = 0
        self.held_by_type: Counter[str] = Counter()
        self.refusals = 0  # CreateJob refused past a quota (for benchmarks and tests)
        self._waiting: list[_Waiter] = []
        self._lock = threading.RLock()
        self._orders = itertools.count()
        self._backoff = PROBE_FIRST_SECONDS
        self._probe_at = 0.0
        #: Per kind of packed job: the members each takes while its line lasts.
        self._shares: dict[Any, int] = {}
        #: The slot board shows waiters of this gate (it is told when the line changes).
        self._on_board = False

    def resize(self, size: int, instance: str, instance_size: int) -> None:
        """Take the quotas as last read (at least one slot: a quota of 0 is pre-flight's)."""
        with self._lock:
            self.size = max(size, 1)
            self.instance_sizes[instance] = max(instance_size, 1)
            self._grant()

    def enter(
        self,
        task: tuple[str, str],
        instance: str,
        pack_key: Any = None,
        pack_max: int = 1,
        cache_dir: str = "",
    ) -> _Waiter:
        """Join the line (granted at once when there is room and nobody waits before)."""
        waiter = _Waiter(next(self._orders), task, instance, asyncio.get_running_loop())
        waiter.pack_key, waiter.pack_max, waiter.cache_dir = pack_key, pack_max, cache_dir
        with self._lock:
            self._waiting.append(waiter)
            self._grant()
        return waiter

    def board(self) -> dict[str, list[dict[str, Any]]]:
        """The waiting electrons as the slot board shows them, by ``cache_dir`` setting."""
        shown: dict[str, list[dict[str, Any]]] = {}
        with self._lock:
            for ahead, waiter in enumerate(self._waiting):
                shown.setdefault(waiter.cache_dir, []).append(
                    {
                        "dispatch_id": waiter.task[0],
                        "node_id": waiter.task[1],
                        "ahead": ahead,
                        "instance": waiter.instance,
                        "where": self.where,
                        "since": waiter.since,
                    }
                )
        return shown

    def ahead(self, waiter: _Waiter) -> int:
        """How many electrons wait before this one."""
        with self._lock:
            return sum(other.order < waiter.order for other in self._waiting)

    def waiting(self) -> bool:
        """Whether an electron waits here for a slot."""
        with self._lock:
            return bool(self._waiting)

    def in_use(self) -> str:
        with self._lock:
            return f"{self.held} of {self.size - self.others} job slots in use in {self.where}"

    async def wait(self, waiter: _Waiter, cancel_requested: Callable[[], Awaitable[bool]]) -> None:
        """Sleep until the waiter holds a slot.

        Raises:
            WaitCancelled: the electron was cancelled meanwhile (its place is given up).
        """
        try:
            while True:
                waiter.woken.clear()
                timeout = self._settle(waiter)
                if timeout is None:
                    return
                if await aws.set_within(waiter.woken, timeout):
                    continue
                if await cancel_requested():
                    raise WaitCancelled(f"task {':'.join(waiter.task)} was cancelled")
        except BaseException:
            self.withdraw(waiter)
            raise

    def _settle(self, waiter: _Waiter) -> float | None:
        """None once the waiter holds a slot; else how long to sleep (probing when due)."""
        with self._lock:
            if waiter.granted or waiter.leader is not None or waiter.handed is not None:
                return None
            if waiter.cancelled:
                raise WaitCancelled(f"task {':'.join(waiter.task)} was cancelled")
            if not (self.others or self.others_by_type[waiter.instance]):
                return CANCEL_CHECK_SECONDS
            now = time.monotonic()
            if now >= self._probe_at:  # one slot more: the others may have given one back
                self._probe_at = now + self._backoff
                self._probe()
                if waiter.granted:
                    return None
            return min(CANCEL_CHECK_SECONDS, max(self._probe_at - now, 0.05))

    def _probe(self) -> None:
        head = self._waiting[0].instance if self._waiting else ""
        if head and self.others_by_type[head] and not self._room_for_type(head):
            self.others_by_type[head] -= 1
        elif self.others:
            self.others -= 1
        self._grant()

    def hand_over(self, pack_key: Any, job: Any, room: int) -> int:
        """Hand compatible waiters to a running warm job (``job``), as many as a slot's job
        would take (:func:`~covalent_braket_plugin.packing.members_for`), at most ``room``;
        how many."""
        with self._lock:
            same = self._line_of(pack_key)
            if not same or room <= 0:
                return 0
            slots = self.size - self.others
            count = min(room, packing.members_for(len(same), slots, same[0].pack_max))
            for other in same[:count]:
                self._waiting.remove(other)
                other.handed = job
                _wake(other)
            self._grant()
            return count

    def take_late(self, head: _Waiter) -> bool:
        """A slot's holder granted alone is about to create its job: it takes the compatible
        waiters that came meanwhile (a sweep's electrons arrive over a few milliseconds, the
        first ones to free slots), as many as at its grant; whether it took any."""
        with self._lock:
            if not head.granted or head.leader is not None:
                return False
            self._take_along(head)
            self._grant()
            return bool(head.companions)

    def refused(self, waiter: _Waiter, message: str) -> None:
        """``CreateJob`` was refused past a quota: the slots the gate lacks are the other
        clients'; the waiter gives its slot back and waits again at its old place."""
        with self._lock:
            self.refusals += 1
            instance = waiter.instance
            if instance in message:  # the instance type's quota, not the account's
                room = self.instance_sizes.get(instance, self.size) - (
                    self.held_by_type[instance] - 1
                )
                self.others_by_type[instance] = max(self.others_by_type[instance], room)
            else:
                self.others = max(self.others, self.size - (self.held - 1))
            self._probe_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, PROBE_MAX_SECONDS)
            self._give_back(waiter)
            self._waiting.append(waiter)
            self._waiting.sort(key=lambda other: other.order)
            self._grant()

    def created(self) -> None:
        """A job was created: the next refusal backs off from the start."""
        with self._lock:
            self._backoff = PROBE_FIRST_SECONDS

    def release(self, waiter: _Waiter) -> None:
        """The waiter's job is terminal (or it ended otherwise): its slot is the next's."""
        with self._lock:
            if waiter.granted:
                self._give_back(waiter)
                self._grant()

    def withdraw(self, waiter: _Waiter) -> None:
        """The waiter stops waiting; a slot granted meanwhile goes to the next."""
        with self._lock:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
                self._grant()
            self.release(waiter)

    def cancel(self, task: tuple[str, str]) -> bool:
        """Wake the task's waiters as cancelled; whether it had any."""
        with self._lock:
            found = [w for w in self._waiting if w.task == task and not w.granted]
            for waiter in found:
                waiter.cancelled = True
                self._waiting.remove(waiter)
                _wake(waiter)
            self._grant()
        return bool(found)

    def _give_back(self, waiter: _Waiter) -> None:
        waiter.granted = False
        self.held -= 1
        self.held_by_type[waiter.instance] -= 1

    def _room_for_type(self, instance: str) -> bool:
        limit = self.instance_sizes.get(instance, self.size) - self.others_by_type[instance]
        return self.held_by_type[instance] < limit

    def _grant(self) -> None:
        """Slots to the oldest waiters that have room, each with the compatible waiters its
        job takes along; the slot board told when the line changed (lock held)."""
        self._hand_out()
        if self._waiting or self._on_board:
            self._on_board = bool(self._waiting)
            server_board.changed()

    def _hand_out(self) -> None:
        for waiter in list(self._waiting):
            free = self.size - self.others - self.held
            if free <= 0:
                return
            if waiter not in self._waiting or not self._room_for_type(waiter.instance):
                continue  # taken into a job already, or its instance type is full
            self._waiting.remove(waiter)
            waiter.granted = True
            self.held += 1
            self.held_by_type[waiter.instance] += 1
            self._take_along(waiter)
            _wake(waiter)

    def _take_along(self, head: _Waiter) -> None:
        """The compatible waiters behind ``head`` that its job runs too, as the planner
        says (:func:`~covalent_braket_plugin.packing.members_for`); lock held."""
        if head.pack_key is None or head.companions:
            return
        same = self._line_of(head.pack_key)
        count = packing.members_for(len(same) + 1, self.size - self.others, head.pack_max)
        # The share set when this line of electrons began to be handed out holds until it is
        # empty: slots that free one after another take equal shares, none left behind.
        count = max(count, self._shares.get(head.pack_key, 0))
        self._shares[head.pack_key] = count
        for other in same[: count - 1]:
            self._waiting.remove(other)
            other.leader = head
            head.companions.append(other)
            _wake(other)
        if len(same) < count:
            del self._shares[head.pack_key]

    def _line_of(self, pack_key: Any) -> list[_Waiter]:
        """The waiters, oldest first, that may share a job of ``pack_key`` (lock held)."""
        return [other for other in self._waiting if other.pack_key == pack_key]


def _wake(waiter: _Waiter) -> None:
    try:
        waiter.loop.call_soon_threadsafe(waiter.woken.set)
    except RuntimeError:  # its event loop is closed: nobody waits there any more
        pass


class Slot:
    """A job slot held by one electron, from before its upload until its job is terminal."""

    def __init__(self, gate: SlotGate, waiter: _Waiter) -> None:
        self.gate = gate
        self._waiter = waiter

    @property
    def task(self) -> tuple[str, str]:
        return self._waiter.task

    @property
    def companions(self) -> list[tuple[str, str]]:
        """The tasks this slot's job runs beside its holder's (a packed job's other
        members, oldest first); empty for a job of its own."""
        return [other.task for other in self._waiter.companions]

    @property
    def leader(self) -> tuple[str, str] | None:
        """The task whose slot (and job) this electron was taken into; None when it holds a
        slot of its own."""
        leader = self._waiter.leader
        return leader.task if leader is not None else None

    @property
    def members(self) -> list[tuple[str, str]]:
        """Every task of the job this electron runs in, the slot's holder first (one alone)."""
        head = self._waiter.leader or self._waiter
        return [head.task] + [other.task for other in head.companions]

    @property
    def handed(self) -> Any:
        """The running warm job this electron was handed to instead of a slot (None: it
        was not)."""
        return self._waiter.handed

    @property
    def job_key(self) -> object:
        """What names the job this electron runs in, the same for every member of a packed
        job (its holder's place in the line)."""
        return self._waiter.leader or self._waiter

    async def wait_again(
        self, refusal: aws.AwsError, cancel_requested: Callable[[], Awaitable[bool]]
    ) -> None:
        """``CreateJob`` was refused past a job quota: wait for the next free slot.

        Raises:
            WaitCancelled: the electron was cancelled meanwhile.
        """
        self.gate.refused(self._waiter, str(refusal))
        task = self._waiter.task
        server_log.info(
            progress.waiting_line(
                task[0], task[1], self.gate.ahead(self._waiter), self.gate.in_use()
            )
            + f" (CreateJob refused: {refusal})"
        )
        await self.gate.wait(self._waiter, cancel_requested)

    def created(self) -> None:
        self.gate.created()

    def take_late(self) -> bool:
        """Take the compatible electrons that began to wait after this slot was granted (see
        :meth:`SlotGate.take_late`); whether it took any (its :attr:`members` then say which)."""
        return self.gate.take_late(self._waiter)

    def release(self) -> None:
        """Give the slot back, or leave the line if still in it (again: nothing)."""
        self.gate.withdraw(self._waiter)


_lock = threading.Lock()
_gates: dict[tuple[Any, str], SlotGate] = {}
_sized: dict[tuple[Any, ...], tuple[float, tuple[tuple[Any, str], int, int]]] = {}
_reading: dict[tuple[Any, ...], Any] = {}


def gate(account: Any, region: str) -> SlotGate:
    """The process's gate for an account in a Region."""
    with _lock:
        found = _gates.get((account, region))
        if found is None:
            found = _gates[(account, region)] = SlotGate(f"{region} (account {account})")
        return found


def _sizes(settings: BraketSettings) -> tuple[tuple[Any, str], int, int]:
    """(account, Region), the concurrent-jobs quota and the instance type's. Blocking."""
    account = aws.caller_account(settings)[0]
    region = aws.clients_for(settings).region
    return (
        (account, region),
        concurrent_jobs_quota(settings).value,
        instance_quota(settings).value,
    )


async def _sizes_once(settings: BraketSettings) -> tuple[tuple[Any, str], int, int]:
    """:func:`_sizes`, read again once :data:`~covalent_braket_plugin.aws.QUOTA_SECONDS` have
    passed; electrons that come together share one read (a sweep's hundred arrive at once)."""
    key = (aws.client_key(settings), settings.max_concurrent_jobs, settings.classical_device)
    known = _sized.get(key)
    if known is not None and time.monotonic() - known[0] < aws.QUOTA_SECONDS:
        return known[1]
    with _lock:
        reading = _reading.get(key)
        first = reading is None
        if first:
            reading = _reading[key] = aws.io_pool.submit(_sizes, settings)
    if first:  # (outside the lock: a read already done calls back at once, in this thread)
        reading.add_done_callback(lambda done: _read(key, done))
    return await asyncio.wrap_future(reading)


def _read(key: tuple[Any, ...], done: Any) -> None:
    """A read of the quotas ended: its value kept (not an error), and the next read new."""
    with _lock:
        _reading.pop(key, None)
        if not done.cancelled() and done.exception() is None:
            _sized[key] = (time.monotonic(), done.result())


async def take(
    settings: BraketSettings,
    task: tuple[str, str],
    cancel_requested: Callable[[], Awaitable[bool]],
    pack_key: Any = None,
) -> Slot:
    """A job slot for the task (dispatch id, node id), once it is its turn, or a place in the
    job of a compatible electron that got one (``pack_key``: see
    :func:`~covalent_braket_plugin.packing.pack_key`); the server log says when it has to
    wait.

    Raises:
        WaitCancelled: the task was cancelled while it waited.
    """
    where, size, instance_size = await _sizes_once(settings)
    found = gate(*where)
    found.resize(size, settings.classical_device, instance_size)
    waiter = found.enter(
        task, settings.classical_device, pack_key, settings.pack_max, settings.cache_dir
    )
    if not waiter.granted:
        line = progress.waiting_line(task[0], task[1], found.ahead(waiter), found.in_use())
        server_log.info(line)
        await found.wait(waiter, cancel_requested)
    return Slot(found, waiter)


def _board() -> dict[str, list[dict[str, Any]]]:
    """Every gate's waiting electrons, by ``cache_dir`` setting (the slot board's source)."""
    with _lock:
        gates = list(_gates.values())
    shown: dict[str, list[dict[str, Any]]] = {}
    for found in gates:
        for cache_dir, entries in found.board().items():
            shown.setdefault(cache_dir, []).extend(entries)
    return shown


server_board.watch("waiting", _board)


def anyone_waiting() -> bool:
    """Whether an electron of this process waits for a job slot (in any gate)."""
    with _lock:
        gates = list(_gates.values())
    return any(found.waiting() for found in gates)


def cancel_waiting(task: tuple[str, str]) -> bool:
    """Cancel the task (dispatch id, node id) if it waits for a job slot; whether it did."""
    with _lock:
        gates = list(_gates.values())
    return any([found.cancel(task) for found in gates])


def reset() -> None:
    """Forget every gate and quota read (tests and benchmarks that start a new emulator)."""
    with _lock:
        _gates.clear()
        _sized.clear()
        _reading.clear()
    server_board.changed()


aws.on_reset(reset)
