"""What runs inside the Braket hybrid job, and how it is packaged for script mode."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
import zlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from .runner import CORES_MODULE, MEMBERS_MODULE  # beside the runner (packed jobs)

#: Module name of the runner inside the uploaded archive.
RUNNER_MODULE = "covalent_braket_runner"
#: ``scriptModeConfig.entryPoint`` of every job the executor creates.
ENTRY_POINT = f"{RUNNER_MODULE}:main"


@lru_cache(maxsize=3)
def _source(name: str) -> bytes:
    return (Path(__file__).parent / name).read_bytes()


def _modules() -> dict[str, bytes]:
    """The job's own modules, as every runner archive holds them (name -> content)."""
    return {
        f"{RUNNER_MODULE}.py": _source("runner.py"),
        f"{MEMBERS_MODULE}.py": _source("members.py"),
        f"{CORES_MODULE}.py": _source("cores.py"),
    }


def _archive(members: dict[str, bytes], compresslevel: int) -> bytes:
    """A reproducible gzip tarball of ``members`` (name -> content)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 0
            archive.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), compresslevel=compresslevel, mtime=0)


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _padding(size: int) -> bytes:
    return bytes(-size % tarfile.BLOCKSIZE)


#: Deflate's stored blocks hold at most this many bytes each.
_STORED_BLOCK = 0xFFFF


def runner_archive_with(
    data: Sequence[Any], input_name: str, extra: dict[str, bytes] | None = None
) -> list[Any]:
    """The runner archive (the runner and the member runner) with the task's input beside
    them (and ``extra`` members: name -> content, such as a ``requirements.txt``), as a list of
    buffers whose concatenation is the gzip tarball: one object, one PUT.

    ``data`` is the input as a sequence of buffers (the pickle as it was written). Nothing is
    compressed (a pickle of numbers hardly shrinks, and deflate costs more than the bytes it
    saves on the wire): the tar stream goes into deflate's stored blocks, whose buffers are
    slices of ``data``, not copies.
    """
    views = [memoryview(piece).cast("B") for piece in data]
    size = sum(len(view) for view in views)
    members = [
        _tar_header(name, len(content)) + content + _padding(len(content))
        for name, content in {**_modules(), **(extra or {})}.items()
    ]
    stream = [
        *members,
        memoryview(_tar_header(input_name, size)),
        *views,
        _padding(size) + bytes(2 * tarfile.BLOCKSIZE),  # and the end-of-archive marker
    ]
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, mtime 0, no flags
    out: list[Any] = [header]
    crc = 0
    left = sum(len(piece) for piece in stream)
    total = left
    room = 0  # what the current stored block still takes
    for piece in stream:
        crc = zlib.crc32(piece, crc)
        view = memoryview(piece)
        while len(view):
            if room == 0:  # a stored block's header: final flag, type 00, LEN, NLEN
                room = min(_STORED_BLOCK, left)
                out.append(struct.pack("<BHH", int(room == left), room, room ^ 0xFFFF))
            taken = view[:room]
            out.append(taken)
            view = view[len(taken) :]
            room -= len(taken)
            left -= len(taken)
    out.append(struct.pack("<II", crc, total & 0xFFFFFFFF))
    return out


def runner_archive(extra: tuple[tuple[str, bytes], ...] = ()) -> tuple[bytes, str]:
    """Return the runner as a reproducible gzip tarball and the tarball's SHA-256 digest.

    The archive holds the modules ``covalent_braket_runner.py``, ``covalent_braket_members.py``
    (the member runner of packed jobs) and ``covalent_braket_cores.py`` (its gauge of the
    instance's cores), and ``extra`` members, and
    is byte-for-byte the same for the same package version and members; it is used when the
    input travels separately.
    """
    return _runner_archive(tuple(extra))


@lru_cache(maxsize=8)
def _runner_archive(extra: tuple[tuple[str, bytes], ...]) -> tuple[bytes, str]:
    data = _archive({**_modules(), **dict(extra)}, compresslevel=9)
    return data, hashlib.sha256(data).hexdigest()
