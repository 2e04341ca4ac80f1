"""The user's own code travels with the electron: the modules of the workflow's directory, the
working directory and ``PYTHONPATH`` that no installed distribution provides are pickled by
value (cloudpickle's ``register_pickle_by_value``), so that a job, which cannot import them,
gets their code inside the pickle.

cloudpickle pickles a function of an importable module by reference (the module's name), and
the job has no ``helpers.py``: without this, ``import helpers`` in a workflow script fails in
the job with ``ModuleNotFoundError``. The rule runs where the workflow's electrons are made
(the executor's construction, and again when Covalent reads the executor's settings as it
builds the graph), on the modules loaded by then; ``include_modules`` names more (a module
the rule misses: imported from elsewhere), ``exclude_modules`` names what must not travel, and
``include_modules=False`` turns the rule off.

Only module objects travel (their functions, classes and values, as cloudpickle takes them):
no file is read or shipped beyond the size check of the shipped modules' own sources, so a
``.env`` or a credentials file beside the script never leaves the machine. A module tree over
:data:`MAX_SOURCE_BYTES` of source is refused, naming it.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from .config import InvalidSettingError

#: The most source one shipped module tree may hold.
MAX_SOURCE_BYTES = 8 * 1024 * 1024

_lock = threading.Lock()
_seen: set[str] = set()  # module names the rule has looked at
_shipped: set[str] = set()  # top-level names registered by value here


def ship(include: tuple[str, ...] | bool, exclude: tuple[str, ...]) -> list[str]:
    """Register by value the user's own top-level modules loaded now (unless ``include`` is
    False), and those ``include`` names; none that ``exclude`` names. Returns what travels.

    Raises:
        InvalidSettingError: A named module cannot be imported, or a module tree is too big.
    """
    import cloudpickle

    named = () if include is False or include is True else tuple(include)
    with _lock:
        wanted = [_imported(name) for name in named]
        if include is not False:
            wanted += _own_modules(exclude)
        for module in wanted:
            top = module.__name__.split(".", 1)[0]
            if top in _shipped or _excluded(module.__name__, exclude):
                continue
            _check_size(sys.modules.get(top, module))
            cloudpickle.register_pickle_by_value(sys.modules.get(top, module))
            _shipped.add(top)
        return sorted(_shipped)


def _imported(name: str) -> ModuleType:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise InvalidSettingError(
            "include_modules", name, f"the name of a module this process can import ({exc})"
        ) from exc


def _excluded(name: str, exclude: Iterable[str]) -> bool:
    return any(name == other or name.startswith(other + ".") for other in exclude)


def _own_modules(exclude: tuple[str, ...]) -> list[ModuleType]:
    """The top-level modules loaded since the last look that are the user's own code."""
    new = [(n, m) for n, m in list(sys.modules.items()) if n not in _seen and "." not in n]
    if not new:  # the server builds an executor per task: most looks find nothing new
        return []
    roots = _user_roots()
    installed = _installed_roots()
    found = []
    for name, module in new:
        _seen.add(name)
        path = getattr(module, "__file__", None)
        if not path or name == "__main__" or _excluded(name, exclude):
            continue
        where = os.path.realpath(path)
        if any(where.startswith(root) for root in installed):
            continue
        if name in _distribution_names():
            continue
        if any(where.startswith(root) for root in roots):
            found.append(module)
    return found


def _user_roots() -> list[str]:
    """Where the user's own code lives: the script's directory, the working directory and
    ``PYTHONPATH``'s entries."""
    roots = [os.getcwd()]
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    if main:
        roots.append(os.path.dirname(os.path.abspath(main)))
    roots += [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    return [os.path.join(os.path.realpath(root), "") for root in roots]


def _installed_roots() -> list[str]:
    """Where installed code lives: the standard library and every site-packages."""
    paths = sysconfig.get_paths()
    found = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    found |= {entry for entry in sys.path if entry.rstrip("/").endswith("-packages")}
    found |= {sys.prefix, sys.base_prefix, sys.exec_prefix}
    return [os.path.join(os.path.realpath(path), "") for path in found]


_distributions: set[str] | None = None


def _distribution_names() -> set[str]:
    """The top-level names installed distributions provide (an editable install's too)."""
    global _distributions
    if _distributions is None:
        from importlib import metadata

        _distributions = set(metadata.packages_distributions())
    return _distributions


def _check_size(module: ModuleType) -> None:
    """Refuse a module tree whose sources exceed :data:`MAX_SOURCE_BYTES`."""
    path = getattr(module, "__file__", None)
    if not path:
        return
    source = Path(path)
    files = source.parent.rglob("*.py") if source.name == "__init__.py" else [source]
    size = sum(item.stat().st_size for item in files if item.is_file())
    if size > MAX_SOURCE_BYTES:
        raise InvalidSettingError(
            "include_modules",
            module.__name__,
            f"a module tree of at most {MAX_SOURCE_BYTES // (1024 * 1024)} MiB of source to "
            f"ship with each electron: {module.__name__} ({source.parent}) has "
            f"{size / (1024 * 1024):.1f} MiB; install it in the job's image (requirements, or "
            "your own image) and name it in exclude_modules",
        )
