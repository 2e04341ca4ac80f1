"""The executor's settings written into covalent.conf, as ``setup`` and ``emulator
--provision`` leave them: merged into the ``[executors.braket]`` section Covalent already
wrote (a second section would break every covalent command), the file kept first in a backup
beside it, and what changed shown as a diff.

The file is read and written with the ``toml`` library, as Covalent itself reads and rewrites
it; a file that does not parse is left alone, with the reason.
"""

from __future__ import annotations

import difflib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfFileError(Exception):
    """covalent.conf cannot be read as TOML; nothing was written (the message says why)."""


@dataclass
class Merge:
    """What merging the settings did (or, not ``written``, would do) to covalent.conf."""

    path: Path
    diff: str
    written: bool
    backup: Path | None = None

    @property
    def changed(self) -> bool:
        return bool(self.diff)

    def report(self) -> str:
        if not self.changed:
            return f"{self.path} already has these settings in [executors.braket]."
        if not self.written:
            return f"Would change {self.path}:\n{self.diff}"
        kept = f" (the file as it was: {self.backup})" if self.backup else ""
        return f"Wrote the settings into [executors.braket] of {self.path}{kept}:\n{self.diff}"


def _load(path: Path) -> dict[str, Any]:
    """The file's settings (none if there is no file).

    Raises:
        ConfFileError: It is not valid TOML.
    """
    import toml

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        return toml.loads(text)
    except toml.TomlDecodeError as exc:
        raise ConfFileError(
            f"{path} is not valid TOML ({exc}); nothing was written. Mend it (a second "
            "[executors.braket] section, pasted below the one Covalent wrote, is a common "
            "cause: keep one), or use --print and set the keys by hand"
        ) from exc


def check(path: Path) -> None:
    """Make sure the settings can be merged into the file later (before anything is made).

    Raises:
        ConfFileError: It is not valid TOML.
    """
    _load(path)


def merge_section(path: Path, section: dict[str, Any], write: bool = True) -> Merge:
    """Merge ``section`` into the file's ``[executors.braket]``; other keys and sections stay.

    Args:
        path: covalent.conf (made, with its folder, if there is none).
        section: The keys to set.
        write: False: only say what would change.

    Raises:
        ConfFileError: The file is not valid TOML (a pasted second section, say).
    """
    import toml

    data = _load(path)
    before = toml.dumps(data)
    braket = data.setdefault("executors", {}).setdefault("braket", {})
    braket.update(section)
    after = toml.dumps(data)
    diff = "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"{path} (before)",
            tofile=f"{path} (after)",
        )
    )
    if not diff or not write:
        return Merge(path, diff, written=False)
    backup = None
    if path.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = path.with_name(f"{path.name}.{stamp}.bak")
        number = 1
        while backup.exists():  # never over an earlier backup
            backup = path.with_name(f"{path.name}.{stamp}-{number}.bak")
            number += 1
        shutil.copy2(path, backup)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(after, encoding="utf-8")
    os.replace(partial, path)
    return Merge(path, diff, written=True, backup=backup)
