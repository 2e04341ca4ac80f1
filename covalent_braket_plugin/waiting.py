"""Waiting for jobs: one shared status look-up per interval for every job an event loop
waits on, and each task's wait with its deadlines.

Every BraketExecutor in the Covalent server runs on the server's event loop. Instead of one
``GetJob`` per job per interval, a :class:`JobWatcher` per event loop and AWS client set
(profile, credentials file and Region) asks ``SearchJobs`` for this executor's jobs (``cov-``
names) created since the oldest one it watches of the last hour (100 per page, each page paced,
at most a couple more than it booked), so Braket calls per interval grow with the number of
pages, not of jobs; an older watched job (a QPU job queued for days) is read with GetJob.
With one job to watch it uses ``GetJob``. A job the search does not return is looked up with
``GetJob``. Each state change it sees goes into the server log
(:mod:`~covalent_braket_plugin.progress`), a queued job's place in the queue with it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

from . import aws, jobs, pacing, progress, slots
from .config import BraketSettings
from .covalent_loader import server_log
from .errors import BraketJobError
from .service import SEARCH_PAGE_MAX, TERMINAL_STATES, timestamp

#: Consecutive failed look-ups after which the waiting tasks are given the error.
MAX_ERRORS = 10
#: For this long after its creation, a job GetJob does not find yet is taken as not seen
#: yet (the service's reads can lag its writes), not as gone.
NOT_FOUND_GRACE_SECONDS = 120.0
#: The first status check comes this soon after submission, so fast failures surface at once.
FIRST_POLL_SECONDS = 1.0
#: Time allowed past ``time_limit`` for the service to start, stop and upload a running job.
RUNNING_GRACE_SECONDS = 600
#: How long a job may wait in QUEUED (QPU queues can be long) before the executor gives up.
QUEUED_DEADLINE_SECONDS = 7 * 24 * 3600
#: The watcher's search covers the jobs created this recently (by the service's clock); an
#: older watched job (a QPU job queued for days) is read with GetJob instead, so that it does
#: not hold the window open over every job the account made since.
SEARCH_WINDOW_SECONDS = 3600.0
#: A round reads at most this many SearchJobs pages beyond those it booked (one per 100
#: watched jobs), each paced; what they do not reach is read with GetJob when the quota has room.
EXTRA_SEARCH_PAGES = 2


@dataclass
class Watched:
    """What the watcher knows of one job, and the event a waiting task sleeps on."""

    created_at: datetime
    poll_freq: float
    status: str = "QUEUED"
    #: The job as last read: GetJob's answer, or SearchJobs' summary of it.
    job: dict[str, Any] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None
    #: What the server log has said of the job (None: the job is not reported).
    report: progress.JobProgress | None = None
    #: When the watcher began to watch it (this machine's monotonic clock: ``created_at`` is
    #: the service's).
    since: float = field(default_factory=time.monotonic)


class JobWatcher:
    """Watches jobs for the executors of one event loop and one AWS client set; its calls are
    paced within Braket's quotas.

    A new job gets a first look soon (``first_poll``), so that a fast failure surfaces at
    once; but while jobs keep coming, looks come at most once per interval: each covers
    every job watched.
    """

    def __init__(self, settings: BraketSettings, first_poll: float) -> None:
        self._settings = settings
        self._get_clients = lambda: aws.clients_for(settings)
        self._first_poll = first_poll
        self._jobs: dict[str, Watched] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_due = 0.0
        self._search_denied = False
        self._last_round = -1e9
        self.calls = 0  # Braket status calls made (for benchmarks)
        self.queue_lookups = 0  # of which extra GetJob for a queued job's place
        self._last_place_lookup = float("-inf")
        self.rounds = 0  # look-up rounds (one per interval)
        self.watched = 0  # sum over rounds of the jobs watched

    def watch(
        self,
        job_arn: str,
        created_at: datetime | None,
        poll_freq: float,
        report: progress.JobProgress | None = None,
    ) -> Watched:
        created = created_at or (datetime.now(timezone.utc) - timedelta(minutes=5))
        entry = self._jobs.get(job_arn)
        if entry is None:
            entry = self._jobs[job_arn] = Watched(created, poll_freq, report=report)
        # A new job gets a first look soon, unless a look was made less than an interval ago:
        # then the next regular look comes first (it covers the new job too).
        now = time.monotonic()
        due = max(now + min(self._first_poll, poll_freq), self._last_round + poll_freq)
        self._next_due = min(self._next_due, due) if self._next_due > now else due
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
        """Look up the watched jobs once per interval, paced, until none is left to watch."""
        errors = 0
        while self._jobs:
            if await self._woken_before_due():
                continue  # something changed the schedule: recompute
            interval = await self._begin_round()
            reporting = progress.enabled()
            try:
                statuses = await aws.offload(
                    self._look_up_sync, dict(self._jobs), interval, reporting
                )
                errors = 0
            except aws.AwsError as exc:  # the round failed: every job is unknown this time
                errors += 1
                if not self._survive_failed_round(exc, errors, interval):
                    return
                continue
            self._take(statuses, reporting)

    async def _woken_before_due(self) -> bool:
        """Sleep until the next look-up is due, a second at most: while electrons wait for a
        job slot, a look-up is due a second after the last (:data:`slots.WATCH_SECONDS`),
        whenever they began to wait.

        Returns:
            Whether the schedule is to be computed again (something changed it, such as a new
            job, or the sleep ended before the look-up was due).
        """
        due = self._next_due
        if slots.anyone_waiting():
            due = min(due, self._last_round + slots.WATCH_SECONDS)
        delay = due - time.monotonic()
        if delay <= 0:
            return False
        self._wake.clear()
        await aws.set_within(self._wake, min(delay, slots.WATCH_SECONDS))
        return True

    async def _begin_round(self) -> float:
        """Wait for the round's turn within the quota of the calls it will make (SearchJobs
        pages, or a GetJob per job), then count the round and schedule the next.

        Returns:
            The round's interval: the shortest polling interval of the jobs watched, and at
            most :data:`~covalent_braket_plugin.slots.WATCH_SECONDS` while electrons wait for
            a job slot (a slot is handed on when its job is seen to end).
        """
        interval = min(entry.poll_freq for entry in self._jobs.values()) if self._jobs else 1.0
        if slots.anyone_waiting():
            interval = min(interval, slots.WATCH_SECONDS)
        searching = len(self._jobs) > 1 and not self._search_denied
        calls = (
            ["SearchJobs"] * pacing.pages(len(self._jobs), SEARCH_PAGE_MAX)
            if searching
            else ["GetJob"] * len(self._jobs)
        )
        await pacing.paced(*aws.quota_key(self._settings), calls)
        self._last_round = time.monotonic()
        self._next_due = self._last_round + interval
        self.rounds += 1
        self.watched += len(self._jobs)
        return interval

    def _survive_failed_round(self, exc: aws.AwsError, errors: int, interval: float) -> bool:
        """Log a failed round and schedule the next after a backoff; or, when the error is
        not worth another round or ``errors`` reached :data:`MAX_ERRORS`, give it to every
        waiting task and stop watching.

        Args:
            exc: the round's error.
            errors: the rounds failed in a row, this one included.
            interval: the round's interval (the backoff's unit).

        Returns:
            Whether the watcher goes on.
        """
        if exc.expired:  # the clients are built anew for the next round
            server_log.warning(
                f"AWS credentials expired while following Braket jobs ({exc}); "
                "reading the credentials again and following on"
            )
        else:
            server_log.warning(f"Braket status look-up failed ({exc}); trying again")
        if not (exc.transient or exc.expired) or errors >= MAX_ERRORS:
            for entry in self._jobs.values():
                entry.error = exc
                entry.changed.set()
            self._jobs.clear()
            return False
        self._next_due = time.monotonic() + min(interval * 2**errors, 300.0)
        return True

    def _take(self, statuses: dict[str, Any], reporting: bool) -> None:
        """Record a round's answers: a job's own error ends its watch (its task raises it);
        a status goes into the server log when ``reporting``, and a change of it wakes the
        job's task.

        Args:
            statuses: :meth:`_look_up_sync`'s answer.
            reporting: whether the job's progress goes into the server log.
        """
        for arn, answer in statuses.items():
            entry = self._jobs.get(arn)
            if entry is None:
                continue
            if isinstance(answer, aws.AwsError):  # this job's own error: its task's
                entry.error = answer
                entry.changed.set()
                self._jobs.pop(arn, None)
                continue
            status, job = answer
            entry.job = job
            if reporting and entry.report is not None:
                line = entry.report.observe(status, job)
                if line:
                    server_log.info(line)
            if status != entry.status:
                entry.status = status
                entry.changed.set()

    def _look_up_sync(
        self, watched: dict[str, Watched], interval: float = 1.0, reporting: bool = False
    ) -> dict[str, Any]:
        """``{arn: (status, job as read) or its own AwsError}`` for the watched jobs; a job
        not in the answer is unknown this round. One SearchJobs page per 100 jobs (a job it
        does not show is read with GetJob); a single job, or a caller who may not search, is
        read with GetJob. When ``reporting``, a queued job's GetJob asks for its place in the
        queue when it is due, and a few jobs the search showed queued are read with GetJob
        for it (see :mod:`~covalent_braket_plugin.progress`)."""
        braket = self._get_clients().braket
        found: dict[str, Any] = {}
        if len(watched) > 1 and not self._search_denied:
            try:
                found = self._search_sync(braket, watched)
            except aws.AwsError as exc:
                if exc.transient or exc.expired or exc.code not in aws.DENIED:
                    raise
                self._search_denied = True  # from now on, each job on its own
                server_log.warning(f"Braket SearchJobs refused ({exc}); reading jobs one by one")
        searched = bool(found) or (len(watched) > 1 and not self._search_denied)
        for arn in watched.keys() - found.keys():  # not in the search (yet): ask directly
            if searched and not pacing.take_now(*aws.quota_key(self._settings), "GetJob"):
                continue  # not now: the quota has no room; next round
            entry = watched[arn]
            ask = (
                reporting
                and entry.report is not None
                and entry.status == "QUEUED"
                and entry.report.wants_queue_info(interval)
            )
            try:
                found[arn] = self._get_job(braket, arn, queue_info=ask)
            except aws.AwsError as exc:
                if exc.expired:
                    raise  # everyone's credentials: the round fails, clients are rebuilt
                if exc.transient:
                    continue  # unknown this round
                if exc.code == "ResourceNotFoundException" and _just_created(entry):
                    continue  # a new job may not be seen at once
                found[arn] = exc
            if ask and entry.report is not None:
                entry.report.asked_at = time.monotonic()
        if reporting and searched:
            self._ask_queue_places(braket, watched, found, interval)
        return found

    def _ask_queue_places(
        self, braket: Any, watched: dict[str, Watched], found: dict[str, Any], interval: float
    ) -> None:
        """Read a few of the jobs the search showed QUEUED with GetJob and ``QueueInfo``,
        when the GetJob quota has room at once (never waiting, never at another call's
        expense); a failure leaves the search's answer."""
        if time.monotonic() - self._last_place_lookup < progress.QUEUE_INFO_EVERY * interval:
            return  # the watcher's extra look-ups are spaced too, not only each job's
        queued = {
            arn: entry.report
            for arn, entry in watched.items()
            if entry.report is not None
            and isinstance(found.get(arn), tuple)
            and found[arn][0] == "QUEUED"
            and "queueInfo" not in found[arn][1]
        }
        for arn in progress.choose_for_queue_info(queued, interval):
            if not pacing.take_now(*aws.quota_key(self._settings), "GetJob"):
                return
            queued[arn].asked_at = self._last_place_lookup = time.monotonic()
            self.queue_lookups += 1
            try:
                found[arn] = self._get_job(braket, arn, queue_info=True)
            except aws.AwsError as exc:
                if exc.expired:
                    raise

    def _search_sync(self, braket: Any, watched: dict[str, Watched]) -> dict[str, Any]:
        """The watched jobs a search finds: only those created within
        :data:`SEARCH_WINDOW_SECONDS` of the newest, only names of this executor's
        (``cov-``), the pages it booked and at most :data:`EXTRA_SEARCH_PAGES` more, each
        paced within the ``SearchJobs`` quota. What it does not find is read with GetJob."""
        newest = max(entry.created_at for entry in watched.values())
        recent = {
            arn: entry
            for arn, entry in watched.items()
            if newest - entry.created_at <= timedelta(seconds=SEARCH_WINDOW_SECONDS)
        }
        oldest = min(entry.created_at for entry in recent.values()) - timedelta(seconds=1)
        filters = [
            {"name": "createdAt", "operator": "GTE", "values": [timestamp(oldest)]},
            {"name": "jobName", "operator": "CONTAINS", "values": ["cov-"]},
        ]
        booked = pacing.pages(len(watched), SEARCH_PAGE_MAX)
        pages = 0

        def before_page() -> None:
            nonlocal pages
            pages += 1
            if pages > booked:  # a page the round did not book: its own turn in the quota
                pacing.wait_sync(*aws.quota_key(self._settings), ["SearchJobs"])
            self._count_call()

        found: dict[str, Any] = {}
        summaries = jobs.search(
            braket, filters, before_page=before_page, max_pages=booked + EXTRA_SEARCH_PAGES
        )
        for summary in summaries:
            if summary["jobArn"] in recent:
                found[summary["jobArn"]] = (summary["status"], summary)
                if len(found) == len(recent):
                    break
        return found

    def _count_call(self) -> None:
        self.calls += 1

    def _get_job(self, braket: Any, arn: str, queue_info: bool = False) -> tuple[str, Any]:
        self.calls += 1
        job = jobs.get_job(braket, arn, queue_info)
        return job["status"], job


