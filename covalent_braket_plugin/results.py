"""A finished task's result: fetched, checked against the job that wrote it, unpickled; and
the task's objects cleaned up afterwards, off the result's path."""

from __future__ import annotations

from typing import Any

from . import aws, transfer
from .config import BraketSettings
from .covalent_loader import server_log
from .errors import BraketJobError
from .job.runner import RESULT_FORMAT, RESULT_KEY
from .location import TASK_OBJECTS, TaskLocation

#: The clean-ups under way, on the I/O threads.
_cleanups = aws.Background(aws.io_pool)


def download(
    settings: BraketSettings, location: TaskLocation, job: dict[str, Any]
) -> dict[str, Any] | None:
    """Download, check and unpickle ``result.pkl``; None when a FAILED job left none.

    Raises:
        BraketJobError: the result is missing (of a COMPLETED job), corrupt, unrecognised, or
            was written by another job or for another task.
    """
    import cloudpickle

    clients = aws.clients_for(settings)
    key = location.key(RESULT_KEY)
    where = f"s3://{location.bucket}/{key}"
    try:
        data, spool = transfer.fetch(
            clients, location.bucket, key, settings.cache_dir, aws.bucket_owner(settings)
        )
    except aws.AwsError as exc:
        if job["status"] == "FAILED":
            return None
        raise BraketJobError(
            f"Braket job {job['jobArn']} completed but its result {where} could not be read: {exc}"
        ) from exc
    try:
        outcome = cloudpickle.loads(data) if spool is None else cloudpickle.load(spool)
    except Exception as exc:
        raise BraketJobError(
            f"Braket job {job['jobArn']} left a corrupt result at {where}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        del data
        if spool is not None:
            spool.close()
    if not isinstance(outcome, dict) or outcome.get("format") != RESULT_FORMAT:
        raise BraketJobError(f"Braket job {job['jobArn']} left an unrecognised result at {where}")
    if outcome.get("task_uri") != location.uri or outcome.get("job_name") != job["jobName"]:
        raise BraketJobError(
            f"the result at {where} was written by job {outcome.get('job_name')!r} for "
            f"{outcome.get('task_uri')!r}, not by Braket job {job['jobArn']}; it was not used"
        )
    return outcome


def delete_task_objects(settings: BraketSettings, location: TaskLocation) -> None:
    """Delete the runner and pickles this task wrote (the job's own outputs are kept)."""
    keys = [{"Key": location.key(name)} for name in TASK_OBJECTS]
    try:
        aws.call(
            aws.clients_for(settings).s3,
            "delete_objects",
            Bucket=location.bucket,
            Delete={"Objects": keys, "Quiet": True},
            **aws.bucket_owner(settings),
        )
    except aws.AwsError as exc:
        server_log.warning(f"Could not delete task objects under {location.uri}: {exc}")


def clean_up_later(settings: BraketSettings, location: TaskLocation) -> None:
    """Delete the task's objects in the background: the node completes without waiting."""
    _cleanups.submit(delete_task_objects, settings, location)


def wait_for_cleanups(timeout: float = 60.0) -> None:
    """Block until the background clean-ups started so far are done (for tests, benchmarks
    and orderly shutdown)."""
    _cleanups.wait(timeout)
