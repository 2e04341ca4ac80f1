"""What a Covalent server process is doing with Braket, written where the command-line tools
read it: the electrons that wait for a job slot, and the jobs it follows.

A waiting electron has no job yet, and the slot gate (:mod:`~covalent_braket_plugin.slots`)
lives in the server's memory; and only the server knows which jobs it still follows (Covalent
0.240 resumes nothing after a restart, so a job whose server stopped or crashed runs on, billed,
followed by nobody). So each server process keeps a board: one JSON file,
``<cache_dir>/servers/<pid>.json``, in the per-user private ``cache_dir`` of its executors,
rewritten (whole, then renamed into place) by a thread of its own shortly after anything on it
changes, and removed when it is empty or the process exits. ``covalent-braket jobs`` reads the
boards of live processes: each waiting electron of a dispatch with its place in the line, and
(``--orphans``) the jobs no live server follows. Nothing here blocks an event loop: the
executors only mark the board stale.
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
FOLDER = "servers"
#: What a board lists: entries by kind, each kind from a source of its own (see :func:`watch`).
KINDS = ("waiting", "following")

Source = Callable[[], dict[str, list[dict[str, Any]]]]
_lock = threading.Condition()
_stale = False
_writing = False
_sources: dict[str, Source] = {}
_writer: threading.Thread | None = None
_written: set[str] = set()


def watch(kind: str, source: Source) -> None:
    """Take ``source`` as what the board lists of ``kind`` (one of :data:`KINDS`): a function
    (cheap, thread-safe) that returns, per ``cache_dir`` setting (as the executor was given
    it), the entries to list there."""
    with _lock:
        _sources[kind] = source


def changed() -> None:
    """Something on the board changed: it is written again soon, on the board's own thread."""
    global _stale, _writer
    with _lock:
        _stale = True
        if _writer is None or not _writer.is_alive():
            _writer = threading.Thread(target=_write_loop, name="server-board", daemon=True)
            _writer.start()
        _lock.notify()


def flush(timeout: float = 5.0) -> None:
    """Wait until the board shows what is so now (tests)."""
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
            sources = dict(_sources)
        try:
            _write({kind: source() for kind, source in sources.items()})
        finally:
            with _lock:
                _writing = False
                _lock.notify_all()


def _path(cache_dir: str) -> str:
    return os.path.join(cache_dir, FOLDER, f"{os.getpid()}.json")


def _write(wanted: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    """Each ``cache_dir``'s board written whole, the empty ones removed."""
    boards: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for kind, by_setting in wanted.items():
        for setting, entries in by_setting.items():
            try:
                board = boards.setdefault(private_cache_dir(setting), {k: [] for k in KINDS})
            except InvalidSettingError:
                continue  # the executor refuses it too, and says why
            board[kind].extend(entries)
    full = {cache_dir for cache_dir, board in boards.items() if any(board.values())}
    for cache_dir in set(_written) - full:
        _remove(cache_dir)
    for cache_dir in full:
        path = _path(cache_dir)
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            partial = f"{path}.{threading.get_ident()}.part"
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"pid": os.getpid(), "written": time.time(), **boards[cache_dir]}, handle)
            os.replace(partial, path)
            _written.add(cache_dir)
        except OSError:
            pass  # the board is a courtesy to the tools: the server goes on without it


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


def _boards(cache_dir: str) -> list[dict[str, Any]]:
    """The boards of the live server processes in ``cache_dir``."""
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
                found.append(json.load(handle))
        except (OSError, ValueError):
            continue  # being replaced, or not a board
    return found


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
    found = [
        entry
        for board in _boards(cache_dir)
        for entry in board.get("waiting", [])
        if entry.get("dispatch_id") == dispatch_id
    ]
    return sorted(found, key=lambda entry: (entry["ahead"], entry["since"]))


def followed(cache_dir: str) -> set[str]:
    """The ARNs of the jobs that live server processes whose board is in ``cache_dir`` follow.

    Args:
        cache_dir: the executors' private cache directory.
    """
    return {
        str(entry.get("job_arn"))
        for board in _boards(cache_dir)
        for entry in board.get("following", [])
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
