"""A job's CloudWatch log, read back for the user: its last lines (for a job that failed
without a result) or all of it, read on from where the last read stopped and followed while
the job runs (``covalent-braket logs``). Every read goes through :class:`JobLog`, which
lists all of the job's log streams, page by page."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from . import aws, jobs
from .config import BraketSettings
from .service import LOG_GROUP, TERMINAL_STATES, log_stream_prefix

#: A job's last lines can reach CloudWatch a moment after the job ended: a tail read this
#: soon after the end is read once more, after this pause.
LATE_LINES_SECONDS = 2.0

#: Seconds between looks at a followed job's log and state.
FOLLOW_SECONDS = 2.0


class JobLog:
    """A job's log streams (all of them, page by page), read from where the last read
    stopped (``startFromHead``, then ``nextForwardToken`` until it comes back unchanged), or
    their last lines."""

    def __init__(self, settings: BraketSettings, job: dict[str, Any]) -> None:
        self.settings = settings
        self.job = job
        self.prefix = log_stream_prefix(job["jobName"], job["jobArn"])
        self.tokens: dict[str, str | None] = {}

    def read(self, out: TextIO) -> int:
        """Write the lines that are new since the last read.

        Args:
            out: where the lines go (flushed at the end).

        Returns:
            How many lines there were.

        Raises:
            AwsError: when the log cannot be read.
        """
        logs = aws.clients_for(self.settings).logs
        written = 0
        for stream in self._streams(logs):
            token = self.tokens.get(stream)
            while True:
                request: dict[str, Any] = {"startFromHead": True}
                if token:
                    request["nextToken"] = token
                page = _events(logs, stream, **request)
                for event in page.get("events", []):
                    out.write(event["message"].rstrip("\n") + "\n")
                    written += 1
                following = page.get("nextForwardToken")
                if not following or following == token:
                    break
                token = following
            self.tokens[stream] = token
        out.flush()
        return written

    def last_lines(self, limit: int) -> list[str]:
        """The last lines of each of the job's log streams, in the streams' order.

        Args:
            limit: the most lines read from each stream.

        Returns:
            The lines, without their line ends; [] when the log cannot be read.
        """
        logs = aws.clients_for(self.settings).logs
        lines: list[str] = []
        try:
            for stream in self._streams(logs):
                page = _events(logs, stream, startFromHead=False, limit=limit)
                lines.extend(event["message"].rstrip("\n") for event in page.get("events", []))
        except aws.AwsError:
            return []
        return lines

    def _streams(self, logs: Any) -> list[str]:
        names: list[str] = []
        token = None
        while True:
            request: dict[str, Any] = {
                "logGroupName": LOG_GROUP,
                "logStreamNamePrefix": self.prefix,
            }
            if token:
                request["nextToken"] = token
            found = aws.call_unless(
                {"ResourceNotFoundException"}, logs, "describe_log_streams", **request
            )
            if found is None:
                return names
            names.extend(stream["logStreamName"] for stream in found.get("logStreams", []))
            token = found.get("nextToken")
            if not token:
                return sorted(names)


def _events(logs: Any, stream: str, **request: Any) -> dict[str, Any]:
    """One page of ``GetLogEvents`` of one of the job log group's streams."""
    return aws.call(logs, "get_log_events", logGroupName=LOG_GROUP, logStreamName=stream, **request)


def tail(settings: BraketSettings, job: dict[str, Any], limit: int = 200) -> str:
    """The last lines of the job's log, headed (for a job that failed without a result).

    A job that ended a moment ago is read once more after :data:`LATE_LINES_SECONDS`, for
    the lines that reach CloudWatch after its end. Blocking.

    Args:
        settings: the job's settings (its Region, profile, credentials).
        job: the job as ``GetJob`` describes it (``jobName``, ``jobArn``, ``endedAt``).
        limit: the most lines shown.

    Returns:
        The headed lines, or "" when there are none or they cannot be read.
    """
    log = JobLog(settings, job)
    lines = log.last_lines(limit)
    ended = job.get("endedAt")
    if isinstance(ended, datetime):
        young = datetime.now(timezone.utc) - ended < timedelta(seconds=2 * LATE_LINES_SECONDS)
        if young:
            time.sleep(LATE_LINES_SECONDS)
            lines = log.last_lines(limit) or lines
    if not lines:
        return ""
    return (
        f"--- last lines of the Braket job log ({job['jobName']}) ---\n"
        + "\n".join(lines[-limit:])
        + "\n"
    )


def show_log(
    settings: BraketSettings,
    job: dict[str, Any],
    out: TextIO,
    follow: bool = False,
    every: float = FOLLOW_SECONDS,
) -> str:
    """Write the job's log; with ``follow``, keep reading while the job runs, and what is
    left once it has ended. Blocking.

    Args:
        settings: the settings of the job's Region.
        job: the job as ``SearchJobs`` or ``GetJob`` describes it (``jobName``, ``jobArn``,
            ``status``).
        out: where the lines go.
        follow: keep reading until the job ends.
        every: seconds between looks at the log and the job's state while following.

    Returns:
        The job's last state seen.

    Raises:
        AwsError: when the log or the job cannot be read.
    """
    log = JobLog(settings, job)
    status = job["status"]
    log.read(out)
    while follow and status not in TERMINAL_STATES:
        time.sleep(every)
        status = jobs.get_paced(settings, job["jobArn"])["status"]
        log.read(out)
        if status in TERMINAL_STATES:  # its last lines can come a moment after its end
            time.sleep(LATE_LINES_SECONDS)
            log.read(out)
    return status
