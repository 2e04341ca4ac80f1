"""``covalent-braket jobs`` and ``covalent-braket logs``: a dispatch's Braket jobs, what
they used and cost, and their logs.

The jobs are found as the executor names them: ``SearchJobs`` for the job names that start
with the dispatch's (``cov-<dispatch id>-...``), confirmed by the tags every job carries
(``covalent:dispatch_id``, ``covalent:node_id``, ``covalent:attempt``). What a finished job
used and cost is its ``usage.json`` (:mod:`~covalent_braket_plugin.usage`). The settings
(Region, profile, credentials, bucket) are the executor's, from ``[executors.braket]`` in
covalent.conf, with ``--region`` and ``--profile`` over them. Every Braket call is paced
within the account's quotas, as the executor's are.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from . import aws, jobs, pacing, progress, usage
from .config import (
    ATTEMPT_TAG,
    DISPATCH_TAG,
    NODE_TAG,
    BraketSettings,
    InvalidSettingError,
    merged_settings,
)
from .job.runner import HP_TASK_URI
from .jobs import search as search_jobs
from .location import TaskLocation, job_name
from .logs import LATE_LINES_SECONDS
from .service import LOG_GROUP, TERMINAL_STATES, iso_time, log_stream_prefix

#: Seconds between looks at a followed job's log and state.
FOLLOW_SECONDS = 2.0


def add_commands(subparsers: Any) -> None:
    """Register ``jobs`` and ``logs`` with the ``covalent-braket`` command's subparsers."""
    jobs = subparsers.add_parser(
        "jobs",
        help="a dispatch's Braket jobs: state, queue, times, quantum tasks, estimated cost",
    )
    jobs.add_argument("dispatch_id", help="the Covalent dispatch id")
    jobs.add_argument("--json", action="store_true", help="print the jobs as JSON")
    _where(jobs)
    jobs.set_defaults(handler=_jobs_command)

    logs = subparsers.add_parser("logs", help="the CloudWatch log of a dispatch's Braket jobs")
    logs.add_argument("dispatch_id", help="the Covalent dispatch id")
    logs.add_argument("node", nargs="?", default=None, help="only this node's jobs")
    logs.add_argument(
        "--follow", action="store_true", help="keep reading running jobs until they end"
    )
    _where(logs)
    logs.set_defaults(handler=_logs_command)


