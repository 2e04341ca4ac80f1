"""Braket job calls of one task: submit an attempt (idempotently), read a job, cancel it.

Blocking: the executor calls these through :func:`~covalent_braket_plugin.aws.offload`.
"""

from __future__ import annotations

from typing import Any

from . import aws, results, transfer
from .config import BraketSettings
from .job.runner import RESULT_KEY
from .job_request import create_job_request
from .location import TaskLocation


def submit_attempt(
    settings: BraketSettings, location: TaskLocation, python: str, digest: str
) -> dict[str, Any] | None:
    """Build this attempt's ``CreateJob`` request and :func:`submit` it."""
    role_arn = aws.role_arn(settings)
    return submit(
        settings, location, create_job_request(settings, location, role_arn, python, digest)
    )


def submit(
    settings: BraketSettings, location: TaskLocation, request: dict[str, Any]
) -> dict[str, Any] | None:
    """CreateJob (idempotent); return the job to follow, or None if this attempt is spent.

    The same client token returns the same job, so a retried request (or a rebuilt
    executor) never makes a second job. A job found FAILED or CANCELLED, or COMPLETED
    with its result already collected, belongs to an earlier attempt. A refusal deletes
    the attempt's objects.
    """
    braket = aws.clients_for(settings).braket
    try:
        job_arn = aws.call(braket, "create_job", **request)["jobArn"]
    except aws.AwsError as exc:
        if exc.code == "ConflictException":  # the name is taken by an older attempt
            return None
        results.delete_task_objects(settings, location)
        raise
    try:
        job = get(settings, job_arn)
    except aws.AwsError as exc:
        if not exc.transient:
            raise
        return {
            "jobArn": job_arn,
            "jobName": location.job_name,
            "status": "QUEUED",
        }  # polling tells
    status = job["status"]
    if status in ("FAILED", "CANCELLED"):
        return None
    if status == "COMPLETED" and transfer.head(settings, location, RESULT_KEY) is None:
        return None
    return job


def get(settings: BraketSettings, job_arn: str) -> dict[str, Any]:
    """GetJob."""
    return aws.call(aws.clients_for(settings).braket, "get_job", jobArn=job_arn)


def cancel(settings: BraketSettings, job_arn: str) -> str:
    """Request cancellation; return the job's status afterwards."""
    braket = aws.clients_for(settings).braket
    try:
        return aws.call(braket, "cancel_job", jobArn=job_arn)["cancellationStatus"]
    except aws.AwsError as exc:
        if exc.code != "ConflictException":  # already finished: report where it ended
            raise
    return get(settings, job_arn)["status"]
