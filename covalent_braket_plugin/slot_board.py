"""The electrons that wait for a job slot, written where ``covalent-braket jobs`` reads them.

A waiting electron has no job yet, and the slot gate (:mod:`~covalent_braket_plugin.slots`)
lives in the Covalent server's memory. So each server process keeps a board: one JSON file,
``<cache_dir>/waiting/<pid>.json``, in the per-user private ``cache_dir`` of the executors whose
electrons wait, rewritten (whole, then renamed into place) by a thread of its own shortly after
the line changes, and removed when nobody waits or the process exits. ``covalent-braket jobs``
reads the boards of live processes and shows each waiting electron of the dispatch with its
place in the line. Nothing here blocks an event loop: the gate only marks the board stale.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .config import InvalidSettingError, private_cache_dir

#: The board is rewritten at most this often (a sweep's hundred electrons move together).
WRITE_SECONDS = 0.2
#: The folder of ``cache_dir`` that holds the boards.
FOLDER = "waiting"

_lock = threading.Condition()
_stale = False
_writing = False
_source: Callable[[], dict[str, list[dict[str, Any]]]] | None = None
_writer: threading.Thread | None = None
_written: set[str] = set()


def watch(source: Callable[[], dict[str, list[dict[str, Any]]]]) -> None:
    """Take ``source`` as what the board shows: a function (cheap, thread-safe) that returns,
    per ``cache_dir`` setting (as the executor was given it), the entries of the electrons
    waiting there."""
    global _source
    with _lock:
        _source = source


def changed() -> None:
    """The line changed: the board is written again soon, on the board's own thread."""
    global _stale, _writer
    with _lock:
        _stale = True
        if _writer is None or not _writer.is_alive():
            _writer = threading.Thread(target=_write_loop, name="slot-board", daemon=True)
            _writer.start()
        _lock.notify()


def flush(timeout: float = 5.0) -> None:
    """Wait until the board shows the line as it is now (tests)."""
    deadline = time.monotonic() + timeout
    with _lock:
        while (_stale or _writing) and time.monotonic() < deadline:
            _lock.wait(0.05)


def _write_loop() -> None:
    global _stale, _writing
    while True:
        with _lock:
            while not _stale:
                _lock.wait()
            _writing = True
        time.sleep(WRITE_SECONDS)
        with _lock:
            _stale = False
            source = _source
        try:
            _write(source() if source else {})
        finally:
            with _lock:
                _writing = False
                _lock.notify_all()


def _path(cache_dir: str) -> str:
    return os.path.join(cache_dir, FOLDER, f"{os.getpid()}.json")


def _write(wanted: dict[str, list[dict[str, Any]]]) -> None:
    """Each ``cache_dir``'s board written whole, the empty ones removed."""
    boards: dict[str, list[dict[str, Any]]] = {}
    for setting, entries in wanted.items():
        try:
            boards.setdefault(private_cache_dir(setting), []).extend(entries)
        except InvalidSettingError:
            continue  # the executor refuses it too, and says why
    for cache_dir in set(_written) - {d for d, entries in boards.items() if entries}:
        _remove(cache_dir)
    for cache_dir, entries in boards.items():
        if not entries:
            continue
        path = _path(cache_dir)
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            partial = f"{path}.{threading.get_ident()}.part"
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"pid": os.getpid(), "written": time.time(), "waiting": entries}, handle)
            os.replace(partial, path)
            _written.add(cache_dir)
        except OSError:
            pass  # the board is a courtesy to the jobs command: the line goes on without it


def _remove(cache_dir: str) -> None:
    _written.discard(cache_dir)
    try:
        os.unlink(_path(cache_dir))
    except OSError:
        pass


@atexit.register
def _clear() -> None:
    for cache_dir in list(_written):
        _remove(cache_dir)


def read(cache_dir: str, dispatch_id: str) -> list[dict[str, Any]]:
    """The electrons of the dispatch waiting for a job slot in the live server processes
    whose board is in ``cache_dir``, first in line first.

    Args:
        cache_dir: the executors' private cache directory.
        dispatch_id: the Covalent dispatch id.

    Returns:
        Entries with ``dispatch_id``, ``node_id``, ``ahead`` (electrons before it in its
        line), ``instance``, ``where`` (account and Region) and ``since`` (epoch seconds).
    """
    folder = os.path.join(cache_dir, FOLDER)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    found = []
    for name in names:
        pid = name.removesuffix(".json")
        if not (name.endswith(".json") and pid.isdigit() and _alive(int(pid))):
            continue
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                board = json.load(handle)
        except (OSError, ValueError):
            continue  # being replaced, or not a board
        found += [e for e in board.get("waiting", []) if e.get("dispatch_id") == dispatch_id]
    return sorted(found, key=lambda entry: (entry["ahead"], entry["since"]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
