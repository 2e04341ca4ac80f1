"""A dispatch's Braket jobs, found as the executor names them, and each described as a row of
the ``covalent-braket jobs`` table.

The jobs are found by ``SearchJobs`` for the job names that start with the dispatch's
(``cov-<dispatch id>-...``), confirmed by the tags every job carries
(``covalent:dispatch_id``, ``covalent:node_id``, ``covalent:attempt``). What a finished job
used and cost is its ``usage.json`` (:mod:`~covalent_braket_plugin.usage`). The settings
(Region, profile, credentials, bucket) are the executor's, from ``[executors.braket]`` in
covalent.conf, with the command's ``--region`` and ``--profile`` over them. Every Braket call
is paced within the account's quotas, as the executor's are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from . import aws, jobs, pacing, progress, server_board, usage
from .config import (
    ATTEMPT_TAG,
    DISPATCH_TAG,
    NAME_TAG,
    NODE_TAG,
    BraketSettings,
    merged_settings,
    private_cache_dir,
)
from .job.runner import HP_MEMBER_PREFIX, HP_TASK_URI
from .jobs import search as search_jobs
from .location import TaskLocation, job_name
from .service import TERMINAL_STATES, iso_time, timestamp


def settings_for(region: str = "", profile: str = "") -> BraketSettings:
    """The executor's settings from covalent.conf, with ``region`` and ``profile`` over them.

    Args:
        region: the Region over covalent.conf's ("" for covalent.conf's).
        profile: the AWS profile over covalent.conf's ("" for covalent.conf's).

    Returns:
        The settings, checked.

    Raises:
        InvalidSettingError: naming the first invalid setting.
    """
    values = merged_settings({"region": region or None, "profile": profile or None})
    return BraketSettings.from_mapping(values)


def dispatch_prefix(dispatch_id: str) -> str:
    """What the name of every job of the dispatch starts with.

    Args:
        dispatch_id: the Covalent dispatch id.

    Returns:
        The common start of the dispatch's job names (the dispatch id is shortened in them to
        fit the longest node ids and attempts).
    """
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
    """The dispatch's jobs, in the configured Region and the device's. Blocking.

    Args:
        settings: the executor's settings.
        dispatch_id: the Covalent dispatch id.

    Returns:
        The jobs' ``SearchJobs`` summaries, each with the settings of its Region, by node and
        attempt.

    Raises:
        AwsError: when a search fails.
    """
    name = dispatch_prefix(dispatch_id)
    found = [
        (where, summary)
        for where, summary in _searched(
            settings, [{"name": "jobName", "operator": "CONTAINS", "values": [name]}]
        )
        if (summary.get("tags") or {}).get(DISPATCH_TAG) == dispatch_id
    ]
    found.sort(key=lambda pair: _order(pair[1]))
    return found


def _searched(
    settings: BraketSettings, filters: list[dict[str, Any]]
) -> Iterator[tuple[BraketSettings, dict[str, Any]]]:
    """Every job ``SearchJobs`` finds with ``filters`` in the configured Region and the
    device's, with the settings of its Region; each page paced. Blocking."""
    for where in _regions(settings):
        summaries = search_jobs(
            aws.clients_for(where).braket,
            filters,
            before_page=lambda where=where: pacing.wait_sync(*aws.quota_key(where), ["SearchJobs"]),
        )
        for summary in summaries:
            yield where, summary


def _order(job: dict[str, Any]) -> tuple[Any, ...]:
    tags = job.get("tags") or {}
    node = str(tags.get(NODE_TAG, ""))
    attempt = str(tags.get(ATTEMPT_TAG, "0"))
    return (
        (0, int(node), "") if node.isdigit() else (1, 0, node),
        int(attempt) if attempt.isdigit() else 0,
    )


