"""What runs inside the Braket hybrid job, and how it is packaged for script mode."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from functools import lru_cache
from pathlib import Path

#: Module name of the runner inside the uploaded archive.
RUNNER_MODULE = "covalent_braket_runner"
#: ``scriptModeConfig.entryPoint`` of every job the executor creates.
ENTRY_POINT = f"{RUNNER_MODULE}:main"


@lru_cache(maxsize=1)
def _runner_source() -> bytes:
    return (Path(__file__).parent / "runner.py").read_bytes()


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


def runner_archive_with(data: bytes, input_name: str) -> bytes:
    """The runner archive with the task's (small) input ``data`` beside the runner: one
    object, one PUT."""
    return _archive({f"{RUNNER_MODULE}.py": _runner_source(), input_name: data}, compresslevel=1)


@lru_cache(maxsize=1)
def runner_archive() -> tuple[bytes, str]:
    """Return the runner as a reproducible gzip tarball and the tarball's SHA-256 digest.

    The archive holds a single module, ``covalent_braket_runner.py``, and is byte-for-byte
    the same for the same package version; it is used when the input travels separately.
    """
    data = _archive({f"{RUNNER_MODULE}.py": _runner_source()}, compresslevel=9)
    return data, hashlib.sha256(data).hexdigest()
