"""A finished task's result: fetched, authenticated as the job runner's for this attempt,
only then unpickled; and the task's objects cleaned up afterwards, off the result's path."""

from __future__ import annotations

import hmac
import io
from typing import IO, Any

from . import aws, signing, transfer
from .config import BraketSettings
from .covalent_loader import server_log
from .errors import BraketJobError
from .job.runner import RESULT_FORMAT, RESULT_KEY, chunks, read_result_header, result_mac
from .location import TASK_OBJECTS, TaskLocation

#: The clean-ups under way, on the I/O threads.
_cleanups = aws.Background(aws.io_pool)


def download(
    settings: BraketSettings,
    location: TaskLocation,
    job: dict[str, Any],
    key: bytes | None = None,
    missing_ok: bool = False,
) -> dict[str, Any] | None:
    """Download ``result.pkl``, authenticate it and unpickle it; None when a FAILED job left
    none (or, with ``missing_ok``, when there is none yet).

    Nothing of the object is unpickled before its header has named this attempt's task and
    job and its MAC (see :func:`~covalent_braket_plugin.job.runner.result_header`) has been
    found to be the one the attempt's key gives: anyone may write to the task's prefix, but
    only the executor and the attempt's job know the key. ``key`` is a packed job member's
    (:mod:`~covalent_braket_plugin.packs`); by default the attempt's own.

    Raises:
        BraketJobError: the result is missing (of a COMPLETED job), not authenticated (a
            forgery, or written by another job or for another task), corrupt or unrecognised.
    """
    clients = aws.clients_for(settings)
    name = location.key(RESULT_KEY)
    where = f"s3://{location.bucket}/{name}"
    try:
        data, spool = transfer.fetch(
            clients, location.bucket, name, settings.cache_dir, aws.bucket_owner(settings)
        )
    except aws.AwsError as exc:
        if job["status"] == "FAILED" or (missing_ok and exc.code in aws.NO_SUCH_KEY):
            return None
        raise BraketJobError(
            f"Braket job {job['jobArn']} completed but its result {where} could not be read: {exc}"
        ) from exc
    stream = io.BytesIO(data) if spool is None else spool  # a small result's bytes, not copied
    del data
    try:
        _authenticate(location, job, where, stream, key)
        outcome = _unpickled(job, where, stream)
    finally:
        stream.close()
    if not isinstance(outcome, dict) or outcome.get("format") != RESULT_FORMAT:
        raise BraketJobError(f"Braket job {job['jobArn']} left an unrecognised result at {where}")
    return outcome


def _authenticate(
    location: TaskLocation,
    job: dict[str, Any],
    where: str,
    stream: IO[bytes],
    key: bytes | None = None,
) -> None:
    """Check the result's header and MAC, reading its payload a MiB at a time; leave
    ``stream`` at the payload.

    Raises:
        BraketJobError: the result is not this attempt's job runner's.
    """
    job_arn = job["jobArn"]
    try:
        header = read_result_header(stream)
    except ValueError as exc:
        raise _unauthenticated(
            where,
            f"{exc}: a corrupt result, or one written elsewhere, not by Braket job {job_arn}",
        ) from None
    if header["task_uri"] != location.uri or header["job_name"] != job["jobName"]:
        raise _unauthenticated(
            where,
            f"it was written by job {header['job_name']!r} for {header['task_uri']!r}, "
            f"not by Braket job {job_arn}",
        )
    start = stream.tell()
    key = key or signing.attempt_key(location.uri, location.job_name)
    expected = result_mac(key, location.uri, job["jobName"], chunks(stream)).encode()
    if not hmac.compare_digest(expected, header["mac"].encode("utf-8", "replace")):
        raise _unauthenticated(
            where,
            "its MAC is not the one this attempt's key gives: it was not written by the "
            f"runner of Braket job {job_arn}, or was changed since",
        )
    stream.seek(start)


def _unauthenticated(where: str, reason: str) -> BraketJobError:
    return BraketJobError(
        f"the result at {where} was not authenticated, so nothing of it was unpickled and it "
        f"was not used: {reason}"
    )


def _unpickled(job: dict[str, Any], where: str, stream: IO[bytes]) -> Any:
    """The authenticated payload, unpickled.

    Raises:
        BraketJobError: the payload is no pickle cloudpickle can load here.
    """
    import cloudpickle

    try:
        return cloudpickle.load(stream)
    except Exception as exc:
        raise BraketJobError(
            f"Braket job {job['jobArn']} left a corrupt result at {where}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def delete_task_objects(settings: BraketSettings, location: TaskLocation) -> None:
    """Delete the runner and pickles this task wrote (the job's own outputs are kept)."""
    try:
        delete_keys(settings, location.bucket, [location.key(name) for name in TASK_OBJECTS])
    except aws.AwsError as exc:
        server_log.warning(f"Could not delete task objects under {location.uri}: {exc}")


def list_keys(settings: BraketSettings, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix``, all pages of ``ListObjectsV2``. Blocking.

    Raises:
        AwsError: A ``ListObjectsV2`` call failed.
    """
    keys: list[str] = []
    more: dict[str, str] = {}
    while True:
        page = aws.call(
            aws.clients_for(settings).s3,
            "list_objects_v2",
            Bucket=bucket,
            Prefix=prefix,
            **more,
            **aws.bucket_owner(settings),
        )
        keys += [item["Key"] for item in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return keys
        more = {"ContinuationToken": page["NextContinuationToken"]}


def delete_keys(settings: BraketSettings, bucket: str, keys: list[str]) -> None:
    """Delete ``keys`` (``DeleteObjects`` in quiet mode, 1,000 at a time), naming in the
    server log those S3 says it did not delete. Blocking.

    Raises:
        AwsError: A ``DeleteObjects`` call failed.
    """
    for start in range(0, len(keys), 1000):
        answer = aws.call(
            aws.clients_for(settings).s3,
            "delete_objects",
            Bucket=bucket,
            Delete={"Objects": [{"Key": key} for key in keys[start : start + 1000]], "Quiet": True},
            **aws.bucket_owner(settings),
        )
        warn_of_undeleted(bucket, answer)


def warn_of_undeleted(bucket: str, answer: dict[str, Any]) -> None:
    """Name, in the server log, the keys a ``DeleteObjects`` answer says it did not delete:
    S3 answers 200 all the same (quiet mode leaves out only what it deleted)."""
    errors = answer.get("Errors") or []
    if errors:
        named = "; ".join(
            f"s3://{bucket}/{error.get('Key')} ({error.get('Code')}: {error.get('Message')})"
            for error in errors
        )
        server_log.warning(f"S3 did not delete {len(errors)} object(s): {named}")


def clean_up_later(settings: BraketSettings, location: TaskLocation) -> None:
    """Delete the task's objects in the background: the node completes without waiting."""
    _cleanups.submit(delete_task_objects, settings, location)


def later(clean_up: Any, *args: Any) -> None:
    """Another clean-up in the background, waited for with the task objects' ones."""
    _cleanups.submit(clean_up, *args)


def wait_for_cleanups(timeout: float = 60.0) -> None:
    """Block until the background clean-ups started so far are done (for tests, benchmarks
    and orderly shutdown)."""
    _cleanups.wait(timeout)