def _where(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", default="", help="override covalent.conf's region")
    parser.add_argument("--profile", default="", help="override covalent.conf's profile")


def settings_for(region: str = "", profile: str = "") -> BraketSettings:
    """The executor's settings from covalent.conf, with ``region`` and ``profile`` over them.

    Raises:
        InvalidSettingError: naming the first invalid setting.
    """
    values = merged_settings({"region": region or None, "profile": profile or None})
    return BraketSettings.from_mapping(values)


def dispatch_prefix(dispatch_id: str) -> str:
    """What the name of every job of the dispatch starts with (the dispatch id is shortened
    to fit the longest node ids and attempts)."""
    shortest = job_name(dispatch_id, "9" * 12, 99)
    longest = job_name(dispatch_id, "0", 0)
    common = 0
    while common < min(len(shortest), len(longest)) and shortest[common] == longest[common]:
        common += 1
    return shortest[:common]


def _regions(settings: BraketSettings) -> list[BraketSettings]:
    """The settings of each Region the dispatch's jobs may be in: the configured one and the
    device's (a QPU's jobs run in its Region)."""
    found = [settings.in_region(aws.clients_for(settings).region)]
    device = settings.device_region
    if device and device != found[0].region:
        found.append(settings.in_region(device))
    return found


def find_jobs(settings: BraketSettings, dispatch_id: str) -> list[tuple[BraketSettings, dict]]:
    """The dispatch's jobs (search summaries) with the settings of their Region, by node and
    attempt. Blocking."""
    found: list[tuple[BraketSettings, dict]] = []
    name = dispatch_prefix(dispatch_id)
    for where in _regions(settings):
        summaries = search_jobs(
            aws.clients_for(where).braket,
            [{"name": "jobName", "operator": "CONTAINS", "values": [name]}],
            before_page=lambda where=where: pacing.wait_sync(*aws.quota_key(where), ["SearchJobs"]),
        )
        found += [
            (where, summary)
            for summary in summaries
            if (summary.get("tags") or {}).get(DISPATCH_TAG) == dispatch_id
        ]
    found.sort(key=lambda pair: _order(pair[1]))
    return found


def _order(job: dict[str, Any]) -> tuple[Any, ...]:
    tags = job.get("tags") or {}
    node = str(tags.get(NODE_TAG, ""))
    attempt = str(tags.get(ATTEMPT_TAG, "0"))
    return (
        (0, int(node), "") if node.isdigit() else (1, 0, node),
        int(attempt) if attempt.isdigit() else 0,
    )


def _get_job(settings: BraketSettings, arn: str, queue_info: bool = False) -> dict[str, Any]:
    pacing.wait_sync(*aws.quota_key(settings), ["GetJob"])
    return jobs.get(settings, arn, queue_info)


def describe(settings: BraketSettings, summary: dict[str, Any]) -> dict[str, Any]:
    """One row of the ``jobs`` table. A finished job whose ``usage.json`` is where the
    settings' bucket puts it costs no Braket call; the others are read with ``GetJob``."""
    tags = summary.get("tags") or {}
    node, attempt = str(tags.get(NODE_TAG, "")), str(tags.get(ATTEMPT_TAG, "0"))
    dispatch = str(tags.get(DISPATCH_TAG, ""))
    status = summary["status"]
    record = None
    job: dict[str, Any] = summary
    if status in TERMINAL_STATES:
        place = TaskLocation.new(settings.s3_bucket_name, dispatch, node, _int(attempt))
        record = usage.load(settings, place.bucket, place.prefix)
    if record is None:
        job = _get_job(settings, summary["jobArn"], queue_info=status == "QUEUED")
        uri = (job.get("hyperParameters") or {}).get(HP_TASK_URI, "")
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if job["status"] in TERMINAL_STATES and uri.startswith("s3://") and prefix:
            record = usage.load(settings, bucket, prefix)
    info = job.get("queueInfo") or {}
    position = info.get("position") if job["status"] == "QUEUED" else None
    billable = job.get("billableDuration")
    if billable is None and record is not None:
        billable = (record.get("instance") or {}).get("billable_ms")
    tasks = {
        device.rsplit("/", 1)[-1]: {
            "tasks": sum((figures.get("tasks") or {}).values()),
            "shots": figures.get("shots", 0),
        }
        for device, figures in ((record or {}).get("quantum_tasks") or {}).items()
    }
    cost = (record or {}).get("cost")
    return {
        "node": node,
        "attempt": _int(attempt),
        "job_name": job.get("jobName", summary.get("jobName")),
        "job_arn": summary["jobArn"],
        "state": job["status"],
        "queue": info.get("queue") if position not in (None, "None") else None,
        "queue_position": position if position not in (None, "None") else None,
        "started": iso_time(job.get("startedAt")),
        "ended": iso_time(job.get("endedAt")),
        "billable_ms": billable,
        "quantum_tasks": tasks,
        "estimated_cost_usd": cost["total"] if cost else None,
        "cost_complete": cost["complete"] if cost else None,
        "usage_recorded": record is not None,
        "console": progress.console_url(summary["jobArn"]),
    }


def _int(text: str) -> int:
    return int(text) if str(text).isdigit() else 0


def jobs_rows(settings: BraketSettings, dispatch_id: str) -> list[dict[str, Any]]:
    """Every row of the dispatch's ``jobs`` table. Blocking."""
    return [describe(where, summary) for where, summary in find_jobs(settings, dispatch_id)]


def render(rows: list[dict[str, Any]]) -> str:
    """The ``jobs`` table as text."""
    header = [
        "NODE",
        "JOB",
        "STATE",
        "QUEUE",
        "STARTED",
        "ENDED",
        "BILLED",
        "QUANTUM TASKS",
        "EST. USD",
        "CONSOLE",
    ]
    lines = []
    for row in rows:
        tasks = "; ".join(
            f"{device} {figures['tasks']} task{'s' * (figures['tasks'] != 1)} "
            f"{figures['shots']} shots"
            for device, figures in row["quantum_tasks"].items()
        )
        cost = row["estimated_cost_usd"]
        lines.append(
            [
                row["node"],
                row["job_name"],
                row["state"],
                row["queue_position"] or "-",
                _short_time(row["started"]),
                _short_time(row["ended"]),
                progress.duration(row["billable_ms"] / 1000) if row["billable_ms"] else "-",
                tasks or ("-" if row["usage_recorded"] else ""),
                _money(cost) + ("" if row["cost_complete"] else "*") if cost is not None else "-",
                row["console"],
            ]
        )
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=False)
    ]
    out = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=False))
        for cells in [header, *lines]
    ]
    priced = [row["estimated_cost_usd"] for row in rows if row["estimated_cost_usd"] is not None]
    if priced:
        out.append(
            f"\nEstimated total: USD {sum(priced):.4f} for {len(priced)} of {len(rows)} jobs "
            "(instances and quantum tasks; * an estimate that lacks a price)"
        )
    return "\n".join(line.rstrip() for line in out)


