"""The zygote: the warm parent process from which each script-mode job is forked.

:class:`~.launcher.Launcher` starts it once as a Python process of its own (the :data:`MAIN`
snippet, ``--zygote FD``). It imports a job's usual modules (:data:`PRELOAD`: boto3, Covalent,
the Braket SDK, ...) and then serves the emulator on a unix-domain ``SOCK_SEQPACKET`` socket:
each request (:func:`send`, :func:`recv`: JSON with descriptors passed by ``SCM_RIGHTS``) brings
the write end of the job's output pipe and one end of a status socket of the job's own. On that
socket the zygote answers with the child's pid and a pidfd, and later with its exit status: it
reaps its children, which the emulator cannot. The child runs the job only once the emulator
has its pid and says go, so that a request given up on and tried again never runs twice.

The child is made to look like ``python -u -m <module>`` started afresh in ``cwd`` with
``env``: a process group of its own, the environment replaced, stdio on /dev/null and the
pipe (unbuffered), the signal handlers of a fresh interpreter, ``sys.path`` led by ``cwd`` and
``PYTHONPATH``, fresh random seeds, and the interpreter's exit steps before it exits
(:func:`run_entry`). ``--run ENTRY`` runs a ``module:function`` entry cold instead.

This module runs inside the zygote and its children: at module level it imports the standard
library only, and nothing of the emulator's side (:mod:`.launcher` imports it, never the
reverse).
"""

from __future__ import annotations

import argparse
import atexit
import fcntl
import gc
import importlib
import io
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

#: What the zygote imports before it forks: a job's usual imports, each one optional.
PRELOAD: tuple[str, ...] = (
    "cloudpickle",
    "covalent",
    "boto3",
    "botocore",
    "braket.aws",
    "braket.jobs",
    "braket.circuits",
    "pennylane",
    "braket.pennylane_plugin",
    "covalent_braket_plugin.emulator.runtime.bootstrap",
)
#: The services whose models the zygote loads into the botocore loader its children share.
WARM_SERVICES: tuple[str, ...] = ("s3", "braket", "logs", "sts")

_MODULE = "covalent_braket_plugin.emulator.runtime.zygote"
#: How the zygote (and a cold ``--run``) is started, as ``python -c MAIN ARGS...``: ``main``
#: called by import, not ``-m`` (the package imports this module first, and runpy would warn
#: that it runs a module already imported).
MAIN = f"import sys; from {_MODULE} import main; main(sys.argv[1:])"
_MAX_MESSAGE = 1 << 20


# ------------------------------------------------------------------------------ messages
def send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """Send one JSON message, with ``fds`` passed along (``SCM_RIGHTS``)."""
    socket.send_fds(sock, [json.dumps(message).encode()], list(fds))


def recv(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """One message and the descriptors that came with it; ``(None, [])`` once the peer is gone.

    Raises:
        BlockingIOError: A non-blocking socket has no message yet.
    """
    data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 4)
    return (json.loads(data) if data else None), fds


# ------------------------------------------------------------------------------ the zygote
def _open_fds() -> set[int]:
    """The descriptors this process has open."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
            found.add(int(name))
        except OSError:  # the listing's own descriptor, closed by now
            pass
    return found


def _pipe_pairs(fds: Iterable[int]) -> list[list[int]]:
    """The pipes among ``fds`` whose two ends are both open here."""
    ends: dict[str, list[int]] = {}
    for fd in fds:
        target = os.readlink(f"/proc/self/fd/{fd}")
        if target.startswith("pipe:"):
            ends.setdefault(target, []).append(fd)
    return [pair for pair in ends.values() if len(pair) > 1]


def _preload(names: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Import ``names``; those imported, and why each other one was skipped."""
    preloaded: list[str] = []
    skipped: dict[str, str] = {}
    for name in names:
        try:
            importlib.import_module(name)
            if name == "botocore":
                _warm_botocore()
        except BaseException as exc:  # a module that fails to import must not stop the zygote
            skipped[name] = f"{type(exc).__name__}: {exc}"
        else:
            preloaded.append(name)
    return preloaded, skipped


