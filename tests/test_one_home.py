"""Facts written once, names that say what they hold, functions short enough to read: checked
on the package's source (see docs/architecture.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "covalent_braket_plugin"
EMULATOR = ROOT / "emulator"

#: A fact, the text that writes it, and the one module (or, where the emulator plays the
#: service and may not import the executor's copy, the two) that may hold that text.
ONE_HOME = {
    "GetJob with QueueInfo": (r'"QueueInfo"', {"jobs.py", "emulator/api/responses.py"}),
    "the executor's tag keys": (r'"covalent:', {"config.py"}),
    "an ARN's Region": (r"parts\[3\]|split\(\":\"\)\[3\]", {"service.py"}),
    "our records' ISO time": (r"\.isoformat\(\)", {"service.py"}),
    "reading CloudWatch logs": (r"get_log_events|describe_log_streams", {"logs.py"}),
    "the WSGI start_response type": (r"^StartResponse\s*=", {"emulator/wsgi.py"}),
    "a pool of background futures": (r"set\[Future", {"aws.py"}),
    "the most tags on a resource": (r"\b50 - |\bMAX_TAGS\w*\s*=\s*\d", {"service.py"}),
    "a boto3 session": (
        r"boto3\.(session\.)?Session\(",
        {"aws.py", "emulator/aws_services/own_clients.py"},
    ),
    "the placeholder image's manifest": (
        r"manifest\.v2\+json",
        {"provisioning/image.py", "emulator/aws_services/ecr_images.py"},
    ),
    "a job process started": (
        r"subprocess\.Popen\(",
        {"emulator/runtime/launcher.py", "emulator/circuits/workers.py"},
    ),
}


def sources() -> dict[str, str]:
    return {
        path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(ROOT.rglob("*.py"))
    }


@pytest.mark.parametrize("fact", sorted(ONE_HOME))
def test_each_fact_has_one_home(fact: str) -> None:
    pattern, homes = ONE_HOME[fact]
    found = {
        name for name, text in sources().items() if re.search(pattern, text, flags=re.MULTILINE)
    }
    assert found <= homes, f"{fact} is written outside its home: {sorted(found - homes)}"


def test_the_checks_find_what_they_look_for() -> None:
    """Each pattern still matches its home (a renamed home would make the check vacuous)."""
    text = sources()
    for fact, (pattern, homes) in ONE_HOME.items():
        for home in homes:
            assert re.search(pattern, text[home], flags=re.MULTILINE), (fact, home)


def top_level_names() -> set[str]:
    """The names of the package's modules and sub-packages outside the emulator."""
    names = set()
    for path in ROOT.rglob("*.py"):
        if EMULATOR in path.parents or path.stem in ("__init__", "__main__"):
            continue
        names.add(path.stem)
    names |= {path.name for path in ROOT.iterdir() if (path / "__init__.py").exists()}
    return names - {"emulator"}


def test_no_emulator_module_is_named_like_a_module_that_does_something_else() -> None:
    """A reader who finds ``logs`` in the emulator and ``logs`` beside the executor would take
    them for one thing: every module and sub-package inside ``emulator/`` has a name of its
    own."""
    inside = {path.stem for path in EMULATOR.rglob("*.py")} - {"__init__", "__main__"}
    inside |= {path.parent.name for path in EMULATOR.rglob("*/__init__.py")}
    assert not inside & top_level_names(), sorted(inside & top_level_names())


def test_at_most_a_dozen_modules_stand_flat_in_the_emulator() -> None:
    flat = [path.name for path in EMULATOR.glob("*.py")]
    assert len(flat) <= 12, flat


def test_no_function_is_over_60_lines() -> None:
    long = []
    for name, text in sources().items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{name}:{node.name} {lines}")
    assert not long, long
