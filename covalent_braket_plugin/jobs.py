"""Braket job calls of one task: submit an attempt (idempotently), read a job, cancel it.

Blocking: the executor calls these through :func:`~covalent_braket_plugin.aws.offload`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from . import aws, input_data, pacing, results, signing, transfer
from .config import BraketSettings
from .images import JobImage
from .job.runner import RESULT_KEY
from .job_request import PackSpec, Submission, create_job_request
from .location import TaskLocation
from .service import SEARCH_PAGE_MAX


def submit_attempt(
    settings: BraketSettings,
    location: TaskLocation,
    python: str,
    upload: transfer.Upload,
    image: JobImage,
    pack: PackSpec | None = None,
) -> dict[str, Any] | None:
    """Submit this attempt's job; return the job to follow, or None if the attempt is spent.

    ``pack``: what a packed job runs (see :mod:`~covalent_braket_plugin.packs`).

    A fresh upload means a fresh attempt: ``CreateJob`` alone, no read of the job after it
    (the watcher's first look comes soon; and a new job may not be found for a moment). An
    attempt whose input was there already (an executor rebuilt for the same task) may have a
    job: it is looked up by its name first, so that an old client token, which the service
    keeps only for a while, is not relied on. A job found FAILED or CANCELLED, or COMPLETED
    with its result already collected, belongs to an earlier run: the attempt is spent.

    Raises:
        AwsError: transient (the caller tries again, with the same client token), past a job
            quota (the attempt's objects are kept: it is sent again once a job slot is free),
            or else (the attempt's objects have been deleted).
    """
    if upload.resumed:
        found = find_by_name(settings, location.job_name)
        if found is not None:
            return _still_running(settings, location, found)
    submission = _submission(settings, location, python, upload, image, pack)
    request = create_job_request(settings, location, submission)
    braket = aws.clients_for(settings).braket
    try:
        answer = aws.call(braket, "create_job", **request)
        job_arn = answer["jobArn"]
    except aws.AwsError as exc:
        if exc.code == "ConflictException":  # the name is taken by an older attempt
            return None
        if not (exc.transient or exc.expired or exc.code in aws.QUOTA_EXCEEDED):  # refused
            results.delete_task_objects(settings, location)  # what it would have run goes
        raise
    job = {
        "jobArn": job_arn,
        "jobName": location.job_name,
        "status": "QUEUED",
        "createdAt": service_time(answer),
    }
    if upload.resumed:  # the client token may have handed back an existing job
        try:
            job = get(settings, job_arn)
        except aws.AwsError as exc:
            if exc.code != "ResourceNotFoundException" and not exc.transient:
                raise
            return job  # too new to be read, or not readable now: the watcher will tell
        return _still_running(settings, location, job)
    return job


def service_time(answer: dict[str, Any]) -> datetime:
    """When the service answered, by its own clock (the answer's ``Date`` header, to the
    second): what a job it just created is searched by (``createdAt``), since this machine's
    clock may be ahead of the service's. This machine's time when the answer has no date.

    Args:
        answer: a boto3 answer (with its ``ResponseMetadata``).
    """
    headers = (answer.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    try:
        return parsedate_to_datetime(headers["date"]).astimezone(timezone.utc)
    except (KeyError, TypeError, ValueError):
        return datetime.now(timezone.utc)


def _submission(
    settings: BraketSettings,
    location: TaskLocation,
    python: str,
    upload: transfer.Upload,
    image: JobImage,
    pack: PackSpec | None,
) -> Submission:
    """What the attempt's ``CreateJob`` needs beyond the settings (see
    :class:`~covalent_braket_plugin.job_request.Submission`). Blocking (the role's ARN and
    the caller's account may be looked up)."""
    return Submission(
        role_arn=aws.role_arn(settings),
        image_uri=image.uri,
        python=python,
        digest=upload.sha256,
        client_token=upload.client_token,
        bucket_owner=aws.caller_account(settings)[0],
        pins=image.pins,
        result_key=signing.attempt_key(location.uri, location.job_name).hex(),
        pack=pack,
        input_channels=tuple(input_data.channels(settings)),
    )


def search(
    braket: Any,
    filters: list[dict[str, Any]],
    before_page: Callable[[], Any] | None = None,
    max_pages: int | None = None,
) -> Iterator[dict[str, Any]]:
    """The summaries ``SearchJobs`` finds, page by page (``before_page`` is called before each
    page is asked for: its pacing, its count), at most ``max_pages`` of them (None: all); a
    caller that stops early asks no more pages. Blocking."""
    token: str | None = None
    for _ in itertools.count() if max_pages is None else range(max_pages):
        request: dict[str, Any] = {"filters": filters, "maxResults": SEARCH_PAGE_MAX}
        if token:
            request["nextToken"] = token
        if before_page is not None:
            before_page()
        page = aws.call(braket, "search_jobs", **request)
        yield from page.get("jobs", [])
        token = page.get("nextToken")
        if not token:
            return


def find_by_name(settings: BraketSettings, name: str) -> dict[str, Any] | None:
    """The job of this name in the job's Region, read in full, or None."""
    braket = aws.clients_for(settings).braket
    page = aws.call(
        braket,
        "search_jobs",
        filters=[{"name": "jobName", "operator": "EQUAL", "values": [name]}],
        maxResults=1,
    )
    found = page.get("jobs") or []
    return get(settings, found[0]["jobArn"]) if found else None


def _still_running(
    settings: BraketSettings, location: TaskLocation, job: dict[str, Any]
) -> dict[str, Any] | None:
    status = job["status"]
    if status in ("FAILED", "CANCELLED"):
        return None
    if status == "COMPLETED" and transfer.head(settings, location, RESULT_KEY) is None:
        return None
    return job


def get_job(braket: Any, job_arn: str, queue_info: bool = False) -> dict[str, Any]:
    """``GetJob`` with a Braket client; with ``queue_info``, the job's place in its queue too
    (``queueInfo``, which the service returns only when asked)."""
    extra = {"additionalAttributeNames": ["QueueInfo"]} if queue_info else {}
    return aws.call(braket, "get_job", jobArn=job_arn, **extra)


def get(settings: BraketSettings, job_arn: str, queue_info: bool = False) -> dict[str, Any]:
    """``GetJob`` with the settings' client (see :func:`get_job`)."""
    return get_job(aws.clients_for(settings).braket, job_arn, queue_info)


def get_paced(settings: BraketSettings, job_arn: str, queue_info: bool = False) -> dict[str, Any]:
    """:func:`get`, once the process's pacing lets a ``GetJob`` go (blocking: for the
    command-line tools, which call from no event loop)."""
    pacing.wait_sync(*aws.quota_key(settings), ["GetJob"])
    return get(settings, job_arn, queue_info)


def cancel(settings: BraketSettings, job_arn: str) -> str:
    """Request cancellation; return the job's status afterwards."""
    braket = aws.clients_for(settings).braket
    try:
        return aws.call(braket, "cancel_job", jobArn=job_arn)["cancellationStatus"]
    except aws.AwsError as exc:
        if exc.code != "ConflictException":  # already finished: report where it ended
            raise
    return get(settings, job_arn)["status"]
