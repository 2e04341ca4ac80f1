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


def runner_archive_with(input_path: str, input_name: str) -> bytes:
    """The runner archive with the task's (small) input beside the runner: one object, one PUT."""
    source = (Path(__file__).parent / "runner.py").read_bytes()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(f"{RUNNER_MODULE}.py")
        info.size = len(source)
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(source))
        archive.add(input_path, arcname=input_name, recursive=False)
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


@lru_cache(maxsize=1)
def runner_archive() -> tuple[bytes, str]:
    """Return the runner as a reproducible gzip tarball and the tarball's SHA-256 digest.

    The archive holds a single module, ``covalent_braket_runner.py``; it is byte-for-byte the
    same for the same package version, so it is uploaded once per bucket and digest.
    """
    source = (Path(__file__).parent / "runner.py").read_bytes()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(f"{RUNNER_MODULE}.py")
        info.size = len(source)
        info.mode = 0o644
        info.mtime = 0
        archive.addfile(info, io.BytesIO(source))
    data = gzip.compress(raw.getvalue(), mtime=0)
    return data, hashlib.sha256(data).hexdigest()