def _just_created(entry: Watched) -> bool:
    """Whether a job is young enough that the service may not show it yet (by this
    machine's clock, since it began to be watched)."""
    return time.monotonic() - entry.since < NOT_FOUND_GRACE_SECONDS


_watchers: dict[tuple[int, Any], JobWatcher] = {}


def watcher_for(settings: BraketSettings) -> JobWatcher:
    """The running event loop's watcher for the AWS client set of ``settings``."""
    loop = asyncio.get_running_loop()
    for stale in [k for k, w in _watchers.items() if w.loop is not None and w.loop.is_closed()]:
        _watchers.pop(stale, None)
    index = (id(loop), aws.client_key(settings))
    watcher = _watchers.get(index)
    if watcher is None:
        watcher = _watchers[index] = JobWatcher(settings, FIRST_POLL_SECONDS)
    return watcher


def watchers_of_running_loop() -> list[JobWatcher]:
    """The watchers working for the running event loop (their call counts, for benchmarks)."""
    loop = asyncio.get_running_loop()
    return [watcher for watcher in _watchers.values() if watcher.loop is loop]


async def until_done(
    settings: BraketSettings, job: dict[str, Any], task: tuple[str, str] | None = None
) -> dict[str, Any]:
    """Wait until the job is terminal and return it as last read (GetJob's answer, or
    SearchJobs' summary of a COMPLETED or CANCELLED job; a FAILED one is read in full).
    With ``task`` (dispatch id, node id), each state change of the job goes into the server
    log.

    A job may stay QUEUED for up to :data:`QUEUED_DEADLINE_SECONDS` (QPU queues are long),
    and run for ``time_limit`` plus :data:`RUNNING_GRACE_SECONDS`; past that, its
    cancellation is requested and :class:`BraketJobError` raised. The task sleeps until the
    watcher reports a change of status, or its deadline.
    """
    if job["status"] in TERMINAL_STATES:
        return job
    job_arn = job["jobArn"]
    watcher = watcher_for(settings)
    report = _progress_report(job, task)
    entry = watcher.watch(job_arn, job.get("createdAt"), settings.poll_freq, report)
    try:
        return await _follow(settings, job_arn, entry)
    finally:
        watcher.forget(job_arn)


