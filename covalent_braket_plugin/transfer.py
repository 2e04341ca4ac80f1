"""Moving a task's bytes: the input up (inside the runner archive, or in parts beside it),
any object down (in memory, or streamed into a spool file), without second copies.

Everything here blocks: the executor calls it through :func:`~covalent_braket_plugin.aws.offload`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import Any

from . import aws
from .config import BraketSettings
from .job import runner_archive, runner_archive_with
from .job.runner import INPUT_KEY
from .location import RUNNER_KEY, TaskLocation
from .spool import Concatenation, Spool

#: Objects up to this size go in one request; larger ones in parallel parts of this size.
SMALL_OBJECT_BYTES = 8 * 1024 * 1024
PART_BYTES = 8 * 1024 * 1024
#: Results up to this size are read into memory; larger ones stream into a spool file.
IN_MEMORY_RESULT_BYTES = 1024 * 1024
#: Threads sending the parts of inputs held in memory, shared by every upload of the process.
_part_pool = ThreadPoolExecutor(max_workers=10, thread_name_prefix="covalent-braket-part")
#: Threads for the small uploads that run beside a large one (the runner beside the input).
_side_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="covalent-braket-side")


def upload_task(settings: BraketSettings, location: TaskLocation, payload: Any) -> str:
    """Upload the runner and ``payload`` (``(function, args, kwargs)``); return the input's
    SHA-256.

    The pickle is hashed as it is written and kept as the pieces written, large buffers
    by reference (see :class:`~covalent_braket_plugin.spool.Spool`). Up to 8 MiB it travels
    inside the runner archive (one conditional ``PutObject``); beyond, it goes up beside the
    runner in 8 MiB parts, from memory or, for a pickle made of many small objects, from a
    spool file in ``cache_dir``. If this attempt's input is already there (an executor rebuilt
    for the same task), it is kept and its recorded digest returned, so the resubmitted
    ``CreateJob`` is identical.
    """
    import cloudpickle

    clients = aws.clients_for(settings)
    with Spool(settings.cache_dir, SMALL_OBJECT_BYTES) as spool:
        cloudpickle.dump(payload, spool)
        spool.settle()
        sha = spool.sha256()
        extra = {**settings.encryption, "Metadata": {"sha256": sha}}
        if spool.name is None and spool.size <= SMALL_OBJECT_BYTES:
            bundle = Concatenation(runner_archive_with(spool.pieces, INPUT_KEY))
            checked = {**extra, "ChecksumCRC32": bundle.checksum_crc32()}
            if _put_new(settings, location, RUNNER_KEY, bundle, checked):
                return sha
            return recorded_digest(settings, location, RUNNER_KEY) or sha
        spool.flush()
        # The runner goes up beside the input, at the same time (it is small; the input is
        # not); every path waits for it, so a job is never created without its entry point.
        runner = _side_pool.submit(_upload_runner, settings, location)
        try:
            recorded = recorded_digest(settings, location, INPUT_KEY)
            key = location.key(INPUT_KEY)
            if recorded:
                sha = recorded
            elif spool.name is None:  # large buffers held by reference: sent from memory
                upload_parts(clients.s3, location.bucket, key, spool.pieces, extra)
            else:
                aws.call(
                    clients.s3,
                    "upload_file",
                    Filename=spool.name,
                    Bucket=location.bucket,
                    Key=key,
                    ExtraArgs=extra,
                    Config=transfer_config(),
                )
        except BaseException:
            wait_for([runner])  # not left running; the first error is the one raised
            raise
        runner.result()
    return sha


def _put_new(
    settings: BraketSettings, location: TaskLocation, name: str, body: Any, extra: dict
) -> bool:
    """PutObject only if the key is free (``If-None-Match: *``); False if it was taken."""
    answer = aws.call_unless(
        aws.KEY_TAKEN,
        aws.clients_for(settings).s3,
        "put_object",
        Bucket=location.bucket,
        Key=location.key(name),
        Body=body,
        IfNoneMatch="*",
        **extra,
    )
    return answer is not None


def head(settings: BraketSettings, location: TaskLocation, name: str) -> dict[str, Any] | None:
    """HeadObject on one of this attempt's objects; None if it is not there."""
    return aws.call_unless(
        aws.NO_SUCH_KEY,
        aws.clients_for(settings).s3,
        "head_object",
        Bucket=location.bucket,
        Key=location.key(name),
    )


