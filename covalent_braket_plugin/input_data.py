"""The ``input_data`` setting: files an electron reads, mounted as the job's input channels
(``inputDataConfig``), as ``@hybrid_job(input_data=...)`` mounts them. The electron finds a
channel at ``$AMZN_BRAKET_INPUT_DIR/<channel>`` (the channel ``input`` when the setting names
one source).

A source is an ``s3://`` URI (used as it is: the job role must be able to read it) or a local
file or directory of the machine the Covalent server runs on, uploaded under
``covalent-braket/input-data/<sha256 of its content>/`` once: an electron that names the same
content, in this run or a later one, finds it there (a marker object written after the last
file says it is whole) and uploads nothing. The upload is not one of a task's objects: the
bucket's lifecycle rule for ``covalent-braket/`` expires it.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

from . import aws
from .config import BraketSettings
from .location import S3_PREFIX

#: Where local input data is uploaded, by the SHA-256 of its content.
INPUT_DATA_PREFIX = f"{S3_PREFIX}/input-data"
#: The channel of a setting that names one source (``@hybrid_job``'s too).
DEFAULT_CHANNEL = "input"

_lock = threading.Lock()
_uploaded: set[tuple[str, str]] = set()  # (bucket, digest) known to be whole
_locks: dict[tuple[str, str], threading.Lock] = {}  # one upload of each content at a time


def channels(settings: BraketSettings) -> list[dict[str, Any]]:
    """``CreateJob``'s ``inputDataConfig`` for the settings' ``input_data``, local sources
    uploaded first when they are not in the bucket yet. Blocking."""
    found = []
    for name, source in settings.input_data:
        uri = source if source.startswith("s3://") else _upload(settings, Path(source))
        found.append({"channelName": name, "dataSource": {"s3DataSource": {"s3Uri": uri}}})
    return found


def _files(path: Path) -> list[tuple[str, Path]]:
    """(name in the channel, file) for a file, or every file under a directory."""
    if path.is_file():
        return [(path.name, path)]
    return sorted(
        (item.relative_to(path).as_posix(), item) for item in path.rglob("*") if item.is_file()
    )


def _digest(files: list[tuple[str, Path]], single: bool) -> str:
    digest = hashlib.sha256(b"file" if single else b"directory")
    for name, item in files:
        digest.update(name.encode() + b"\0")
        with open(item, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _upload(settings: BraketSettings, path: Path) -> str:
    """The S3 URI of a local file or directory's content, uploaded if it is not there."""
    files = _files(path)
    single = path.is_file()
    digest = _digest(files, single)
    bucket, base = settings.s3_bucket_name, f"{INPUT_DATA_PREFIX}/{digest}"
    uri = f"s3://{bucket}/{base}/" + (files[0][0] if single else "")
    with _lock:
        content_lock = _locks.setdefault((bucket, digest), threading.Lock())
    with content_lock:  # electrons of this server that name it at once: one upload
        if (bucket, digest) in _uploaded:
            return uri
        s3, owner = aws.clients_for(settings).s3, aws.bucket_owner(settings)
        marker = f"{base}.whole"
        missing = frozenset({"404", "NoSuchKey", "NotFound"})
        found = aws.call_unless(missing, s3, "head_object", Bucket=bucket, Key=marker, **owner)
        if found is None:
            extra = {**settings.encryption, **owner}
            for name, item in files:
                _put_file(s3, bucket, f"{base}/{name}", item, extra)
            aws.call(s3, "put_object", Bucket=bucket, Key=marker, Body=b"", **extra)
        _uploaded.add((bucket, digest))
    return uri


def _put_file(s3: Any, bucket: str, key: str, item: Path, extra: dict[str, str]) -> None:
    with open(item, "rb") as handle:
        aws.call(s3, "put_object", Bucket=bucket, Key=key, Body=handle, **extra)