def _progress_report(
    job: dict[str, Any], task: tuple[str, str] | None
) -> progress.JobProgress | None:
    """What the server log will say of the job's progress.

    Args:
        job: the job as submitted.
        task: (dispatch id, node id) of the task, or None.

    Returns:
        The job's report, or None without ``task`` (the job is not reported).
    """
    if task is None:
        return None
    report = progress.JobProgress(str(task[0]), str(task[1]), job.get("jobName", ""), job["jobArn"])
    if isinstance(job.get("createdAt"), datetime):
        report.created_at = job["createdAt"]
    return report


async def _follow(settings: BraketSettings, job_arn: str, entry: Watched) -> dict[str, Any]:
    """Sleep on the watcher's news of the job until it is terminal, or past its deadline.

    Args:
        settings: the executor's settings (its ``time_limit``).
        job_arn: the job.
        entry: what the watcher knows of the job.

    Returns:
        The terminal job (see :func:`until_done`).

    Raises:
        BraketJobError: the job outstayed its deadline (its cancellation was requested).
    """
    submitted = time.monotonic()
    started: float | None = None
    while True:
        entry.changed.clear()
        if entry.error is not None:
            raise entry.error
        status = entry.status
        if status in TERMINAL_STATES:
            return await _terminal_job(settings, job_arn, entry)
        now = time.monotonic()
        if status == "QUEUED":
            limit, since = QUEUED_DEADLINE_SECONDS, submitted
        else:
            started = started if started is not None else now
            limit, since = settings.time_limit + RUNNING_GRACE_SECONDS, started
        if now - since > limit:
            await _cancel_overdue(settings, job_arn, status, limit)
        # Sleep until the watcher reports a change or the deadline passes: no wake-ups
        # (and no garbage) per interval for each of hundreds of waiting tasks.
        await aws.set_within(entry.changed, max(limit - (now - since), 0.05))


