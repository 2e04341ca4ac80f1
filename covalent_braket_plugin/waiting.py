"""Waiting for jobs: one shared status look-up per interval for every job an event loop
waits on, and each task's wait with its deadlines.

Every BraketExecutor in the Covalent server runs on the server's event loop. Instead of one
``GetJob`` per job per interval, a :class:`JobWatcher` per event loop and AWS client set
(profile, credentials file and Region) asks ``SearchJobs`` for every job created since the
oldest one it watches (100 per page), so Braket calls per interval grow with the number of
pages, not of jobs. With one job to watch it uses ``GetJob``. A job the search does not
return is looked up with ``GetJob``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from . import aws, jobs
from .config import BraketSettings
from .covalent_loader import server_log
from .errors import BraketJobError
from .service import SEARCH_PAGE_MAX, TERMINAL_STATES, timestamp

#: Consecutive failed look-ups after which the waiting tasks are given the error.
MAX_ERRORS = 10
#: The first status check comes this soon after submission, so fast failures surface at once.
FIRST_POLL_SECONDS = 1.0
#: Time allowed past ``time_limit`` for the service to start, stop and upload a running job.
RUNNING_GRACE_SECONDS = 600
#: How long a job may wait in QUEUED (QPU queues can be long) before the executor gives up.
QUEUED_DEADLINE_SECONDS = 7 * 24 * 3600


@dataclass
class Watched:
    """What the watcher knows of one job, and the event a waiting task sleeps on."""

    created_at: datetime
    poll_freq: float
    status: str = "QUEUED"
    #: The full GetJob answer, when the last look-up was a GetJob (saves reading it again).
    job: dict[str, Any] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None


class JobWatcher:
    """Watches jobs for the executors of one event loop and one AWS client set."""

    def __init__(self, get_clients: Callable[[], Any], first_poll: float) -> None:
        self._get_clients = get_clients
        self._first_poll = first_poll
        self._jobs: dict[str, Watched] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_due = 0.0
        self.calls = 0  # Braket status calls made (for benchmarks)
        self.rounds = 0  # look-up rounds (one per interval)
        self.watched = 0  # sum over rounds of the jobs watched

    def watch(self, job_arn: str, created_at: datetime | None, poll_freq: float) -> Watched:
        created = created_at or (datetime.now(timezone.utc) - timedelta(minutes=5))
        entry = self._jobs.get(job_arn)
        if entry is None:
            entry = self._jobs[job_arn] = Watched(created, poll_freq)
        # A new job gets a first look soon, so that a fast failure surfaces at once.
        due = time.monotonic() + min(self._first_poll, poll_freq)
        self._next_due = min(self._next_due, due) if self._next_due > time.monotonic() else due
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return entry

    def forget(self, job_arn: str) -> None:
        self._jobs.pop(job_arn, None)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the watcher runs on, once it has run."""
        return self._task.get_loop() if self._task is not None else None

    async def _run(self) -> None:
        errors = 0
        while self._jobs:
            delay = self._next_due - time.monotonic()
            if delay > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                    continue  # something changed the schedule: recompute
                except asyncio.TimeoutError:
                    pass
            interval = min(entry.poll_freq for entry in self._jobs.values()) if self._jobs else 1.0
            self._next_due = time.monotonic() + interval
            self.rounds += 1
            self.watched += len(self._jobs)
            try:
                statuses = await aws.offload(self._look_up_sync, dict(self._jobs))
                errors = 0
            except aws.AwsError as exc:
                errors += 1
                server_log.warning(f"Braket status look-up failed ({exc}); trying again")
                if not exc.transient or errors >= MAX_ERRORS:
                    for entry in self._jobs.values():
                        entry.error = exc
                        entry.changed.set()
                    self._jobs.clear()
                    return
                self._next_due = time.monotonic() + min(interval * 2**errors, 300.0)
                continue
            for arn, (status, job) in statuses.items():
                entry = self._jobs.get(arn)
                if entry is not None:
                    entry.job = job
                    if status != entry.status:
                        entry.status = status
                        entry.changed.set()

    def _look_up_sync(self, watched: dict[str, Watched]) -> dict[str, tuple[str, Any]]:
        """``{arn: (status, full job or None)}`` for the watched jobs."""
        braket = self._get_clients().braket
        if len(watched) <= 1:
            return {arn: self._get_job(braket, arn) for arn in watched}
        oldest = min(entry.created_at for entry in watched.values()) - timedelta(seconds=1)
        since = timestamp(oldest)
        found: dict[str, tuple[str, Any]] = {}
        token: str | None = None
        while True:
            request: dict[str, Any] = {
                "filters": [{"name": "createdAt", "operator": "GTE", "values": [since]}],
                "maxResults": SEARCH_PAGE_MAX,
            }
            if token:
                request["nextToken"] = token
            self.calls += 1
            page = aws.call(braket, "search_jobs", **request)
            for summary in page.get("jobs", []):
                if summary["jobArn"] in watched:
                    found[summary["jobArn"]] = (summary["status"], None)
            token = page.get("nextToken")
            if not token or len(found) == len(watched):
                break
        for arn in watched.keys() - found.keys():  # not in the search (yet): ask directly
            found[arn] = self._get_job(braket, arn)
        return found

    def _get_job(self, braket: Any, arn: str) -> tuple[str, Any]:
        self.calls += 1
        job = aws.call(braket, "get_job", jobArn=arn)
        return job["status"], job


