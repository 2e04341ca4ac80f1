"""A packed job on the server: its members gathered, the job created, each member's result
fetched as soon as it is there, and the members left without one sent again.

The job slot gate (:mod:`~covalent_braket_plugin.slots`) hands a slot to the oldest waiting
electron and, as the planner (:mod:`~covalent_braket_plugin.packing`) says, takes compatible
waiters along into its job. Each member's own coroutine (the executor's ``run``) uploads its
own input to its own prefix, as it would alone; the holder of the slot (the *head*) then
creates one job that names them all (a hyperparameter each), and a keeper follows the job:
while it runs, the job's ``done.json`` (under the first member's prefix, kept up to date by
the job), read once per poll, tells which members' results are there, and each member
fetches its own at once. When the job is terminal the keeper gives
the slot back, wakes the members still waiting (those without a result are sent again, each
alone), and splits the job's billed time among the members by their run time
(``usage.json``).

A member's result is authenticated with its own key, derived from the job's (see
:func:`covalent_braket_plugin.job.runner.member_key`); a member is cancelled alone by an
object under the job's first prefix (``cancels/``), which the job runner looks for.

With ``warm_seconds``, every job is a packed job that, once its members are done, waits that
long for more: an electron that comes meanwhile and is compatible joins it (an object
``more/NNNNNN.json`` under the job's first prefix, numbered as it joins, with a MAC of the
job's key) instead of waiting for a job start. It is sent there only while the job is surely
still waiting and has time left for the electron's own time limit. Once its object is
written, the sender reads the job's ``closed.json`` (see the runner's ``CLOSED_KEY``): none
there, the job will run it; one that names what the job ran, without it, means the job
closed first, and the electron is sent again at once, alone; one that says the job is
closing, no more: it waits for its result or the job's end (then, without a result, it is
sent again, alone). A job that closed is sent nothing more.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from . import aws, jobs, results, signing, slots, transfer, usage, waiting
from .config import BraketSettings
from .covalent_loader import server_log
from .errors import BraketJobError
from .job.runner import (
    CANCELS_PREFIX,
    CLOSED_KEY,
    DONE_KEY,
    HP_MEMBER_PREFIX,
    MORE_PREFIX,
    cancel_name,
    member_key,
    more_mac,
)
from .location import TaskLocation
from .packing import may_have_checkpoints, member_entry


def _future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


#: How a packed member's job handle reads: the job's ARN, then this, then its task prefix.
HANDLE_SEPARATOR = " member "


class PackAborted(Exception):
    """The packed job was not created; its members go on alone."""


@dataclass(eq=False)
class Member:
    """One electron of a packed job, as its coroutine and the job's keeper share it."""

    task: tuple[str, str]
    #: Its entry in the job's hyperparameters and its time limit, once uploaded (None: it
    #: dropped out).
    ready: asyncio.Future[tuple[str, int] | None] = field(default_factory=_future)
    location: TaskLocation | None = None
    #: Its result is there, or the job is terminal.
    seen: asyncio.Event = field(default_factory=asyncio.Event)
    #: What its job run came to (None: nothing, it is sent again), for the usage split.
    outcome: asyncio.Future[dict[str, Any] | None] = field(default_factory=_future)
    #: When its outcome came (``time.monotonic``).
    ended: float = 0.0
    #: A warm job's later member: its ``more/`` object's number (see :func:`join`).
    number: int = 0


@dataclass(eq=False)
class PackedJob:
    """A job that runs several electrons, on one event loop."""

    members: dict[tuple[str, str], Member]
    #: The created job (or PackAborted).
    created: asyncio.Future[dict[str, Any]]
    #: The terminal job.
    done: asyncio.Future[dict[str, Any]]
    head: TaskLocation | None = None
    #: Warm jobs: what the job may still take, the ``more/`` objects numbered so far, and
    #: whether it was found closed.
    key: Any = None
    deadline: float = 0.0
    more: int = 0
    closed: bool = False
    #: The job slot gate it holds a slot of (it takes waiters from there).
    gate: slots.SlotGate | None = None
    settings: BraketSettings | None = None
    #: Electrons handed to it from the gate's line that have not joined yet.
    promised: int = 0