def _money(amount: float) -> str:
    return "<0.0001" if 0 < amount < 0.00005 else f"{amount:.4f}"


def _short_time(moment: str | None) -> str:
    return moment[:19].replace("T", " ") if moment else "-"


# ---------------------------------------------------------------------------- logs
class JobLog:
    """A job's log streams, read from where the last read stopped (``startFromHead``, then
    ``nextForwardToken`` until it comes back unchanged)."""

    def __init__(self, settings: BraketSettings, job: dict[str, Any]) -> None:
        self.settings = settings
        self.job = job
        self.prefix = log_stream_prefix(job["jobName"], job["jobArn"])
        self.tokens: dict[str, str | None] = {}

    def read(self, out: TextIO) -> int:
        """Write the lines that are new since the last read; how many there were."""
        logs = aws.clients_for(self.settings).logs
        written = 0
        for stream in self._streams(logs):
            token = self.tokens.get(stream)
            while True:
                request: dict[str, Any] = {
                    "logGroupName": LOG_GROUP,
                    "logStreamName": stream,
                    "startFromHead": True,
                }
                if token:
                    request["nextToken"] = token
                page = aws.call(logs, "get_log_events", **request)
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


def show_log(
    settings: BraketSettings,
    job: dict[str, Any],
    out: TextIO,
    follow: bool = False,
    every: float = FOLLOW_SECONDS,
) -> str:
    """Write the job's log; with ``follow``, keep reading while the job runs, and what is
    left once it has ended. The job's last state seen. Blocking."""
    log = JobLog(settings, job)
    status = job["status"]
    log.read(out)
    while follow and status not in TERMINAL_STATES:
        time.sleep(every)
        status = _get_job(settings, job["jobArn"])["status"]
        log.read(out)
        if status in TERMINAL_STATES:  # its last lines can come a moment after its end
            time.sleep(LATE_LINES_SECONDS)
            log.read(out)
    return status


def logs_report(
    settings: BraketSettings,
    dispatch_id: str,
    node: str | None,
    out: TextIO,
    follow: bool = False,
    every: float = FOLLOW_SECONDS,
) -> int:
    """Write the logs of the dispatch's jobs (of one node), each headed; the jobs shown."""
    found = [
        (where, job)
        for where, job in find_jobs(settings, dispatch_id)
        if node is None or str((job.get("tags") or {}).get(NODE_TAG)) == str(node)
    ]
    for where, job in found:
        tags = job.get("tags") or {}
        out.write(
            f"==> {job['jobName']} (node {tags.get(NODE_TAG)}, attempt {tags.get(ATTEMPT_TAG)}, "
            f"{job['status']}) <==\n"
        )
        state = show_log(where, job, out, follow=follow, every=every)
        if state != job["status"]:
            out.write(f"==> {job['jobName']} ended {state} <==\n")
    out.flush()
    return len(found)


# ---------------------------------------------------------------------------- commands
def _jobs_command(args: argparse.Namespace) -> int:
    try:
        settings = settings_for(args.region, args.profile)
        rows = jobs_rows(settings, args.dispatch_id)
    except (InvalidSettingError, aws.AwsError) as exc:
        print(f"covalent-braket jobs: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        print(render(rows))
    if not rows:
        print(
            f"covalent-braket jobs: no Braket jobs of dispatch {args.dispatch_id}", file=sys.stderr
        )
        return 1
    return 0


def _logs_command(args: argparse.Namespace) -> int:
    try:
        settings = settings_for(args.region, args.profile)
        shown = logs_report(settings, args.dispatch_id, args.node, sys.stdout, follow=args.follow)
    except (InvalidSettingError, aws.AwsError) as exc:
        print(f"covalent-braket logs: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if not shown:
        which = f" node {args.node}" if args.node is not None else ""
        print(
            f"covalent-braket logs: no Braket jobs of dispatch {args.dispatch_id}{which}",
            file=sys.stderr,
        )
        return 1
    return 0
