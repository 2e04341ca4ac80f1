"""Moving a task's bytes: the input up (inside the runner archive, or in parts beside it),
any object down (in memory, or streamed into a spool file), without second copies.

Everything here blocks: the executor calls it through :func:`~covalent_braket_plugin.aws.offload`.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from typing import Any

from . import aws, signing
from .config import BraketSettings, InvalidSettingError, private_cache_dir
from .job import runner_archive, runner_archive_with
from .job.runner import INPUT_KEY, REQUIREMENTS_FILE, USER_REQUIREMENTS_FILE
from .location import RUNNER_KEY, TaskLocation
from .spool import Concatenation, Spool

#: The object metadata key that records the input's SHA-256.
SHA256 = "sha256"
#: The object metadata key that records an attempt's CreateJob client token.
TOKEN = "client-token"
#: The object metadata key that records the MAC of the two, with the attempt's key: an
#: object without a good one was not uploaded by this server, and is never adopted.
MAC = "mac"
#: Objects up to this size go in one request; larger ones in parallel parts of this size.
SMALL_OBJECT_BYTES = 8 * 1024 * 1024
PART_BYTES = 8 * 1024 * 1024
#: S3's most parts in one multipart upload.
MAX_PARTS = 10_000
#: Results up to this size are read into memory; larger ones stream into a spool file.
IN_MEMORY_RESULT_BYTES = 1024 * 1024
#: Threads sending the parts of inputs held in memory, shared by every upload of the process.
_part_pool = ThreadPoolExecutor(max_workers=10, thread_name_prefix="covalent-braket-part")
#: Threads for the small uploads that run beside a large one (the runner beside the input).
_side_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="covalent-braket-side")


@dataclass(frozen=True)
class Upload:
    """What an upload left: the input's SHA-256, the attempt's ``CreateJob`` client token
    (both recorded with the input, signed), and whether this attempt's input was there
    already (an executor rebuilt for the same task; its job may exist too).

    The token is new with each fresh upload: a run of the same dispatch, node and attempt
    after an earlier one was collected and cleaned up is not handed the earlier job back.
    """

    sha256: str
    resumed: bool
    client_token: str


def upload_task(
    settings: BraketSettings,
    location: TaskLocation,
    payload: Any,
    requirements: str = "",
    user_requirements: str = "",
) -> Upload | None:
    """Upload the runner (with the job's ``requirements.txt`` and the user's, if any: see
    :class:`~covalent_braket_plugin.images.JobImage`) and ``payload``
    (``(function, args, kwargs)``); None if the attempt's prefix holds an input this server
    did not upload (the attempt is spent: nothing planted there is ever run).

    The pickle is hashed as it is written and kept as the pieces written, large buffers
    by reference (see :class:`~covalent_braket_plugin.spool.Spool`). Up to 8 MiB it travels
    inside the runner archive (one conditional ``PutObject``); beyond, it goes up beside the
    runner in 8 MiB parts, from memory or, for a pickle made of many small objects, from a
    spool file in ``cache_dir``. The input's digest and the attempt's client token are
    recorded with it, and their MAC with the attempt's key. If this attempt's input is
    already there with a good MAC (an executor rebuilt for the same task), it is kept and its
    recorded digest returned, so the resubmitted ``CreateJob`` is identical.

    Raises:
        InvalidSettingError: the bucket refused the write, or ``cache_dir`` is not private.
        SecretFileError: the server's secret cannot be trusted.
    """
    files = {REQUIREMENTS_FILE: requirements, USER_REQUIREMENTS_FILE: user_requirements}
    members = {name: text.encode() for name, text in files.items() if text}
    try:
        return _upload(settings, location, payload, members)
    except aws.AwsError as exc:
        if exc.code in aws.DENIED:  # before anything was written, with the owner named
            raise _refused(settings, exc) from exc
        raise


def _refused(settings: BraketSettings, exc: aws.AwsError) -> InvalidSettingError:
    account = aws.caller_account(settings)[0]
    region = aws.clients_for(settings).region
    return InvalidSettingError(
        "s3_bucket_name",
        settings.s3_bucket_name,
        f"a bucket of your account {account} that you may write to: S3 refused the write "
        f"({exc.code}) with ExpectedBucketOwner={account}. The bucket belongs to another "
        "account, or this principal may not write to it. A name such as the documented "
        "default can be owned by only one account in the world: use one of your own, e.g. "
        f"amazon-braket-covalent-{region}-{account}",
    )


def _upload(
    settings: BraketSettings, location: TaskLocation, payload: Any, members: dict[str, bytes]
) -> Upload | None:
    import cloudpickle

    key = signing.attempt_key(location.uri, location.job_name)
    with Spool(private_cache_dir(settings.cache_dir), SMALL_OBJECT_BYTES) as spool:
        cloudpickle.dump(payload, spool)
        spool.settle()
        sha, token = spool.sha256(), str(uuid.uuid4())
        metadata = {SHA256: sha, TOKEN: token, MAC: signing.upload_mac(key, sha, token)}
        extra = {**settings.encryption, **aws.bucket_owner(settings), "Metadata": metadata}
        if spool.name is None and spool.size <= SMALL_OBJECT_BYTES:
            bundle = Concatenation(runner_archive_with(spool.pieces, INPUT_KEY, members))
            checked = {**extra, "ChecksumCRC32": bundle.checksum_crc32()}
            if _put_new(settings, location, RUNNER_KEY, bundle, checked):
                return Upload(sha, resumed=False, client_token=token)
            return _adopted(key, head(settings, location, RUNNER_KEY))
        found = head(settings, location, INPUT_KEY)
        if found is not None:  # this attempt's input is there: kept if it is this server's
            adopted = _adopted(key, found)
            if adopted is not None:
                _upload_runner(settings, location, members)
            return adopted
        _upload_beside_runner(settings, location, spool, extra, members)
    return Upload(sha, resumed=False, client_token=token)


def _upload_beside_runner(
    settings: BraketSettings,
    location: TaskLocation,
    spool: Spool,
    extra: dict[str, Any],
    members: dict[str, bytes],
) -> None:
    """Upload a large input, and the runner beside it, at the same time (it is small; the
    input is not): the runner is waited for, so a job is never created without its entry
    point. The input goes from memory (large buffers held by reference), or from the spool
    file through the file object the spool holds open (never opened again by its name)."""
    clients = aws.clients_for(settings)
    key = location.key(INPUT_KEY)
    runner = _side_pool.submit(_upload_runner, settings, location, members)
    try:
        if spool.name is None:
            owner = aws.bucket_owner(settings)
            upload_parts(clients.s3, location.bucket, key, spool.pieces, extra, owner)
        else:
            aws.call(
                clients.s3,
                "upload_fileobj",
                Fileobj=spool.rewound(),
                Bucket=location.bucket,
                Key=key,
                ExtraArgs=extra,
                Config=transfer_config(),
            )
    except BaseException:
        wait_for([runner])  # not left running; the first error is the one raised
        raise
    runner.result()


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
        **aws.bucket_owner(settings),
    )


def _adopted(key: bytes, found: dict[str, Any] | None) -> Upload | None:
    """The upload this attempt already made, as its object (``found``: its HeadObject)
    records it; None when the object is gone, or its record lacks a good MAC with the
    attempt's ``key`` (an older version's upload, or an object planted by someone else)."""
    recorded = dict((found or {}).get("Metadata") or {})
    sha, token = recorded.get(SHA256, ""), recorded.get(TOKEN, "")
    if not (sha and token and signing.upload_mac_ok(key, sha, token, recorded.get(MAC, ""))):
        return None
    return Upload(sha, resumed=True, client_token=token)


def _upload_runner(
    settings: BraketSettings, location: TaskLocation, members: dict[str, bytes]
) -> None:
    """Upload the job runner next to the task's input.

    It lives under the task prefix (not shared between tasks), so a lifecycle rule or a
    clean-up elsewhere in the bucket can never leave a job without its entry point.
    """
    data, _ = runner_archive(tuple(members.items()))
    aws.call(
        aws.clients_for(settings).s3,
        "put_object",
        Bucket=location.bucket,
        Key=location.key(RUNNER_KEY),
        Body=data,
        **settings.encryption,
        **aws.bucket_owner(settings),
    )


def part_size(total: int) -> int:
    """The part size of a multipart upload of ``total`` bytes: 8 MiB, or more (in whole MiB)
    when 8 MiB parts would pass S3's 10,000 parts."""
    mib = 1024 * 1024
    return max(PART_BYTES, -(-total // (MAX_PARTS * mib)) * mib)


def upload_parts(
    s3: Any, bucket: str, key: str, pieces: list[Any], extra: dict, owner: dict | None = None
) -> None:
    """A multipart upload of a body held in memory as ``pieces``: parts of
    :func:`part_size` sent in parallel, each a view of the pieces (no copy of the body is
    made); aborted on failure, so no parts are left behind (and should the abort itself fail,
    the bucket's lifecycle rule in ``infra/terraform`` removes incomplete uploads after a
    day). ``owner`` (``ExpectedBucketOwner``) goes with every call of the upload.

    The pieces include the arguments' own buffers, read here, after the hash was taken: the
    arguments must not change in between (Covalent hands each task arguments of its own).
    """
    body = Concatenation(pieces)
    size = part_size(len(body))
    owned = dict(owner or {})
    started = aws.call(
        s3,
        "create_multipart_upload",
        Bucket=bucket,
        Key=key,
        ChecksumAlgorithm="CRC32",
        **{**extra, **owned},
    )
    upload = {"Bucket": bucket, "Key": key, "UploadId": started["UploadId"], **owned}

    def send(number: int, start: int) -> dict[str, Any]:
        part = body.section(start, min(start + size, len(body)))
        crc = part.checksum_crc32()
        answer = aws.call(
            s3, "upload_part", PartNumber=number, Body=part, ChecksumCRC32=crc, **upload
        )
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": crc}

    parts: list[Any] = []
    try:
        for number, start in enumerate(range(0, len(body), size), start=1):
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


def fetch(
    clients: aws.AwsClients, bucket: str, key: str, cache_dir: str, owner: dict | None = None
) -> tuple[bytes, Any]:
    """Read an object: up to 1 MiB into memory, ``(data, None)``; larger streamed into a
    spool file in ``cache_dir`` (the setting's value: private to this user, see
    :func:`~covalent_braket_plugin.config.private_cache_dir`; ranged GETs in parallel beyond
    8 MiB), ``(b"", file)`` with the file at its start. Never a second copy of a large object
    in memory."""
    from botocore.exceptions import BotoCoreError

    directory = private_cache_dir(cache_dir)  # checked first: a refusal leaves no body open
    owned = dict(owner or {})
    response = aws.call(clients.s3, "get_object", Bucket=bucket, Key=key, **owned)
    body = response["Body"]
    size = response.get("ContentLength", 0)
    try:
        if size <= IN_MEMORY_RESULT_BYTES:
            return body.read(), None
        spool = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (returned open)
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
                    ExtraArgs=owned,
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