def _warm_botocore() -> None:
    """Give every botocore session one loader, with :data:`WARM_SERVICES` loaded into it.

    Each session makes a loader of its own and reads its JSON models afresh (~0.1 s a client);
    sharing one (as the clients of one session already do) makes a child's first client cheap.
    A session given ``AWS_DATA_PATH`` still gets a loader of its own.
    """
    import botocore.loaders
    import botocore.session

    shared = botocore.loaders.create_loader()
    create = botocore.session.create_loader

    def create_loader(search_path_string: str | None = None) -> Any:
        return create(search_path_string) if search_path_string else shared

    botocore.session.create_loader = create_loader
    session = botocore.session.Session()  # throw-away: never boto3's default session
    for service in WARM_SERVICES:
        session.create_client(
            service, region_name="us-east-1", aws_access_key_id="-", aws_secret_access_key="-"
        )


class _Pristine:
    """What a fresh interpreter has, taken before the preload, to be restored in each child."""

    def __init__(self) -> None:
        self.signals = {s: signal.getsignal(s) for s in signal.valid_signals()}
        self.fds = _open_fds()
        self.path0 = sys.path[0]


class _Zygote:
    """The zygote's loop: it forks a child per request and reports each child's exit.

    Args:
        control: The socket to the emulator.
        pristine: The interpreter's state from before the preload.
    """

    def __init__(self, control: socket.socket, pristine: _Pristine) -> None:
        self.control = control
        self.pristine = pristine
        self.shared_pipes = _pipe_pairs(_open_fds() - pristine.fds)
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ)
        self.children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, status)

    def serve(self) -> None:
        """Serve until the emulator hangs up, then until the last child has been reaped."""
        accepting = True
        while accepting or self.children:
            for key, _ in self.selector.select():
                if key.fileobj is self.control:
                    accepting = self._accept()
                else:
                    self._reap(key.fd)

    def _accept(self) -> bool:
        try:
            request, fds = recv(self.control)
        except OSError:
            request, fds = None, []
        if request is None:
            self.selector.unregister(self.control)
            return False
        status, output = socket.socket(fileno=fds[0]), fds[1]
        try:
            pid = os.fork()
        except OSError as exc:
            try:
                send(status, {"error": f"fork failed: {exc}"})
            except OSError:
                pass
            status.close()
            os.close(output)
            return True
        if pid == 0:
            self._child(request, output, status)
        os.close(output)
        try:
            os.setpgid(pid, pid)  # as the child does: a group of its own before its pid is known
        except OSError:
            pass
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, status)
        self.selector.register(pidfd, selectors.EVENT_READ)
        try:
            send(status, {"pid": pid}, [pidfd])
        except OSError:  # the emulator gave up on this request; the child is reaped all the same
            pass
        return True

    def _reap(self, pidfd: int) -> None:
        pid, status = self.children.pop(pidfd)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, wait_status = os.waitpid(pid, 0)
        try:
            send(status, {"status": os.waitstatus_to_exitcode(wait_status)})
        except OSError:
            pass
        status.close()

    def _child(self, request: dict[str, Any], output: int, status: socket.socket) -> NoReturn:
        """Become the job: set up as ``python -u -m`` would be, run the entry, exit."""
        code = 1
        try:
            os.setpgid(0, 0)
            _redirect_stdio(output)
            self.selector.close()
            self.control.close()
            for pidfd, (_, other) in self.children.items():
                os.close(pidfd)
                other.close()
            _restore_signals(self.pristine.signals)
            _privatise_pipes(self.shared_pipes)
            _replace_environment(request["env"])
            os.chdir(request["cwd"])
            _reset_sys(request["entry"], request["env"], self.pristine.path0)
            _reseed()
            if recv(status)[0] != {"go": True}:  # the emulator gave up on it: never run twice
                os._exit(1)
            code = run_entry(request["entry"])
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                send(status, {"exited": code})
            finally:
                os._exit(code)


def _zygote_main(fd: int, preload: list[str]) -> None:
    control = socket.socket(fileno=fd)
    pristine = _Pristine()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the emulator, not for us
    preloaded, skipped = _preload(preload)
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    zygote = _Zygote(control, pristine)
    gc.freeze()  # what the preload made is never collected: fewer pages copied into children
    ready = {"preloaded": preloaded, "skipped": skipped, "threads": threads}
    send(control, {**ready, "pid": os.getpid(), "shared_pipes": len(zygote.shared_pipes)})
    zygote.serve()


