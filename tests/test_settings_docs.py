"""The settings tables of the README and docs/configuration.md say what the executor's
settings are: every setting, no other, each with its default."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from covalent_braket_plugin.config import DEFAULTS, BraketSettings

ROOT = Path(__file__).resolve().parent.parent
TABLES = {
    "README.md": "## Configuration",
    "docs/configuration.md": "# BraketExecutor configuration",
}


def table(path: str) -> dict[str, str]:
    """The settings table after ``heading``: setting -> its Default cell."""
    text = (ROOT / path).read_text().split(TABLES[path], 1)[1]
    rows: dict[str, str] = {}
    for line in text.split("\n\n| Setting |", 1)[-1].splitlines():
        if not line.startswith("| `"):
            if rows:
                break
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1]
    return rows


def shown(default: object) -> str:
    """A default as the tables write it: in backticks, or "empty"."""
    if default in ("", {}, (), [], None):
        return "empty"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return f"`{default}`"


@pytest.mark.parametrize("path", sorted(TABLES))
def test_the_settings_table_names_every_setting_with_its_default(path: str) -> None:
    rows = table(path)
    settings = [field.name for field in dataclasses.fields(BraketSettings)]
    assert sorted(rows) == sorted(settings), path
    for name in settings:
        assert rows[name].startswith(shown(DEFAULTS[name])), (path, name, rows[name])
