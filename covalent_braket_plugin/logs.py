"""A job's CloudWatch log, read back for the user."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from . import aws
from .config import BraketSettings
from .service import LOG_GROUP, log_stream_prefix

#: A job's last lines can reach CloudWatch a moment after the job ended: a tail read this
#: soon after the end is read once more, after this pause.
LATE_LINES_SECONDS = 2.0


def tail(settings: BraketSettings, job: dict[str, Any], limit: int = 200) -> str:
    """The last lines of the job's log, headed, or "" when there are none or they cannot be
    read (for a job that failed without a result). Blocking."""
    lines = _last_lines(settings, job, limit)
    ended = job.get("endedAt")
    if isinstance(ended, datetime):
        young = datetime.now(timezone.utc) - ended < timedelta(seconds=2 * LATE_LINES_SECONDS)
        if young:
            time.sleep(LATE_LINES_SECONDS)
            lines = _last_lines(settings, job, limit) or lines
    if not lines:
        return ""
    return (
        f"--- last lines of the Braket job log ({job['jobName']}) ---\n"
        + "\n".join(lines[-limit:])
        + "\n"
    )


def _last_lines(settings: BraketSettings, job: dict[str, Any], limit: int) -> list[str]:
    logs = aws.clients_for(settings).logs
    lines: list[str] = []
    try:
        streams = aws.call(
            logs,
            "describe_log_streams",
            logGroupName=LOG_GROUP,
            logStreamNamePrefix=log_stream_prefix(job["jobName"], job["jobArn"]),
        ).get("logStreams", [])
        for stream in streams:
            events = aws.call(
                logs,
                "get_log_events",
                logGroupName=LOG_GROUP,
                logStreamName=stream["logStreamName"],
                startFromHead=False,
                limit=limit,
            ).get("events", [])
            lines.extend(event["message"].rstrip("\n") for event in events)
    except aws.AwsError:
        return []
    return lines