# ------------------------------------------------------------------------------ the child
def _redirect_stdio(output: int) -> None:
    """fd 0 on /dev/null, fds 1 and 2 on ``output``; the ``sys`` streams as ``-u`` makes them."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    sys.stdin = sys.__stdin__ = _stream(0, "r", sys.__stdin__)
    sys.stdout = sys.__stdout__ = _stream(1, "w", sys.__stdout__)
    sys.stderr = sys.__stderr__ = _stream(2, "w", sys.__stderr__)


def _stream(fd: int, mode: str, like: Any) -> io.TextIOWrapper:
    """A text stream on ``fd`` in the encoding of ``like``: unbuffered when writing."""
    raw = io.FileIO(fd, mode + "b", closefd=False)
    binary = raw if mode == "w" else io.BufferedReader(raw)
    encoding = getattr(like, "encoding", None) or "utf-8"
    errors = getattr(like, "errors", None) or "strict"
    return io.TextIOWrapper(binary, encoding, errors, write_through=mode == "w")  # type: ignore[arg-type]


def _restore_signals(handlers: dict[int, Any]) -> None:
    for number, handler in handlers.items():
        if handler is None:
            continue
        try:
            signal.signal(number, handler)
        except (OSError, ValueError):  # SIGKILL, SIGSTOP and their kind
            pass


def _privatise_pipes(pairs: list[list[int]]) -> None:
    """Give the child pipes of its own where the preload left both ends of one open (Covalent's
    process pool does): each job would otherwise share them with every other."""
    for pair in pairs:
        read_end, write_end = os.pipe()
        for fd in pair:
            writing = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY
            blocking, inheritable = os.get_blocking(fd), os.get_inheritable(fd)
            os.dup2(write_end if writing else read_end, fd, inheritable=inheritable)
            os.set_blocking(fd, blocking)
        os.close(read_end)
        os.close(write_end)


def _replace_environment(env: dict[str, str]) -> None:
    """``os.environ`` (and ``os.environb``, which shares its data) becomes ``env``."""
    os.environ.clear()
    os.environ.update(env)
    time.tzset()  # the C library's zone, read from TZ
    if "tempfile" in sys.modules:
        sys.modules["tempfile"].tempdir = None  # computed afresh from TMPDIR and the rest


def _reset_sys(entry: str, env: dict[str, str], zygote_path0: str) -> None:
    """``sys.path`` led by the working directory and ``PYTHONPATH``, as ``-m`` makes it; the
    command line ``python -u -m <module>``'s."""
    rest = sys.path[1:] if sys.path and sys.path[0] == zygote_path0 else sys.path[:]
    added = [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.getcwd(), *(p for p in dict.fromkeys(added) if p not in rest), *rest]
    importlib.invalidate_caches()
    sys.argv = ["-m"]  # runpy puts the module's file there, as the interpreter does
    sys.orig_argv = [sys.executable, "-u", "-m", entry.partition(":")[0]]


def _reseed() -> None:
    """What a fork copies and a fresh process would draw anew (``random`` reseeds itself)."""
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if "multiprocessing" in sys.modules:
        sys.modules["multiprocessing"].current_process().authkey = os.urandom(32)


def _call_entry(entry: str) -> None:
    """``module:function`` is imported and called; ``module`` is run as ``__main__``."""
    module, _, function = entry.partition(":")
    if function:
        getattr(importlib.import_module(module), function)()
        return
    sys.modules.pop(module, None)  # run afresh (a preloaded module too, without runpy's warning)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def run_entry(entry: str) -> int:
    """Run ``entry`` as the interpreter runs ``-m``, then its exit steps (non-daemon threads
    joined, ``atexit`` functions, streams flushed).

    Returns:
        The exit status: ``SystemExit``'s code, 1 after an uncaught exception (its traceback
        printed to stderr). An uncaught ``KeyboardInterrupt`` ends the process by SIGINT.
    """
    interrupted = False
    try:
        _call_entry(entry)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
        code, interrupted = 1, isinstance(exc, KeyboardInterrupt)
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


# ------------------------------------------------------------------------------ the command line
def main(argv: Sequence[str] | None = None) -> None:
    """``--zygote FD``: serve as a zygote on that socket; ``--run ENTRY``: run a
    ``module:function`` entry cold."""
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--zygote", type=int, metavar="FD")
    mode.add_argument("--run", metavar="ENTRY")
    parser.add_argument("--preload", default=",".join(PRELOAD))
    args = parser.parse_args(argv)
    if args.run:
        sys.argv = ["-m"]  # as in a forked child
        _call_entry(args.run)
    else:
        _zygote_main(args.zygote, [name for name in args.preload.split(",") if name])


if __name__ == "__main__":
    main()
