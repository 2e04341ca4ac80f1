"""The warm launcher: job processes forked from a warm parent instead of started cold.

A cold job process (``python -u -m covalent_braket_plugin.emulator.bootstrap``) spends
0.6-6 s importing boto3, Covalent and the Braket SDK before the job's first line. A
:class:`Launcher` keeps one *zygote*: a process started once as ``python -m
covalent_braket_plugin.emulator.launcher``, which imports all that (:data:`PRELOAD`) and then
forks one child per job. Each request travels over a unix-domain ``SOCK_SEQPACKET`` pair with
two descriptors (``SCM_RIGHTS``): the write end of the job's output pipe and one end of a
status socket of the job's own, on which the zygote answers with the child's pid and a pidfd,
and later with its exit status (it reaps its children; the emulator cannot). The child runs
the job only once the emulator has its pid and says go, so that a request given up on (the
zygote too slow) and tried again never runs twice.

The child is made to look like ``python -u -m <module>`` started afresh in ``cwd`` with
``env``: a process group of its own, the environment replaced, stdio on /dev/null and the
pipe (unbuffered), the signal handlers of a fresh interpreter, ``sys.path`` led by ``cwd`` and
``PYTHONPATH``, fresh random seeds, and the interpreter's exit steps before it exits.

A zygote that died, hangs or cannot fork is replaced and the request tried once more; when the
warm path cannot be used at all, :meth:`Launcher.spawn` starts the process cold with
:class:`subprocess.Popen`, which has the interface of :class:`LaunchedProcess`.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import fcntl
import gc
import importlib
import io
import json
import os
import runpy
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
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
    "covalent_braket_plugin.emulator.bootstrap",
)
#: The services whose models the zygote loads into the botocore loader its children share.
WARM_SERVICES: tuple[str, ...] = ("s3", "braket", "logs", "sts")

_MODULE = "covalent_braket_plugin.emulator.launcher"
#: How the zygote is started: ``main`` called by import, not ``-m`` (the package imports this
#: module first, and runpy would warn that it runs a module already imported).
_MAIN = f"import sys; from {_MODULE} import main; main(sys.argv[1:])"
_MAX_MESSAGE = 1 << 20
#: A job whose zygote died before reporting, and which did not report its own status, is
#: taken as killed: its status is lost with the zygote.
_STATUS_LOST = -signal.SIGKILL
_OWN_PROCESS_GROUP: dict[str, Any] = (
    {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
)


# ------------------------------------------------------------------------------ messages
def _send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """Send one JSON message, with ``fds`` passed along (``SCM_RIGHTS``)."""
    socket.send_fds(sock, [json.dumps(message).encode()], list(fds))


def _recv(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
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
            request, fds = _recv(self.control)
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
                _send(status, {"error": f"fork failed: {exc}"})
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
            _send(status, {"pid": pid}, [pidfd])
        except OSError:  # the emulator gave up on this request; the child is reaped all the same
            pass
        return True

    def _reap(self, pidfd: int) -> None:
        pid, status = self.children.pop(pidfd)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, wait_status = os.waitpid(pid, 0)
        try:
            _send(status, {"status": os.waitstatus_to_exitcode(wait_status)})
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
            if _recv(status)[0] != {"go": True}:  # the emulator gave up on it: never run twice
                os._exit(1)
            code = run_entry(request["entry"])
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                _send(status, {"exited": code})
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
    _send(control, {**ready, "pid": os.getpid(), "shared_pipes": len(zygote.shared_pipes)})
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


# ------------------------------------------------------------------------------ the emulator's side
class _ZygoteFailed(Exception):
    """The zygote could not start a job (``replace``: a new zygote may do better)."""

    def __init__(self, reason: str, replace: bool = True) -> None:
        super().__init__(reason)
        self.replace = replace


class LaunchedProcess:
    """A job forked by the zygote, used as a :class:`subprocess.Popen` is.

    Attributes:
        pid: The child's pid, also its process group's id (``os.killpg(pid, ...)``).
        stdout: Its stdout and stderr, binary, readable line by line until EOF.
        returncode: None while it runs; its exit status, or minus the signal that killed it.
    """

    def __init__(
        self,
        pid: int,
        stdout: io.BufferedReader,
        status: socket.socket,
        pidfd: int,
        zygote_alive: Callable[[], bool],
        entry: str,
    ) -> None:
        self.pid = pid
        self.stdout = stdout
        self.returncode: int | None = None
        self.args = [entry]
        self._status = status
        self._pidfd = pidfd
        self._zygote_alive = zygote_alive
        self._lock = threading.Lock()  # one waiter at a time, as Popen
        self._hung_up = False  # every end of the status socket closed
        self._ended = False  # the child exited (its status may still be on its way)
        self._own_code: int | None = None  # what the child said it exits with

    def poll(self) -> int | None:
        """The exit status, or None while the job runs."""
        if self.returncode is None and self._lock.acquire(blocking=False):
            try:
                self._collect()
            finally:
                self._lock.release()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit status.

        Raises:
            subprocess.TimeoutExpired: The job still runs after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)  # type: ignore[arg-type]
        try:
            while self._collect() is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout)  # type: ignore[arg-type]
                if self._ended:  # the report is due; look at the zygote now and then
                    remaining = min(remaining or 0.05, 0.05)
                select.select(self._watched(), [], [], remaining)
        finally:
            self._lock.release()
        assert self.returncode is not None
        return self.returncode

    def _watched(self) -> list[Any]:
        """What to wait on: the status socket until it hangs up, the pidfd until the exit."""
        return [self._status] * (not self._hung_up) + [self._pidfd] * (not self._ended)

    def _collect(self) -> int | None:
        """Take what has come, without blocking (the lock held)."""
        if self.returncode is not None:
            return self.returncode
        self._ended = self._ended or bool(select.select([self._pidfd], [], [], 0)[0])
        zygote_gone = self._ended and not self._zygote_alive()
        while not self._hung_up and self.returncode is None:
            try:
                message, fds = _recv(self._status)
            except BlockingIOError:
                break
            except ConnectionResetError:  # the last end closed with "go" unread: said once,
                continue  # before the messages still queued
            for fd in fds:
                os.close(fd)
            if message is None:
                self._hung_up = True
            elif "status" in message:
                self._finish(message["status"])
            elif "exited" in message:
                self._own_code = message["exited"]
        if self.returncode is None and self._ended and (self._hung_up or zygote_gone):
            self._finish(_STATUS_LOST if self._own_code is None else self._own_code)
        return self.returncode

    def _finish(self, code: int) -> None:
        self.returncode = code
        self._status.close()
        os.close(self._pidfd)

    def __del__(self) -> None:
        if self.returncode is None:  # never waited for: the zygote still reaps it
            self._status.close()
            os.close(self._pidfd)


class _ZygoteProcess:
    """The emulator's side of one zygote: its process and the socket to it."""

    def __init__(self, preload: Sequence[str], start_timeout: float, fork_timeout: float) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [sys.executable, "-c", _MAIN, "--zygote", str(theirs.fileno())]
        try:
            self.process = subprocess.Popen(
                [*command, "--preload", ",".join(preload)],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        except OSError as exc:
            ours.close()
            raise _ZygoteFailed(f"the zygote did not start: {exc}") from exc
        finally:
            theirs.close()
        self.control = ours
        self.fork_timeout = fork_timeout
        ours.settimeout(start_timeout)
        try:
            info, _ = _recv(ours)
        except (OSError, ValueError):  # timed out, or garbled
            info = None
        if info is None:
            self.kill()
            self.process.wait()
            raise _ZygoteFailed(f"the zygote did not come up (exit status {self.process.poll()})")
        ours.settimeout(fork_timeout)  # a request the zygote does not take in time fails
        self.info = info

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def fork(self, entry: str, cwd: str, env: dict[str, str]) -> LaunchedProcess:
        """Have the zygote fork a child running ``entry``.

        Raises:
            _ZygoteFailed: The zygote did not take the request or did not fork in time.
        """
        read_end, write_end = os.pipe()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            try:
                request = {"entry": entry, "cwd": cwd, "env": env}
                _send(self.control, request, [theirs.fileno(), write_end])
            except OSError as exc:
                too_large = exc.errno == errno.EMSGSIZE
                raise _ZygoteFailed(f"the zygote took no request: {exc}", not too_large) from exc
            finally:
                theirs.close()
                os.close(write_end)
            ours.settimeout(self.fork_timeout)
            try:
                reply, fds = _recv(ours)
            except OSError as exc:
                raise _ZygoteFailed(f"the zygote did not answer: {exc}") from exc
            if reply is None or "pid" not in reply or len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                raise _ZygoteFailed((reply or {}).get("error", "the zygote hung up"))
            try:
                _send(ours, {"go": True})  # the child waits for it: a job given up on never runs
            except OSError as exc:
                raise _ZygoteFailed(f"the child is gone: {exc}") from exc
        except BaseException:
            os.close(read_end)
            ours.close()
            raise
        ours.setblocking(False)
        stdout = open(read_end, "rb")  # noqa: SIM115 (the caller reads it to EOF)
        return LaunchedProcess(reply["pid"], stdout, ours, fds[0], self.alive, entry)

    def stop(self) -> None:
        """Hang up: the zygote forks no more and exits once its last child is reaped."""
        self.control.close()
        threading.Thread(target=self.process.wait, daemon=True).start()

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.stop()


class Launcher:
    """Starts job processes warm (forked from a zygote) or, failing that, cold.

    Args:
        preload: The modules the zygote imports before it forks.
        on_event: Told of forks, zygotes started and replaced, and fallbacks, as small dicts
            (an exception it raises is ignored).
        start_timeout: Seconds a new zygote may take to preload.
        fork_timeout: Seconds a zygote may take to take a request and fork.
    """

    def __init__(
        self,
        preload: Sequence[str] = PRELOAD,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        start_timeout: float = 120.0,
        fork_timeout: float = 10.0,
    ) -> None:
        self.preload = tuple(preload)
        self.on_event = on_event
        self.start_timeout = start_timeout
        self.fork_timeout = fork_timeout
        self._lock = threading.RLock()
        self._zygote: _ZygoteProcess | None = None
        self._info: dict[str, Any] = {}
        self._failed_starts = 0
        self._disabled: str | None = None
        self._counts = {"jobs_forked": 0, "zygotes_replaced": 0, "fallbacks": 0}

    def start(self) -> None:
        """Start the zygote in the background, so that the first job finds it warm."""
        threading.Thread(target=self._current, name="launcher-zygote", daemon=True).start()

    def spawn(
        self, entry: str, cwd: str | os.PathLike[str], env: dict[str, str]
    ) -> LaunchedProcess | subprocess.Popen[bytes]:
        """Start ``entry`` (``"module"``, run as ``__main__``, or ``"module:function"``) in
        ``cwd`` with exactly ``env``, in a process group of its own, stdin on /dev/null,
        stdout and stderr on one pipe (``.stdout``).

        Returns:
            A :class:`LaunchedProcess`, or a :class:`subprocess.Popen` when started cold.

        Raises:
            FileNotFoundError: ``cwd`` is no directory (as :class:`subprocess.Popen` raises).
        """
        if not os.path.isdir(cwd):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), cwd)
        reason = "no zygote"
        for _ in range(2):  # the zygote, then once more with a new one
            zygote = self._current()
            if zygote is None:
                reason = self._disabled or "no zygote could be started"
                break
            try:
                process = zygote.fork(entry, os.fspath(cwd), dict(env))
            except _ZygoteFailed as exc:
                reason = str(exc)
                if not exc.replace:
                    break
                self._retire(zygote, reason)
                continue
            self._count("jobs_forked", event="fork", pid=process.pid, entry=entry)
            return process
        return self._cold(entry, cwd, env, reason)

    def describe(self) -> dict[str, Any]:
        """The launcher's health: its zygote, what it preloaded, and the counts (read without
        waiting for a zygote that is starting)."""
        zygote = self._zygote
        return {
            "zygote_pid": zygote.pid if zygote else None,
            "alive": bool(zygote and zygote.alive()),
            "preloaded": self._info.get("preloaded", []),
            "skipped": self._info.get("skipped", {}),
            "disabled": self._disabled,
            **self._counts,
        }

    def shutdown(self) -> None:
        """Stop the zygote; jobs already running go on (and are still reaped)."""
        with self._lock:
            self._disabled = self._disabled or "the launcher is shut down"
            if self._zygote is not None:
                self._zygote.stop()
                self._zygote = None

    def _current(self) -> _ZygoteProcess | None:
        """The live zygote, started (or replaced) as needed; None if there can be none."""
        with self._lock:
            if self._zygote is not None and not self._zygote.alive():
                status = self._zygote.process.returncode
                self._retire(self._zygote, f"the zygote died (exit status {status})")
            if self._zygote is None and self._disabled is None:
                self._zygote = self._start()
            return self._zygote

    def _start(self) -> _ZygoteProcess | None:
        try:
            zygote = _ZygoteProcess(self.preload, self.start_timeout, self.fork_timeout)
        except _ZygoteFailed as exc:
            self._failed_starts += 1
            self._emit(event="zygote-failed", reason=str(exc))
            if self._failed_starts >= 2:
                self._disabled = f"no zygote starts: {exc}"
            return None
        self._info = zygote.info
        if zygote.info["threads"]:  # forking would copy their locks, held or not
            zygote.kill()
            self._disabled = f"the preload left threads running: {zygote.info['threads']}"
            self._emit(event="zygote-failed", reason=self._disabled)
            return None
        self._failed_starts = 0
        info = {k: zygote.info[k] for k in ("preloaded", "skipped")}
        self._emit(event="zygote-started", pid=zygote.pid, **info)
        return zygote

    def _retire(self, zygote: _ZygoteProcess, reason: str) -> None:
        with self._lock:
            if self._zygote is not zygote:
                return  # another thread retired it already
            self._zygote = None
            zygote.kill()
            self._count("zygotes_replaced", event="zygote-replaced", pid=zygote.pid, reason=reason)

    def _cold(
        self, entry: str, cwd: str | os.PathLike[str], env: dict[str, str], reason: str
    ) -> subprocess.Popen[bytes]:
        self._count("fallbacks", event="fallback", entry=entry, reason=reason)
        module, _, function = entry.partition(":")
        target = ["-c", _MAIN, "--run", entry] if function else ["-m", module]
        return subprocess.Popen(
            [sys.executable, "-u", *target],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            **_OWN_PROCESS_GROUP,
        )

    def _count(self, name: str, **event: Any) -> None:
        with self._lock:
            self._counts[name] += 1
        self._emit(**event)

    def _emit(self, **event: Any) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                pass


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
