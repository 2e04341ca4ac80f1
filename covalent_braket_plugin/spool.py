"""The pickle of a task's input as it is written: hashed in one pass, held as the pieces the
pickler wrote (large buffers by reference), spilled to a file only when the pickler's own
bytes grow large; and a file-like view over those pieces for uploading them without a copy."""

from __future__ import annotations

import base64
import bisect
import hashlib
import io
import os
import sys
import tempfile
import zlib
from typing import Any

#: A write of the pickler at least this large is kept by reference: an argument's own buffer.
REFERENCED_BYTES = 1024 * 1024
#: The most a read of a body made of pieces returns (and copies) at a time.
READ_BYTES = 64 * 1024


class Spool:
    """A write-only pickle sink that hashes what passes through it (SHA-256, one pass).

    What the pickler writes stays in memory as the pieces it wrote: a large buffer (a
    ``bytes`` or an array's memory, at least ``REFERENCED_BYTES``) is kept by reference, not
    copied, so an argument holding a big array costs no second copy. Once the pieces the
    pickler made itself pass ``limit`` bytes, everything spills to a named file in
    ``directory`` (deleted on exit): a pickle of many small objects, or of large strings
    (which the pickler encodes into new ``bytes``), is never held whole in memory beside them.

    Which large ``bytes`` the pickler made is told by who else holds them: once the pickler
    lets go (at the next large write, and in :meth:`settle` after the dump), a piece held by
    this spool alone was a copy (a string's UTF-8, an ``array.array``'s or a strided array's
    bytes), and counts toward ``limit``; one the arguments hold is theirs.
    """

    def __init__(self, directory: str, limit: int) -> None:
        self._directory = directory
        self._limit = limit
        self._digest = hashlib.sha256()
        self._pieces: list[Any] | None = []
        self._made = 0
        #: Indices of large ``bytes`` pieces not yet known to be the arguments' own.
        self._unsure: list[int] = []
        self._file: Any = None
        self.size = 0

    @property
    def name(self) -> str | None:
        """The spill file's path, or None while the content is in memory."""
        return self._file.name if self._file is not None else None

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if not view.c_contiguous:  # the raw bytes, in the order the pickler means them
            view = memoryview(view.tobytes(order="A"))
        view = view.cast("B")
        length = view.nbytes
        self._digest.update(view)
        self.size += length
        if self._pieces is None:
            return self._file.write(view)
        if length >= REFERENCED_BYTES:
            self.settle()
            if self._pieces is None:  # spilled: copies held passed the limit
                return self._file.write(view)
            if type(data) is bytes:  # the object itself, so that who holds it can be told
                self._unsure.append(len(self._pieces))
                self._pieces.append(data)
            else:
                self._pieces.append(view)
        else:
            self._pieces.append(data if type(data) is bytes else bytes(view))  # frames: bytes
            self._made += length
            if self._made > self._limit:
                self._spill()
        return length

    def settle(self) -> None:
        """Count the large ``bytes`` pieces nothing but this spool holds any more (copies the
        pickler made and let go of) toward the limit; spill if they pass it. Called at each
        large write and once after the dump, when the pickler and its memo are gone."""
        pieces = self._pieces
        if not self._unsure or pieces is None:
            return
        unsure = []
        for index in self._unsure:
            if _references(pieces, index) <= _SOLE_REFERENCES:
                self._made += len(pieces[index])
            else:
                unsure.append(index)
        self._unsure = unsure
        if self._made > self._limit:
            self._spill()

    def _spill(self) -> None:
        os.makedirs(self._directory, mode=0o700, exist_ok=True)  # (the executor's: checked)
        self._file = tempfile.NamedTemporaryFile(dir=self._directory, suffix=".pkl")  # noqa: SIM115 (closed in __exit__)
        for piece in self._pieces or ():
            self._file.write(piece)
        self._pieces = None
        self._unsure = []
        self._file.flush()

    @property
    def pieces(self) -> list[Any]:
        """The pickle as the buffers written, in order (only while it is in memory)."""
        assert self._pieces is not None
        return self._pieces

    def rewound(self) -> Any:
        """The spill file, flushed and at its start, as the file object this spool holds open:
        what an upload reads (never the file opened again by its name, which whoever may write
        to its directory could have replaced)."""
        assert self._file is not None
        self._file.flush()
        self._file.seek(0)
        return self._file.file

    def sha256(self) -> str:
        return self._digest.hexdigest()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
        self._pieces = None


def _references(items: list[Any], index: int) -> int:
    """How many references ``items[index]`` has, as counted from here."""
    return sys.getrefcount(items[index])


#: What :func:`_references` counts for an object only its list holds (measured, not assumed:
#: the count a call sees differs between Python versions).
_SOLE_REFERENCES = _references([object()], 0)


class Concatenation(io.RawIOBase):
    """A seekable, read-only file over a list of buffers, as if they were one: a request body
    made of the pickle's pieces without joining them (reads copy only what they return)."""

    def __init__(self, pieces: list[Any]) -> None:
        super().__init__()
        self._pieces = [memoryview(piece).cast("B") for piece in pieces]
        self._starts = [0]
        for piece in self._pieces:
            self._starts.append(self._starts[-1] + len(piece))
        self._position = 0

    def __len__(self) -> int:
        return self._starts[-1]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self)}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes, at most ``READ_BYTES`` of them: a raw file's short read,
        which every reader of a request body loops over, so that a reader asking for a large
        chunk copies a small one at a time. A negative or None ``size`` reads all that is
        left, in one copy."""
        if size is None or size < 0:
            end = len(self)
        else:
            end = min(len(self), self._position + min(size, READ_BYTES))
        if end <= self._position:
            return b""
        index = bisect.bisect_right(self._starts, self._position) - 1
        taken = []
        while self._position < end:
            piece = self._pieces[index]
            start = self._position - self._starts[index]
            chunk = piece[start : start + end - self._position]
            taken.append(chunk)
            self._position += len(chunk)
            index += 1
        return bytes(taken[0]) if len(taken) == 1 else b"".join(taken)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer).cast("B")))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def checksum_crc32(self) -> str:
        """The body's CRC32 as S3 takes it (``ChecksumCRC32``: base64 of the big-endian value),
        computed over the buffers in place; given with the request, botocore does not read the
        body a second time to compute it."""
        crc = 0
        for piece in self._pieces:
            crc = zlib.crc32(piece, crc)
        return base64.b64encode(crc.to_bytes(4, "big")).decode()

    def section(self, start: int, end: int) -> Concatenation:
        """Bytes ``start`` to ``end`` as a file of their own, sharing this one's buffers."""
        index = bisect.bisect_right(self._starts, start) - 1
        views = []
        while start < end and index < len(self._pieces):
            offset = start - self._starts[index]
            view = self._pieces[index][offset : offset + end - start]
            views.append(view)
            start += len(view)
            index += 1
        return Concatenation(views)
