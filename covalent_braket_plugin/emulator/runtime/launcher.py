"""The warm launcher: job processes forked from a warm parent instead of started cold.

A cold job process (``python -u -m covalent_braket_plugin.emulator.runtime.bootstrap``) spends
0.6-6 s importing boto3, Covalent and the Braket SDK before the job's first line. A
:class:`Launcher` keeps one *zygote* (:mod:`.zygote`, the code that runs inside it): a
process started once, which imports all that (:data:`~.zygote.PRELOAD`) and then forks one
child per job, set up to look like ``python -u -m <module>`` started afresh.

This module is the emulator's side of it. :class:`_ZygoteProcess` starts a zygote, waits for
it to come up, and sends it each request over their unix-domain ``SOCK_SEQPACKET`` pair, with
two descriptors (``SCM_RIGHTS``): the write end of the job's output pipe and one end of a
status socket of the job's own, on which the zygote answers with the child's pid and a pidfd,
and later with its exit status. The child runs the job only once the emulator has its pid and
says go, so that a request given up on (the zygote too slow) and tried again never runs twice.
:class:`LaunchedProcess` is the job, used as a :class:`subprocess.Popen` is.

A zygote that died, hangs or cannot fork is replaced and the request tried once more; when the
warm path cannot be used at all, :meth:`Launcher.spawn` starts the process cold with
:func:`start_cold` (a :class:`subprocess.Popen`, which has the interface of
:class:`LaunchedProcess`), as the runtime starts an image-mode job's command. The launcher
reports its health (:meth:`Launcher.describe`) and its events (``on_event``).
"""

from __future__ import annotations

import errno
import io
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .zygote import MAIN, PRELOAD, recv, send

#: A job whose zygote died before reporting, and which did not report its own status, is
#: taken as killed: its status is lost with the zygote.
_STATUS_LOST = -signal.SIGKILL
_OWN_PROCESS_GROUP: dict[str, Any] = (
    {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
)


def start_cold(
    command: list[str], cwd: str | os.PathLike[str], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start a job's process cold, as a forked one is set up: ``command`` in ``cwd`` with
    exactly ``env``, in a process group of its own (so that its whole tree can be stopped),
    stdin on /dev/null, stdout and stderr on one pipe (``.stdout``)."""
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **_OWN_PROCESS_GROUP,
    )


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
                message, fds = recv(self._status)
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
        command = [sys.executable, "-c", MAIN, "--zygote", str(theirs.fileno())]
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
            info, _ = recv(ours)
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
                send(self.control, request, [theirs.fileno(), write_end])
            except OSError as exc:
                too_large = exc.errno == errno.EMSGSIZE
                raise _ZygoteFailed(f"the zygote took no request: {exc}", not too_large) from exc
            finally:
                theirs.close()
                os.close(write_end)
            ours.settimeout(self.fork_timeout)
            try:
                reply, fds = recv(ours)
            except OSError as exc:
                raise _ZygoteFailed(f"the zygote did not answer: {exc}") from exc
            if reply is None or "pid" not in reply or len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                raise _ZygoteFailed((reply or {}).get("error", "the zygote hung up"))
            try:
                send(ours, {"go": True})  # the child waits for it: a job given up on never runs
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
        target = ["-c", MAIN, "--run", entry] if function else ["-m", module]
        return start_cold([sys.executable, "-u", *target], cwd, env)

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