def describe(settings: BraketSettings, summary: dict[str, Any]) -> dict[str, Any]:
    """One row of the ``jobs`` table. Blocking.

    A finished job whose ``usage.json`` is where the settings' bucket puts it costs no Braket
    call; the others are read with ``GetJob``.

    Args:
        settings: the settings of the job's Region.
        summary: the job's ``SearchJobs`` summary (with its tags).

    Returns:
        The row: node, attempt, job name and ARN, state, queue and place in it, times, billed
        milliseconds, quantum tasks by device, estimated cost, console link.

    Raises:
        AwsError: when ``GetJob`` fails.
    """
    tags = summary.get("tags") or {}
    node, attempt = str(tags.get(NODE_TAG, "")), str(tags.get(ATTEMPT_TAG, "0"))
    job, record = _job_and_usage(settings, summary)
    info = job.get("queueInfo") or {}
    position = info.get("position") if job["status"] == "QUEUED" else None
    billable = job.get("billableDuration")
    if billable is None and record is not None:
        instance = record.get("instance") or {}
        billable = instance.get("job_billable_ms", instance.get("billable_ms"))
    cost = (record or {}).get("cost")
    packed = (record or {}).get("packed")
    if packed:  # the record is the first electron's share: the job's is all of theirs
        cost = _packed_cost(settings, job)
    return {
        "node": node,
        "node_name": str(tags.get(NAME_TAG, "")),
        "attempt": _int(attempt),
        "job_name": job.get("jobName", summary.get("jobName")),
        "job_arn": summary["jobArn"],
        "state": job["status"],
        "queue": info.get("queue") if position not in (None, "None") else None,
        "queue_position": position if position not in (None, "None") else None,
        "started": iso_time(job.get("startedAt")),
        "ended": iso_time(job.get("endedAt")),
        "billable_ms": billable,
        "quantum_tasks": _quantum_tasks(record),
        "estimated_cost_usd": cost["total"] if cost else None,
        "cost_complete": cost["complete"] if cost else None,
        "cost_notes": _cost_notes(job, record, cost),
        "usage_recorded": record is not None,
        "electrons": int(packed["members"]) if packed else 1,
        "console": progress.console_url(summary["jobArn"]),
    }


def _cost_notes(
    job: dict[str, Any], record: dict[str, Any] | None, cost: dict[str, Any] | None
) -> list[str]:
    """Why an estimate is missing or partial (``usage.json``'s notes), or why there is none
    yet."""
    if record is None:
        if job["status"] in TERMINAL_STATES:
            return ["no usage.json: the server that followed the job did not record it"]
        return [] if cost else ["the job has not ended"]
    return [str(note) for note in record.get("notes") or []]


def _packed_cost(settings: BraketSettings, job: dict[str, Any]) -> dict[str, Any] | None:
    """A packed job's estimated cost: the sum of its electrons' shares (each electron's
    ``usage.json``, under its own prefix, named by the job's hyperparameters). Blocking."""
    if "hyperParameters" not in job:
        job = jobs.get_paced(settings, job["jobArn"])
    total, complete, found = 0.0, True, 0
    for name, entry in (job.get("hyperParameters") or {}).items():
        if not name.startswith(HP_MEMBER_PREFIX):
            continue
        uri = str(json.loads(entry).get("uri", ""))
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        cost = (usage.load(settings, bucket, prefix) or {}).get("cost") if prefix else None
        if cost is None:
            complete = False
            continue
        found += 1
        total += float(cost["total"])
        complete = complete and bool(cost["complete"])
    return {"total": total, "complete": complete} if found else None


