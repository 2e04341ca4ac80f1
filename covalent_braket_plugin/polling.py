"""Shared status polling: one look-up per interval for all the jobs an event loop waits on.

Every BraketExecutor in the Covalent server runs on the server's event loop. Instead of one
``GetJob`` per job per interval, a :class:`JobWatcher` per (event loop, AWS account and
region) asks ``SearchJobs`` for every job created since the oldest one it watches (100 per
page), so Braket calls per interval grow with the number of pages, not of jobs. With one job
to watch it uses ``GetJob``. A job the search does not return is looked up with ``GetJob``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from covalent._shared_files import logger

from . import aws

app_log = logger.app_log

#: Page size of SearchJobs (the service's maximum).
PAGE_SIZE = 100
#: Consecutive failed look-ups after which the waiting tasks are given the error.
MAX_ERRORS = 10


@dataclass
class _Watched:
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
        self._jobs: dict[str, _Watched] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_due = 0.0
        self.calls = 0  # Braket status calls made (for benchmarks)
        self.rounds = 0  # look-up rounds (one per interval)
        self.watched = 0  # sum over rounds of the jobs watched

    def watch(self, job_arn: str, created_at: datetime | None, poll_freq: float) -> _Watched:
        created = created_at or (datetime.now(timezone.utc) - timedelta(minutes=5))
        entry = self._jobs.get(job_arn)
        if entry is None:
            entry = self._jobs[job_arn] = _Watched(created, poll_freq)
        # A new job gets a first look soon, so that a fast failure surfaces at once.
        due = time.monotonic() + min(self._first_poll, poll_freq)
        self._next_due = min(self._next_due, due) if self._next_due > time.monotonic() else due
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return entry

    def forget(self, job_arn: str) -> None:
        self._jobs.pop(job_arn, None)

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
                from .braket import offload

                statuses = await offload(self._look_up_sync, dict(self._jobs))
                errors = 0
            except aws.AwsError as exc:
                errors += 1
                app_log.warning(f"Braket status look-up failed ({exc}); trying again")
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

    def _look_up_sync(
        self, jobs: dict[str, _Watched]
    ) -> dict[str, tuple[str, dict[str, Any] | None]]:
        """``{arn: (status, full job or None)}`` for the watched jobs."""
        braket = self._get_clients().braket
        if len(jobs) <= 1:
            answers = {}
            for arn in jobs:
                self.calls += 1
                job = aws.call(braket, "get_job", jobArn=arn)
                answers[arn] = (job["status"], job)
            return answers
        oldest = min(entry.created_at for entry in jobs.values()) - timedelta(seconds=1)
        since = (
            oldest.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{oldest.microsecond // 1000:03d}Z"
        )
        found: dict[str, tuple[str, dict[str, Any] | None]] = {}
        token: str | None = None
        while True:
            request: dict[str, Any] = {
                "filters": [{"name": "createdAt", "operator": "GTE", "values": [since]}],
                "maxResults": PAGE_SIZE,
            }
            if token:
                request["nextToken"] = token
            self.calls += 1
            page = aws.call(braket, "search_jobs", **request)
            for summary in page.get("jobs", []):
                if summary["jobArn"] in jobs:
                    found[summary["jobArn"]] = (summary["status"], None)
            token = page.get("nextToken")
            if not token or len(found) == len(jobs):
                break
        for arn in jobs.keys() - found.keys():  # not in the search (yet): ask directly
            self.calls += 1
            job = aws.call(braket, "get_job", jobArn=arn)
            found[arn] = (job["status"], job)
        return found


_watchers: dict[tuple[int, Any], JobWatcher] = {}


def watcher_for(key: Any, get_clients: Callable[[], Any], first_poll: float) -> JobWatcher:
    """The watcher of the running event loop for ``key`` (the AWS client set)."""
    loop = asyncio.get_running_loop()
    for stale in [
        k for k, w in _watchers.items() if w._task is not None and w._task.get_loop().is_closed()
    ]:
        _watchers.pop(stale, None)
    index = (id(loop), key)
    watcher = _watchers.get(index)
    if watcher is None:
        watcher = _watchers[index] = JobWatcher(get_clients, first_poll)
    return watcher