#: Warm jobs that may take more members, by what members must share.
_warm: dict[Any, list[PackedJob]] = {}
#: A warm job is sent a member only if it has been idle for less than its window less this
#: and the poll interval (the job saw its last member end before the executor did).
WARM_MARGIN_SECONDS = 1.0


_packs: dict[object, PackedJob] = {}


def joined(slot: slots.Slot) -> PackedJob:
    """The packed job this slot's electron runs in (made by whichever member comes first)."""
    found = _packs.get(slot.job_key)
    if found is None:
        members = {task: Member(task) for task in slot.members}
        found = _packs[slot.job_key] = PackedJob(members, _future(), _future())
    return found


def handle(job_arn: str, location: TaskLocation) -> str:
    """A packed member's job handle: the job, and the member's task prefix."""
    return f"{job_arn}{HANDLE_SEPARATOR}{location.uri}"


def split_handle(job_handle: str) -> tuple[str, str | None]:
    """The job ARN of a job handle, and the member's task prefix (None: a job of its own)."""
    arn, _, uri = str(job_handle).partition(HANDLE_SEPARATOR)
    return arn, uri or None


def known_head(job_arn: str) -> str | None:
    """The first member's task prefix of a packed job this process follows (on its event
    loop; a warm job is among them too until its keeper ends); None when it follows no such
    job."""
    for pack in list(_packs.values()):
        if pack.head is None or not pack.created.done() or pack.created.exception():
            continue
        if pack.created.result().get("jobArn") == job_arn:
            return pack.head.uri
    return None


def cancel_member(
    settings: BraketSettings, job_arn: str, uri: str, head: str | None = None
) -> None:
    """Ask the job runner to stop one member: the object ``cancels/<cancel_name(uri)>`` under
    the job's first prefix, ``head`` (see :func:`known_head`; when None, read from the job's
    hyperparameter ``covalent_member_0`` with ``GetJob``). Blocking.

    Raises:
        AwsError: the job cannot be read, or the write failed.
        BraketJobError: the job is not a packed job.
    """
    head = head or _head_of_job(settings, job_arn)
    bucket, _, prefix = head.removeprefix("s3://").partition("/")
    aws.call(
        aws.clients_for(settings).s3,
        "put_object",
        Bucket=bucket,
        Key=f"{prefix}/{CANCELS_PREFIX}/{cancel_name(uri)}",
        Body=b"",
        **settings.encryption,
        **aws.bucket_owner(settings),
    )


def _head_of_job(settings: BraketSettings, job_arn: str) -> str:
    """The first member's task prefix, as the packed job's hyperparameters name it. Blocking."""
    job = jobs.get(settings, job_arn)
    entry = (job.get("hyperParameters") or {}).get(f"{HP_MEMBER_PREFIX}0", "")
    try:
        uri = json.loads(entry).get("uri")
    except (ValueError, AttributeError):
        uri = None
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise BraketJobError(f"Braket job {job_arn} is not a packed job: it names no members")
    return uri


def entry(settings: BraketSettings, location: TaskLocation, upload: transfer.Upload) -> str:
    """A member as its job is told of it (a hyperparameter, or a warm job's ``more/`` object),
    by its own settings: its prefix, input digest, time limit, and whether its checkpoints may
    hold something (see :func:`~covalent_braket_plugin.packing.may_have_checkpoints`)."""
    looks = may_have_checkpoints(location.attempt, upload.resumed, settings.checkpoint_from)
    return member_entry(location.uri, upload.sha256, settings.time_limit, looks)


def key_of(pack: PackedJob, location: TaskLocation) -> bytes:
    """A member's result key: derived from the job's attempt key (the head's)."""
    head = pack.head
    assert head is not None
    return member_key(signing.attempt_key(head.uri, head.job_name), location.uri)


async def gathered(pack: PackedJob) -> list[tuple[str, int]]:
    """Every member's entry (see :func:`entry`) and time limit, in order, once all have
    uploaded or dropped out."""
    ready = await asyncio.gather(*(member.ready for member in pack.members.values()))
    return [entry for entry in ready if entry is not None]


