"""A job's CloudWatch log, read back for the user."""

from __future__ import annotations

from typing import Any

from . import aws
from .config import BraketSettings
from .service import LOG_GROUP, log_stream_prefix


def tail(settings: BraketSettings, job: dict[str, Any], limit: int = 200) -> str:
    """The last lines of the job's log, headed, or "" when there are none or they cannot be
    read (for a job that failed without a result). Blocking."""
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
        return ""
    if not lines:
        return ""
    return (
        f"--- last lines of the Braket job log ({job['jobName']}) ---\n"
        + "\n".join(lines[-limit:])
        + "\n"
    )
