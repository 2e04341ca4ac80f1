"""The package's rooms and the arrows between them, read from the source (see
``docs/architecture.md``): no import cycle, and each room imports only what it may."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = "covalent_braket_plugin"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

DOC = ROOT.parent / "docs" / "architecture.md"


def rooms_table() -> dict[str, set[str] | None]:
    """The table of docs/architecture.md: room -> the rooms it may import (None: any)."""
    text = DOC.read_text()
    table = text.split("## Rooms and what each may import", 1)[1].split("\n#", 1)[0]
    allowed: dict[str, set[str] | None] = {}
    for line in table.splitlines():
        cells = line.split("|")
        if not line.startswith("| `") or len(cells) < 4:
            continue
        rooms = [name.rstrip("/") for name in re.findall(r"`([^`]+)`", cells[1])]
        may = cells[-2].strip()
        targets = None if may == "anything" else set(re.findall(r"`([^`]+)`", may))
        allowed.update(dict.fromkeys(rooms, targets))
    return allowed


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its code (also inside
    functions and ``TYPE_CHECKING`` blocks): a design's arrows, not only its import-time
    ones."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from . import x`` names the module x; ``from .m import y`` a thing in m.
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                for alias in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(name, path, known) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def room(name: str) -> str:
    """The room of a module: ``job``, ``emulator``, an executor module, or a tool.
    ``python -m covalent_braket_plugin.emulator`` is the CLI's ``emulator`` command."""
    if name == f"{PACKAGE}.emulator.__main__":
        return "cli"
    short = name.removeprefix(f"{PACKAGE}.").removeprefix(PACKAGE)
    return short.split(".", 1)[0] or "package"


def test_the_architecture_page_names_every_room() -> None:
    named = set(rooms_table())
    rooms = {room(name) for name in modules()} - {"package"}
    assert rooms == named, f"not in docs/architecture.md: {rooms - named}; gone: {named - rooms}"


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_a_cycle_is_found_where_there_is_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_each_room_imports_only_what_the_architecture_page_allows() -> None:
    allowed = rooms_table()
    wrong = sorted(
        (name, target)
        for name, targets in graph().items()
        if (may := allowed.get(room(name))) is not None
        for target in targets
        if room(target) not in may | {room(name)}
    )
    assert not wrong, f"arrows docs/architecture.md does not allow: {wrong}"
    # The emulator plays the service: never the executor's checks (it may run the job side).
    assert allowed["emulator"] <= {"emulator", "service", "job"}
    assert allowed["job"] == set()  # runs inside the job: stdlib, boto3 and cloudpickle


def covalent_at_import(path: Path) -> bool:
    """Whether a module imports covalent when it is itself imported (at module level)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        elif isinstance(node, ast.With):  # braket.py imports covalent inside a ``with``
            return covalent_at_import_in(node.body)
        if any(name == "covalent" or name.startswith("covalent.") for name in names):
            return True
    return False


def covalent_at_import_in(body: list[ast.stmt]) -> bool:
    return any(
        isinstance(node, (ast.Import, ast.ImportFrom))
        and any(
            (getattr(node, "module", None) or alias.name).split(".")[0] == "covalent"
            for alias in node.names
        )
        for node in body
    )


def test_only_the_plugin_module_imports_covalent_when_imported() -> None:
    """Covalent imports every plugin when it is first imported: a module of ours that imported
    covalent at module level, imported before covalent, would start that half-way through
    the plugin (as ``results`` once did: ImportError). Only ``braket`` may, and it registers
    itself afterwards."""
    importing = sorted(
        name
        for name, path in modules().items()
        if room(name) in rooms_table() and "emulator" not in name and covalent_at_import(path)
    )
    assert importing == [f"{PACKAGE}.braket"], importing


def test_modules_imported_before_covalent_leave_it_with_the_plugin() -> None:
    import subprocess
    import sys

    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]: importlib.import_module(name)\n"
        "import covalent as ct\n"
        "from covalent_braket_plugin.braket import BraketExecutor\n"
        "assert ct.executor.BraketExecutor is BraketExecutor\n"
    )
    for first in ("jobs", "braket"):  # one that imports much of the package; the plugin
        done = subprocess.run(
            [sys.executable, "-c", code, f"{PACKAGE}.{first}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]


def room_arrows(inside: str | None = None) -> dict[str, set[str]]:
    """Arrows between rooms, read from the imports: the package's rooms (``inside=None``), or
    the rooms inside ``emulator`` (its sub-packages and flat modules)."""

    def place(name: str) -> str | None:
        if inside is None:
            return room(name)
        prefix = f"{PACKAGE}.{inside}."
        if not name.startswith(prefix) or name.endswith(".__main__"):
            return None
        return name.removeprefix(prefix).split(".", 1)[0]

    arrows: dict[str, set[str]] = {}
    for name, targets in graph().items():
        source = place(name)
        if source in (None, "package"):
            continue
        arrows.setdefault(source, set())
        for target in targets:
            to = place(target)
            if to not in (None, "package", source):
                arrows[source].add(to)
    return arrows


def reduced(arrows: dict[str, set[str]]) -> dict[str, set[str]]:
    """The arrows that no longer way implies (a transitive reduction: the graph has no cycle)."""

    def reach(start: str, skip: tuple[str, str]) -> set[str]:
        seen: set[str] = set()
        todo = [t for t in arrows.get(start, ()) if (start, t) != skip]
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(arrows.get(node, ()))
        return seen

    return {
        source: {t for t in targets if t not in reach(source, (source, t))}
        for source, targets in arrows.items()
    }


def drawing(inside: str | None = None) -> str:
    """The mermaid drawing of the rooms and the arrows no longer way implies, as
    docs/architecture.md holds it."""
    arrows = reduced(room_arrows(inside))
    lines = ["flowchart TD"]
    for source in sorted(arrows):
        targets = sorted(arrows[source])
        if targets:
            lines.append(f"    {source} --> {' & '.join(targets)}")
        elif not any(source in t for t in arrows.values()):
            lines.append(f"    {source}")
    return "\n".join(lines)


def drawn(heading: str) -> str:
    """The mermaid block that follows ``heading`` in docs/architecture.md."""
    text = DOC.read_text().split(heading, 1)[1]
    return text.split("```mermaid\n", 1)[1].split("\n```", 1)[0]


def test_the_drawings_match_the_imports() -> None:
    """Each drawing is the import graph between rooms, less the arrows a longer way implies.
    ``python -m tests.test_architecture`` prints both as they should be."""
    assert drawn("## The rooms drawn") == drawing(), "\n" + drawing()
    assert drawn("### Inside the emulator") == drawing("emulator"), "\n" + drawing("emulator")


def test_a_longer_way_hides_an_arrow_and_nothing_else() -> None:
    arrows = {"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": {"c"}}
    assert reduced(arrows) == {"a": {"b"}, "b": {"c"}, "c": set(), "d": {"c"}}


if __name__ == "__main__":
    print("## The rooms drawn\n\n```mermaid\n" + drawing() + "\n```\n")
    print("### Inside the emulator\n\n```mermaid\n" + drawing("emulator") + "\n```")
