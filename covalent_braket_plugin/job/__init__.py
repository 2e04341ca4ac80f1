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


def _archive(extra: tuple[str, str] | None, compresslevel: int) -> bytes:
    """A gzip tarball of the runner module, plus ``extra`` = (path, name in the archive)."""
    source = (Path(__file__).parent / "runner.py").read_bytes()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(f"{RUNNER_MODULE}.py")
        info.size = len(source)
        info.mode = 0o644
        info.mtime = 0
        archive.addfile(info, io.BytesIO(source))
        if extra is not None:
            archive.add(extra[0], arcname=extra[1], recursive=False)
    return gzip.compress(raw.getvalue(), compresslevel=compresslevel, mtime=0)


def runner_archive_with(input_path: str, input_name: str) -> bytes:
    """The runner archive with the task's (small) input beside the runner: one object, one PUT."""
    return _archive((input_path, input_name), compresslevel=1)


@lru_cache(maxsize=1)
def runner_archive() -> tuple[bytes, str]:
    """Return the runner as a reproducible gzip tarball and the tarball's SHA-256 digest.

    The archive holds a single module, ``covalent_braket_runner.py``, and is byte-for-byte
    the same for the same package version; it is used when the input travels separately.
    """
    data = _archive(None, compresslevel=9)
    return data, hashlib.sha256(data).hexdigest()
