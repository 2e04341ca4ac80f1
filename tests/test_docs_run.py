"""The docs run as written: every Python and shell block of the README and ``docs/`` says, in
the comment above it, how the suite runs it on Braket-in-a-box (``covalent``: a script that
dispatches to a Covalent server wired to the emulator; ``pytest``: a user's test file, run by
pytest with this package's fixtures; ``python``: a script) or why it is not run (``not run:
<reason>``), and the suite runs each one that is to run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]
FILES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(python|bash|sh|shell)\n(.*?)^```$", re.S | re.M)
MARK = re.compile(r"<!-- docs-test: (covalent|pytest|python|not run: \S.*?) -->\n$")


def blocks() -> list[tuple[str, int, str, str, str]]:
    """(file, line, language, how, code) for every Python and shell block."""
    found = []
    for name in FILES:
        text = (ROOT / name).read_text()
        for fence in FENCE.finditer(text):
            before = text[: fence.start()]
            mark = MARK.search(before.rsplit("\n", 2)[-2] + "\n") if "\n" in before else None
            how = mark.group(1) if mark else ""
            line = before.count("\n") + 1
            found.append((name, line, fence.group(1), how, fence.group(2)))
    return found


def to_run(kind: str) -> list[Any]:
    return [
        pytest.param(code, id=f"{name}:{line}")
        for name, line, _, how, code in blocks()
        if how == kind
    ]


def test_every_block_is_run_or_says_why_not() -> None:
    unmarked = [f"{name}:{line}" for name, line, _, how, _ in blocks() if not how]
    assert unmarked == [], "blocks with no docs-test comment above them"
    kinds = {how.split(":")[0] for *_, how, _ in blocks()}
    assert {"covalent", "pytest", "python"} <= kinds


def run_in(
    where: Path, argv: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """This Python with ``argv``, in ``where``, its output captured."""
    return subprocess.run(
        [sys.executable, *argv], env=env, cwd=where, capture_output=True, text=True, timeout=timeout
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BRAKET_"))}
    return {**env, **extra}


@pytest.mark.parametrize("code", to_run("covalent"))
def test_a_covalent_block_runs_through_a_covalent_server(
    code: str, covalent_server: Any, tmp_path: Path
) -> None:
    (tmp_path / "block.py").write_text(code)
    # The server's covalent.conf: its address and settings.
    done = run_in(tmp_path, ["block.py"], covalent_server.env, 300)
    assert done.returncode == 0, done.stdout + done.stderr
    printed = done.stdout.strip().splitlines()
    assert printed and printed[-1] != "None", done.stdout + done.stderr + covalent_server.log()


@pytest.mark.parametrize("code", to_run("pytest"))
def test_a_pytest_block_passes_as_a_users_test_file(code: str, tmp_path: Path) -> None:
    (tmp_path / "test_block.py").write_text(code)
    argv = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_block.py"]
    done = run_in(tmp_path, argv, clean_env(), 500)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "failed" not in done.stdout


@pytest.mark.parametrize("code", to_run("python"))
def test_a_python_block_runs(code: str, tmp_path: Path) -> None:
    (tmp_path / "block.py").write_text(code)
    done = run_in(tmp_path, ["block.py"], clean_env(), 120)
    assert done.returncode == 0, done.stdout + done.stderr