_watchers: dict[tuple[int, Any], JobWatcher] = {}


def watcher_for(settings: BraketSettings) -> JobWatcher:
    """The running event loop's watcher for the AWS client set of ``settings``."""
    loop = asyncio.get_running_loop()
    for stale in [k for k, w in _watchers.items() if w.loop is not None and w.loop.is_closed()]:
        _watchers.pop(stale, None)
    index = (id(loop), aws.client_key(settings))
    watcher = _watchers.get(index)
    if watcher is None:
        watcher = _watchers[index] = JobWatcher(
            lambda: aws.clients_for(settings), FIRST_POLL_SECONDS
        )
    return watcher


def watchers_of_running_loop() -> list[JobWatcher]:
    """The watchers working for the running event loop (their call counts, for benchmarks)."""
    loop = asyncio.get_running_loop()
    return [watcher for watcher in _watchers.values() if watcher.loop is loop]


async def until_done(settings: BraketSettings, job: dict[str, Any]) -> dict[str, Any]:
    """Wait until the job is terminal and return it as GetJob describes it.

    A job may stay QUEUED for up to :data:`QUEUED_DEADLINE_SECONDS` (QPU queues are long),
    and run for ``time_limit`` plus :data:`RUNNING_GRACE_SECONDS`; past that, its
    cancellation is requested and :class:`BraketJobError` raised. The task sleeps until the
    watcher reports a change of status, or its deadline.
    """
    if job["status"] in TERMINAL_STATES:
        return job
    job_arn = job["jobArn"]
    watcher = watcher_for(settings)
    entry = watcher.watch(job_arn, job.get("createdAt"), settings.poll_freq)
    submitted = time.monotonic()
    started: float | None = None
    try:
        while True:
            entry.changed.clear()
            if entry.error is not None:
                raise entry.error
            status = entry.status
            if status in TERMINAL_STATES:
                if entry.job is not None and entry.job["status"] == status:
                    return entry.job
                return await aws.offload(jobs.get, settings, job_arn)
            now = time.monotonic()
            if status == "QUEUED":
                limit, since = QUEUED_DEADLINE_SECONDS, submitted
            else:
                started = started if started is not None else now
                limit, since = settings.time_limit + RUNNING_GRACE_SECONDS, started
            if now - since > limit:
                await aws.offload(jobs.cancel, settings, job_arn)
                raise BraketJobError(
                    f"Braket job {job_arn} still {status} after {limit} s "
                    f"(time_limit={settings.time_limit}); cancellation was requested"
                )
            # Sleep until the watcher reports a change or the deadline passes: no wake-ups
            # (and no garbage) per interval for each of hundreds of waiting tasks.
            try:
                await asyncio.wait_for(
                    entry.changed.wait(), timeout=max(limit - (now - since), 0.05)
                )
            except asyncio.TimeoutError:
                pass
    finally:
        watcher.forget(job_arn)