def created(pack: PackedJob, job: dict[str, Any] | BaseException) -> None:
    """Tell the members the job was created (or why not: they go on alone)."""
    if pack.created.done():
        return
    if isinstance(job, BaseException):
        pack.created.set_exception(PackAborted(str(job)))
        pack.created.exception()  # retrieved: members that left do not warn
        for member in pack.members.values():
            delivered(member, None)
    else:
        pack.created.set_result(job)


def keep(
    settings: BraketSettings,
    slot: slots.Slot,
    pack: PackedJob,
    job: dict[str, Any],
    key: Any = None,
    time_limit: int = 0,
) -> None:
    """Follow the packed job in the background until it is terminal (see the module); a
    warm one (``key``: what its members share) takes more meanwhile."""
    if key is not None and settings.warm_seconds:
        pack.key, pack.deadline = key, time.monotonic() + time_limit
        pack.gate, pack.settings = slot.gate, settings
        _warm.setdefault(key, []).append(pack)
        offer(pack)
    task = asyncio.get_running_loop().create_task(_keep(settings, slot, pack, job))
    _keepers.add(task)
    task.add_done_callback(_keepers.discard)


_keepers: set[asyncio.Task[None]] = set()


async def settled() -> None:
    """Wait until the running event loop's packed jobs have ended and been accounted for
    (for tests and benchmarks, whose event loop ends with their electrons)."""
    loop = asyncio.get_running_loop()
    mine = [task for task in _keepers if task.get_loop() is loop]
    if mine:
        await asyncio.gather(*mine, return_exceptions=True)


async def _keep(
    settings: BraketSettings, slot: slots.Slot, pack: PackedJob, job: dict[str, Any]
) -> None:
    follow = asyncio.ensure_future(waiting.until_done(settings, job, slot.task))
    try:
        while not follow.done():
            try:
                done = await aws.offload(_finished, settings, pack)
            except aws.AwsError as exc:
                name = job["jobName"]
                server_log.debug(f"Could not read which members of {name} are done: {exc}")
                done = set()
            for member in pack.members.values():
                if member.location is not None and member.location.uri in done:
                    member.seen.set()
            await asyncio.wait({follow}, timeout=settings.poll_freq)
        terminal = follow.result()
    except BaseException as exc:
        follow.cancel()
        if not pack.done.done():
            pack.done.set_exception(exc)
            pack.done.exception()
        raise
    finally:
        slot.release()
        for member in pack.members.values():
            member.seen.set()
        _packs.pop(slot.job_key, None)
        if pack in _warm.get(pack.key, []):
            _warm[pack.key].remove(pack)
    pack.done.set_result(terminal)
    if settings.cleanup and pack.head is not None:
        await aws.offload(_delete_job_objects, settings, pack)
    await _account(settings, pack, terminal)


#: The most of ``done.json`` or ``closed.json`` read (bytes): a member's prefix, or a
#: ``more/`` object's key, is at most a few hundred.
MAX_JOB_OBJECT_BYTES = 4 * 1024 * 1024


def _finished(settings: BraketSettings, pack: PackedJob) -> set[str]:
    """The task prefixes of the members whose result is there, as the job's ``done.json``
    says (empty before it is written, or when it is not what the job writes). Blocking.

    It only says where to look: each result is still authenticated when it is downloaded."""
    head = pack.head
    if head is None:
        return set()
    done = (_read_json(settings, head, DONE_KEY, {}) or {}).get("done")
    return {uri for uri in done if isinstance(uri, str)} if isinstance(done, list) else set()


def _read_json(
    settings: BraketSettings, head: TaskLocation, name: str, unreadable: dict[str, Any]
) -> dict[str, Any] | None:
    """An object the job keeps under its first prefix (``done.json``, ``closed.json``), as
    JSON: None when there is none, ``unreadable`` when it is not a JSON object or its body
    cannot be read. Blocking."""
    from botocore.exceptions import BotoCoreError

    answer = aws.call_unless(
        aws.NO_SUCH_KEY,
        aws.clients_for(settings).s3,
        "get_object",
        Bucket=head.bucket,
        Key=head.key(name),
        **aws.bucket_owner(settings),
    )
    if answer is None:
        return None
    body = answer["Body"]
    try:
        document = json.loads(body.read(MAX_JOB_OBJECT_BYTES))
    except (OSError, ValueError, BotoCoreError) as exc:
        server_log.debug(f"{head.uri}/{name} is unreadable: {exc}")
        return unreadable
    finally:
        body.close()
    return document if isinstance(document, dict) else unreadable