def _job_and_usage(
    settings: BraketSettings, summary: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The job (its summary, or ``GetJob``'s answer when its ``usage.json`` is not where the
    settings' bucket puts it) and its ``usage.json`` (None until it is written)."""
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
        job = jobs.get_paced(settings, summary["jobArn"], queue_info=status == "QUEUED")
        uri = (job.get("hyperParameters") or {}).get(HP_TASK_URI, "")
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if job["status"] in TERMINAL_STATES and uri.startswith("s3://") and prefix:
            record = usage.load(settings, bucket, prefix)
    return job, record


def _quantum_tasks(record: dict[str, Any] | None) -> dict[str, dict[str, int]]:
    """The quantum tasks and shots of a ``usage.json``, by device name."""
    return {
        device.rsplit("/", 1)[-1]: {
            "tasks": sum((figures.get("tasks") or {}).values()),
            "shots": figures.get("shots", 0),
        }
        for device, figures in ((record or {}).get("quantum_tasks") or {}).items()
    }


def _int(text: str) -> int:
    return int(text) if str(text).isdigit() else 0


def jobs_rows(settings: BraketSettings, dispatch_id: str) -> list[dict[str, Any]]:
    """Every row of the dispatch's ``jobs`` table. Blocking.

    Args:
        settings: the executor's settings.
        dispatch_id: the Covalent dispatch id.

    Returns:
        One row per job (see :func:`describe`), by node and attempt, then one per electron
        that waits for a job slot (see :func:`waiting_rows`).

    Raises:
        AwsError: when a Braket call fails.
    """
    found = [describe(where, summary) for where, summary in find_jobs(settings, dispatch_id)]
    return found + waiting_rows(settings, dispatch_id)


#: How far back ``--orphans`` looks for jobs: a job queues for days at most (the executor gives
#: up after a week) and runs at most 5 days (``maxRuntimeInSeconds`` 432000).
ORPHAN_WINDOW_DAYS = 14


def orphans(settings: BraketSettings) -> list[tuple[BraketSettings, dict[str, Any]]]:
    """This plugin's jobs (by their name and tags) that are not over and that no live Covalent
    server of this user follows (their boards, :mod:`~covalent_braket_plugin.server_board`): the
    server that created them stopped or crashed, and Covalent resumes nothing, so they run on,
    billed, for no one. In the configured Region and the device's. Blocking.

    Args:
        settings: the executor's settings (their ``cache_dir`` holds the servers' boards).

    Returns:
        The jobs' ``SearchJobs`` summaries, each with the settings of its Region.

    Raises:
        AwsError: when a search fails.
    """
    followed = server_board.followed(private_cache_dir(settings.cache_dir))
    since = datetime.now(timezone.utc) - timedelta(days=ORPHAN_WINDOW_DAYS)
    filters = [
        {"name": "jobName", "operator": "CONTAINS", "values": ["cov-"]},
        {"name": "createdAt", "operator": "GTE", "values": [timestamp(since)]},
    ]
    found = [
        (where, summary)
        for where, summary in _searched(settings, filters)
        if DISPATCH_TAG in (summary.get("tags") or {})
        and summary["status"] not in TERMINAL_STATES
        and summary["jobArn"] not in followed
    ]
    found.sort(key=lambda pair: str(pair[1].get("createdAt", "")))
    return found


def orphan_rows(settings: BraketSettings) -> list[dict[str, Any]]:
    """A ``jobs`` table row per orphaned job (see :func:`orphans`), with its dispatch id.
    Blocking."""
    return [
        {"dispatch_id": (summary.get("tags") or {}).get(DISPATCH_TAG), **describe(where, summary)}
        for where, summary in orphans(settings)
    ]


def waiting_rows(settings: BraketSettings, dispatch_id: str) -> list[dict[str, Any]]:
    """A row per electron of the dispatch that waits for a job slot in a Covalent server of
    this user (its slot board, in ``cache_dir``: :mod:`~covalent_braket_plugin.server_board`):
    no job yet, its state ``WAITING FOR A JOB SLOT`` and its place ``N ahead``.

    Args:
        settings: the executor's settings (their ``cache_dir``).
        dispatch_id: the Covalent dispatch id.

    Returns:
        The rows, first in line first.
    """
    return [
        {
            "node": str(entry["node_id"]),
            "attempt": 0,
            "job_name": "-",
            "job_arn": None,
            "state": progress.WAITING_FOR_SLOT,
            "queue": entry.get("where"),
            "queue_position": f"{entry['ahead']} ahead",
            "started": None,
            "ended": None,
            "billable_ms": None,
            "quantum_tasks": {},
            "estimated_cost_usd": None,
            "cost_complete": None,
            "usage_recorded": False,
            "electrons": 1,
            "console": "",
        }
        for entry in server_board.read(private_cache_dir(settings.cache_dir), dispatch_id)
    ]