async def _terminal_job(settings: BraketSettings, job_arn: str, entry: Watched) -> dict[str, Any]:
    """The terminal job as the watcher last read it, or, for a FAILED job read without its
    failure reason, read in full (paced within the GetJob quota, tried again while it fails
    transiently).

    Args:
        settings: the executor's settings.
        job_arn: the job.
        entry: what the watcher knows of the job.

    Returns:
        The job.
    """
    seen, status = entry.job, entry.status
    if (
        seen is not None
        and seen["status"] == status
        and (status != "FAILED" or "failureReason" in seen)
    ):
        return seen  # a COMPLETED or CANCELLED job needs nothing more
    # A FAILED job is read in full, for its failure reason.
    return await aws.persistently(
        jobs.get,
        settings,
        job_arn,
        before=lambda: pacing.paced(*aws.quota_key(settings), ["GetJob"]),
    )


async def _cancel_overdue(
    settings: BraketSettings, job_arn: str, status: str, limit: float
) -> NoReturn:
    """Request the cancellation of a job past its deadline, and give up on it.

    Args:
        settings: the executor's settings.
        job_arn: the job.
        status: the job's status (QUEUED or RUNNING).
        limit: the deadline it passed, in seconds.

    Raises:
        BraketJobError: always, once the cancellation was requested.
    """
    await cancel(settings, job_arn, seconds=60.0)
    raise BraketJobError(
        f"Braket job {job_arn} still {status} after {limit} s "
        f"(time_limit={settings.time_limit}); cancellation was requested"
    )


async def cancel(
    settings: BraketSettings, job_arn: str, seconds: float = aws.PERSIST_SECONDS
) -> str:
    """Cancel the job, paced within the ``CancelJob`` quota on the paced calls' own threads
    (never behind submissions), tried again while it fails transiently; its status after."""
    return await aws.persistently(
        jobs.cancel,
        settings,
        job_arn,
        seconds=seconds,
        before=lambda: pacing.paced(*aws.quota_key(settings), ["CancelJob"]),
        pool=aws.paced_pool,
    )