async def result_of(
    settings: BraketSettings, pack: PackedJob, member: Member, location: TaskLocation
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The member's outcome as soon as its result is there, and the job as last known; None
    when the job ended without one (the member is to be sent again)."""
    job = await pack.created
    if not pack.done.done():  # a member that joined a warm job late may find it ended
        seen = asyncio.ensure_future(member.seen.wait())
        await asyncio.wait({seen, pack.done}, return_when=asyncio.FIRST_COMPLETED)
        seen.cancel()
    if pack.done.done() and not pack.done.exception():
        job = pack.done.result()
    key = key_of(pack, location)
    outcome = await aws.persistently(results.download, settings, location, job, key, True)
    if outcome is None and not pack.done.done():  # said done, gone since: wait for the end
        await asyncio.wait({pack.done})
        if not pack.done.exception():
            job = pack.done.result()
        outcome = await aws.persistently(results.download, settings, location, job, key, True)
    return outcome, job


def dropped(pack: PackedJob, member: Member) -> None:
    """The member leaves before its upload was made (an error, a cancel): the job runs the
    others."""
    if not member.ready.done():
        member.ready.set_result(None)
    delivered(member, None)


def delivered(
    member: Member, outcome: dict[str, Any] | None, pack: PackedJob | None = None
) -> None:
    """What the member's run came to, for the usage split (None: nothing to count)."""
    if not member.outcome.done():
        member.ended = time.monotonic()
        member.outcome.set_result(outcome)
        if pack is not None:
            offer(pack)


async def _account(settings: BraketSettings, pack: PackedJob, job: dict[str, Any]) -> None:
    """Once every member has its outcome: each member's ``usage.json``, with its share of the
    job's billed time (by run time; the shares add up to the job's)."""
    outcomes = []
    for member in list(pack.members.values()):
        outcome = await member.outcome
        if outcome is not None and member.location is not None:
            outcomes.append((member.location, outcome))
    if not isinstance(job.get("billableDuration"), int):  # the search's summary: read it whole
        try:
            job = await aws.persistently(jobs.get, settings, job["jobArn"])
        except aws.AwsError as exc:
            server_log.debug(f"Could not read {job['jobArn']} for its billed time: {exc}")
    billed, _ = usage.billable_ms(job)
    run = [max(int(outcome.get("run_ms") or 0), 0) for _, outcome in outcomes]
    split = shares(billed or 0, run)
    idle = max((billed or 0) - sum(run), 0)
    for index, (location, outcome) in enumerate(outcomes):
        share = {
            "billable_ms": split[index],
            "members": len(pack.members),
            "run_ms": run[index],
            "idle_ms": idle,
        }
        usage.account_later(settings, location, job, outcome, share=share)


def shares(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (equal parts when they are all 0), in
    whole units that add up to ``total`` (largest remainders first)."""
    if not weights:
        return []
    weights = weights if any(weights) else [1] * len(weights)
    whole = sum(weights)
    exact = [total * weight / whole for weight in weights]
    parts = [int(value) for value in exact]
    order = sorted(range(len(parts)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


# ---------------------------------------------------------------------------- warm jobs
def warm_job(key: Any, settings: BraketSettings) -> PackedJob | None:
    """A running warm job this electron may join: compatible, not full, with time left for
    the electron's own limit and its idle window, and running members or surely still
    waiting for more."""
    now = time.monotonic()
    for pack in _warm.get(key, []):
        if _room(pack, settings, now) > 0:
            return pack
    return None


def _room(pack: PackedJob, settings: BraketSettings, now: float) -> int:
    """How many more electrons a warm job may be sent now: none once it ended (or may be
    ending), or lacks the time for one more; else up to ``pack_max`` running at once."""
    if pack.done.done() or pack.closed or not pack.created.done() or pack.created.exception():
        return 0
    if pack.deadline - now < settings.time_limit + settings.warm_seconds:
        return 0
    members = list(pack.members.values())
    running = pack.promised + sum(not m.outcome.done() for m in members)
    if not running:
        idle = now - max((m.ended for m in members), default=now)
        if idle >= settings.warm_seconds - settings.poll_freq - WARM_MARGIN_SECONDS:
            return 0
    return settings.pack_max - running


def offer(pack: PackedJob) -> None:
    """Hand a warm job the compatible electrons that wait for a job slot, as many as it
    has room for (they join it as :func:`join` does, not with a slot of their own)."""
    if pack.gate is None or pack.settings is None:
        return
    room = _room(pack, pack.settings, time.monotonic())
    if room > 0:
        pack.promised += pack.gate.hand_over(pack.key, pack, room)


def join(pack: PackedJob, task: tuple[str, str], handed: bool = False) -> Member:
    """A new member of a warm job (its keeper's listing covers it from now on); ``handed``:
    it was handed over from the gate's line (see :func:`offer`)."""
    if handed:
        pack.promised = max(pack.promised - 1, 0)
    pack.more += 1  # numbered here, on the event loop: no two members share a number
    member = pack.members[task] = Member(task, number=pack.more)
    return member


def more_key(member: Member) -> str:
    """A warm job's later member's object, under the job's first prefix."""
    return f"{MORE_PREFIX}/{member.number:06d}.json"


async def hand_over(
    settings: BraketSettings,
    pack: PackedJob,
    member: Member,
    location: TaskLocation,
    upload: transfer.Upload,
) -> bool:
    """Hand a warm job one more member (see the module); False when the job closed without
    taking it (the electron is to be sent again, alone)."""
    closed = await aws.offload(_send_more, settings, pack, member, location, upload)
    if closed is None:
        return True
    pack.closed = True
    taken = closed.get("taken")
    if not isinstance(taken, list):  # closing: it may still take it
        return True
    assert pack.head is not None
    return pack.head.key(more_key(member)) in taken


def _send_more(
    settings: BraketSettings,
    pack: PackedJob,
    member: Member,
    location: TaskLocation,
    upload: transfer.Upload,
) -> dict[str, Any] | None:
    """Write the member's ``more/`` object, with the MAC of the job's key, then read the
    job's ``closed.json``: None when there is none (the job will run it), or it cannot be
    read (the member waits for its result, or the job's end). Blocking."""
    head = pack.head
    assert head is not None
    given = entry(settings, location, upload)
    mac = more_mac(signing.attempt_key(head.uri, head.job_name), given)
    aws.call(
        aws.clients_for(settings).s3,
        "put_object",
        Bucket=head.bucket,
        Key=head.key(more_key(member)),
        Body=json.dumps({"member": given, "mac": mac}).encode(),
        ContentType="application/json",
        **settings.encryption,
        **aws.bucket_owner(settings),
    )
    try:
        return _read_json(settings, head, CLOSED_KEY, {"closing": True})
    except aws.AwsError as exc:
        server_log.debug(f"Could not read {head.uri}/{CLOSED_KEY}: {exc}")
        return None


def _delete_job_objects(settings: BraketSettings, pack: PackedJob) -> None:
    """Delete what the packed job kept under its first prefix once it ended: ``done.json``,
    its members' ``cancels/``, a warm job's ``more/`` objects and ``closed.json``. Blocking."""
    head = pack.head
    assert head is not None
    try:
        keys = [head.key(DONE_KEY)]
        if pack.key is not None:
            keys.append(head.key(CLOSED_KEY))
        keys += results.list_keys(settings, head.bucket, head.key(f"{CANCELS_PREFIX}/"))
        if pack.more:
            keys += results.list_keys(settings, head.bucket, head.key(f"{MORE_PREFIX}/"))
        results.delete_keys(settings, head.bucket, keys)
    except aws.AwsError as exc:
        server_log.debug(f"Could not delete the job's objects under {head.uri}: {exc}")