def recorded_digest(settings: BraketSettings, location: TaskLocation, name: str) -> str | None:
    """The input SHA-256 recorded on this attempt's existing object, or None if there is none."""
    found = head(settings, location, name)
    return found.get("Metadata", {}).get("sha256") if found is not None else None


def _upload_runner(settings: BraketSettings, location: TaskLocation) -> None:
    """Upload the job runner next to the task's input.

    It lives under the task prefix (not shared between tasks), so a lifecycle rule or a
    clean-up elsewhere in the bucket can never leave a job without its entry point.
    """
    data, _ = runner_archive()
    aws.call(
        aws.clients_for(settings).s3,
        "put_object",
        Bucket=location.bucket,
        Key=location.key(RUNNER_KEY),
        Body=data,
        **settings.encryption,
    )


def upload_parts(s3: Any, bucket: str, key: str, pieces: list[Any], extra: dict) -> None:
    """A multipart upload of a body held in memory as ``pieces``: 8 MiB parts sent in
    parallel, each a view of the pieces (no copy of the body is made); aborted on failure, so
    no parts are left behind (and should the abort itself fail, the bucket's lifecycle rule
    in ``infra/terraform`` removes incomplete uploads after a day).

    The pieces include the arguments' own buffers, read here, after the hash was taken: the
    arguments must not change in between (Covalent hands each task arguments of its own).
    """
    body = Concatenation(pieces)
    started = aws.call(
        s3, "create_multipart_upload", Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32", **extra
    )
    upload = {"Bucket": bucket, "Key": key, "UploadId": started["UploadId"]}

    def send(number: int, start: int) -> dict[str, Any]:
        part = body.section(start, min(start + PART_BYTES, len(body)))
        crc = part.checksum_crc32()
        answer = aws.call(
            s3, "upload_part", PartNumber=number, Body=part, ChecksumCRC32=crc, **upload
        )
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": crc}

    parts: list[Any] = []
    try:
        for number, start in enumerate(range(0, len(body), PART_BYTES), start=1):
            parts.append(_part_pool.submit(send, number, start))
        done = [part.result() for part in parts]
        aws.call(s3, "complete_multipart_upload", MultipartUpload={"Parts": done}, **upload)
    except BaseException:
        for part in parts:
            part.cancel()
        wait_for(parts)
        with contextlib.suppress(Exception):  # the first error is the one raised
            aws.call(s3, "abort_multipart_upload", **upload)
        raise


def transfer_config(concurrency: int = 10) -> Any:
    """Multipart transfers in 8 MiB parts: buffers stay bounded whatever the payload's size."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=SMALL_OBJECT_BYTES,
        multipart_chunksize=PART_BYTES,
        max_concurrency=concurrency,
        max_io_queue=16,
    )


def fetch(clients: aws.AwsClients, bucket: str, key: str, cache_dir: str) -> tuple[bytes, Any]:
    """Read an object: up to 1 MiB into memory, ``(data, None)``; larger streamed into a
    spool file in ``cache_dir`` (ranged GETs in parallel beyond 8 MiB), ``(b"", file)``
    with the file at its start. Never a second copy of a large object in memory."""
    from botocore.exceptions import BotoCoreError

    response = aws.call(clients.s3, "get_object", Bucket=bucket, Key=key)
    body = response["Body"]
    size = response.get("ContentLength", 0)
    try:
        if size <= IN_MEMORY_RESULT_BYTES:
            return body.read(), None
        os.makedirs(cache_dir, exist_ok=True)
        spool = tempfile.TemporaryFile(dir=cache_dir)  # noqa: SIM115 (returned open)
        try:
            if size > SMALL_OBJECT_BYTES:
                body.close()
                # Four ranged GETs at a time: downloads fill a file; more buffers, no speed.
                aws.call(
                    clients.s3,
                    "download_fileobj",
                    Bucket=bucket,
                    Key=key,
                    Fileobj=spool,
                    Config=transfer_config(concurrency=4),
                )
            else:
                for chunk in body.iter_chunks(1 << 20):
                    spool.write(chunk)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return b"", spool
    except BotoCoreError as exc:  # a connection dropped mid-body: let the caller report it
        raise aws.AwsError("get_object", type(exc).__name__, str(exc)) from exc
