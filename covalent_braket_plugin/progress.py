"""Progress of the jobs in the server log: one line per job state change.

Each line names the dispatch and node, the job and its state, how long since the job was
submitted, and the job's page in the Braket console; a QUEUED job's line also has its queue
and place in it (``GetJob`` with ``QueueInfo``). The shared watcher
(:mod:`~covalent_braket_plugin.waiting`) sees the states; this room decides what a line says
and when a queued job's place is worth asking for again, so that the look-ups stay few:

- only while the server log shows INFO (nobody reads the lines otherwise);
- a job's place is asked at most once per :data:`QUEUE_INFO_EVERY` poll intervals;
- when one job is watched, the watcher's own ``GetJob`` carries the question (no extra call);
  when many are (``SearchJobs``), at most :data:`QUEUE_LOOKUPS_PER_ROUND` extra ``GetJob``
  once per :data:`QUEUE_INFO_EVERY` rounds, for a job queued for at least an interval, the
  never-asked and oldest first, and only when the ``GetJob`` quota has room at once.

Nothing is written for a job whose state (or, queued, place) did not change.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from .covalent_loader import server_log
from .service import arn_region

#: A queued job's place is asked at most once per this many poll intervals.
QUEUE_INFO_EVERY = 3
#: Extra ``GetJob`` (with ``QueueInfo``) in a round of the watcher, when it searches (and
#: such a round at most once per :data:`QUEUE_INFO_EVERY` intervals).
QUEUE_LOOKUPS_PER_ROUND = 1


def enabled() -> bool:
    """Whether the server log shows the progress lines (INFO)."""
    return server_log.isEnabledFor(logging.INFO)


def console_url(job_arn: str) -> str:
    """The job's page in the Amazon Braket console, in the job's Region."""
    region = arn_region(job_arn)
    return (
        f"https://{region}.console.aws.amazon.com/braket/home?region={region}"
        f"#/jobs/{quote(job_arn, safe='')}"
    )


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{max(seconds, 0.0):.1f} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class JobProgress:
    """What the server log has said of one job, and when its queue place was last asked."""

    dispatch_id: str
    node_id: str
    job_name: str
    job_arn: str
    #: When the job was submitted (``CreateJob``), for the time since.
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    #: The queue and place last read (``queueInfo``), while QUEUED.
    queue: str = ""
    position: str = ""
    #: ``time.monotonic()`` of the last ``QueueInfo`` look-up (never: -inf).
    asked_at: float = float("-inf")
    #: What the last line said: (state, place).
    said: tuple[str, str] | None = None

    def wants_queue_info(self, interval: float, now: float | None = None) -> bool:
        """Whether the job's place may be asked again now."""
        now = time.monotonic() if now is None else now
        return now - self.asked_at >= QUEUE_INFO_EVERY * interval

    def since_submission(self) -> float:
        """Seconds since submission."""
        return (datetime.now(timezone.utc) - self.created_at).total_seconds()

    def observe(self, status: str, job: dict[str, Any] | None) -> str | None:
        """Take the job as the watcher read it; the line to log, or None when nothing
        changed (the same state, and queued, the same place)."""
        info = (job or {}).get("queueInfo") or {}
        if status == "QUEUED" and info.get("position") not in (None, "", "None"):
            self.queue, self.position = str(info.get("queue") or ""), str(info["position"])
        elif status != "QUEUED":
            self.queue = self.position = ""
        now_saying = (status, self.position if status == "QUEUED" else "")
        if now_saying == self.said:
            return None
        self.said = now_saying
        return self.line(status)

    def line(self, status: str) -> str:
        """One progress line."""
        where = ""
        if status == "QUEUED":
            where = (
                f" in {self.queue or 'the jobs queue'} at position {self.position}"
                if self.position
                else " (queue position not known yet)"
            )
        return (
            f"Braket job {self.job_name} (dispatch {self.dispatch_id}, node {self.node_id}) "
            f"{status}{where}, {duration(self.since_submission())} after submission: "
            f"{console_url(self.job_arn)}"
        )


#: The state ``covalent-braket jobs`` shows for an electron that waits for a job slot.
WAITING_FOR_SLOT = "WAITING FOR A JOB SLOT"


def waiting_line(dispatch_id: str, node_id: str, ahead: int, in_use: str) -> str:
    """The line of an electron that waits for a job slot (it has no job yet)."""
    return (
        f"Braket electron (dispatch {dispatch_id}, node {node_id}) waiting for a job slot "
        f"({ahead} ahead): {in_use}"
    )


def choose_for_queue_info(candidates: dict[str, JobProgress], interval: float) -> list[str]:
    """Which of the jobs a search showed queued (ARN -> progress) to read with ``GetJob`` for
    their place in the queue in this round (an extra call each): at most
    :data:`QUEUE_LOOKUPS_PER_ROUND`, among jobs queued for an interval or more whose place is
    due, the never-asked and oldest first."""
    now = time.monotonic()
    due = sorted(
        (entry.asked_at, entry.created_at, arn)
        for arn, entry in candidates.items()
        if entry.wants_queue_info(interval, now) and entry.since_submission() >= interval
    )
    return [arn for _, _, arn in due[:QUEUE_LOOKUPS_PER_ROUND]]
