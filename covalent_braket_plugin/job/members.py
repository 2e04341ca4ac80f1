"""The member runner: several electrons (the *members*) of one packed Braket hybrid job.

This module is uploaded beside the job runner in every script archive, as
``covalent_braket_members.py`` (see :mod:`covalent_braket_plugin.job`), and the runner's
``main`` hands over to :func:`run_pack` when the hyperparameters name members
(``covalent_member_0``, ``covalent_member_1``, ...). Like the runner it depends only on the
standard library, boto3 and cloudpickle.

Each member lives under its own task prefix, as an electron of its own job would, and:

1. runs in a process of its own, forked from this one (nothing is imported again), in a
   process group of its own (``os.setsid``), in a fresh working directory, with its own copy
   of the environment; at most ``covalent_pack_parallel`` members run at once, the others wait
   their turn in order;
2. reads its input (``input.pkl`` inside ``<prefix>/runner.tar.gz``, else ``<prefix>/input.pkl``),
   which it unpickles only when its SHA-256 is the one its hyperparameter names;
3. runs its function with its stdout and stderr written, as they come, to files in its own
   directory; this process echoes them to the job's log, each line after the member's name;
4. uploads its own ``result.pkl`` at once: the runner's header, authenticated with the
   member's key (:func:`covalent_braket_runner.member_key`), then the outcome's pickle.

This process keeps the members in line: a member past its time limit, or cancelled (an object
``cancels/<cancel_name(its prefix)>`` under member 0's prefix: the job lists ``cancels/``
every :data:`CANCEL_POLL_SECONDS`), has its process group killed; a member cancelled before
its turn never starts; and for a member stopped so, or whose process ended without uploading
a result (a crash), this process uploads the result in the same format, with what the member
had written to its stdout and stderr. The job ends normally once every member has a result,
whatever each came to; it fails only when it cannot run its members at all, or cannot upload
a member's result. As members get their results, the job keeps ``<member 0's
prefix>/done.json`` up to date with their prefixes: the server reads that one object to know
whose result to fetch.

A *warm* job (hyperparameter ``covalent_warm_seconds``, its idle window in seconds) does not
end when its members are done. Every :data:`MORE_POLL_SECONDS` it lists the objects
``<member 0's prefix>/more/*.json`` and takes those it has not taken yet (in the order of
their keys: one may land after a later one), and runs, as one more member like the others,
each one whose MAC (:func:`covalent_braket_runner.more_mac`, with the job's key) vouches for
the member it names; anything else there is logged and ignored, never run. Once no member is
pending or running and none arrived for its idle window, the job closes (the runner's
``CLOSED_KEY``): it writes ``closed.json`` to say so, lists ``more/`` once more and runs what
arrived before that, then writes ``closed.json`` again with the keys it ran, and ends. A
listing that fails is logged and tried again at the next look.
"""

from __future__ import annotations

import codecs
import faulthandler
import hmac
import io
import json
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlparse

try:
    from . import cores, runner
except ImportError:  # in the job: top-level modules beside the runner
    import covalent_braket_cores as cores  # type: ignore[no-redef]
    import covalent_braket_runner as runner  # type: ignore[no-redef]

#: How often (seconds) the job looks for members cancelled (one listing of its ``cancels/``).
CANCEL_POLL_SECONDS = 2.0
#: How often (seconds) the members' processes, time limits and output are looked at.
POLL_SECONDS = 0.05
#: How long (seconds) after a failed write of ``done.json`` it is written again.
DONE_RETRY_SECONDS = 1.0
#: How often (seconds) a warm job lists its ``more/`` objects for new members.
MORE_POLL_SECONDS = 0.5
#: How many more looks a closing warm job takes when it could not say it closes, or its last
#: look failed, before it ends all the same (a sender then learns at the job's end).
CLOSE_RETRIES = 5
#: The most keys one page of a listing (``more/``, ``cancels/``, checkpoints) holds.
LIST_PAGE_KEYS = 1000
#: The most a ``more/`` object may hold (bytes); a bigger one is malformed.
MAX_MORE_BYTES = 64 * 1024
#: How often (seconds) a member's process checks that the job's process is still there.
PARENT_POLL_SECONDS = 1.0
#: The exit status of a member's process that could not upload its result.
UPLOAD_FAILED_EXIT = 4
#: The files of a member's own directory: its output, its input, and the mark of its upload.
STDOUT_FILE = "stdout"
STDERR_FILE = "stderr"
UPLOADED_FILE = "uploaded"
#: The member's working directory, inside its own directory.
WORK_DIR = "work"

#: How the job stops a member: its outcome's exception type and message.
_STOPS = {
    "time_limit": ("TimeoutError", "the electron ran past its time limit of {limit} s"),
    "cancelled": ("CancelledError", "the electron was cancelled"),
    "crashed": (
        "ChildProcessError",
        "the electron's process ended with exit code {code} before it returned",
    ),
}


@dataclass(frozen=True)
class Member:
    """One electron of the packed job, as its hyperparameter names it."""

    index: int
    uri: str
    bucket: str
    prefix: str
    sha256: str
    #: Seconds from its own start; None: no limit of its own.
    time_limit: float | None
    #: Whether its electron's checkpoints may hold something to start from (False: the
    #: server knows there is nothing, and the prefix is not listed).
    checkpoints: bool = True

    @property
    def name(self) -> str:
        """The member's short name, before each of its lines in the job's log."""
        return f"member-{self.index}"

    def key(self, name: str) -> str:
        """The S3 key of the object ``name`` under the member's prefix."""
        return f"{self.prefix}/{name}"


@dataclass
class _Pack:
    """What every member of the job shares."""

    s3: Any
    pack_key: bytes
    job_name: str
    size: int
    owned: dict[str, str]
    extra: dict[str, str]
    scratch: str
    parent_pid: int = field(default_factory=os.getpid)
    #: The members' own client, made before the first fork and never used by the job: each
    #: member's copy starts with no connection (the job's are the job's), and none makes one.
    members_s3: Any = field(default_factory=lambda: _s3_client())


class _Echo:
    """Copies what a member writes to one of its output files into the job's log, a whole
    line at a time, each after the member's name."""

    def __init__(self, path: str, stream: IO[str], label: str) -> None:
        self.path = path
        self.stream = stream
        self.label = label
        self.offset = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.partial = ""

    def pump(self, final: bool = False) -> None:
        """Echo the whole lines written since the last call (and, when ``final``, the rest)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            data = b""
        self.offset += len(data)
        lines = (self.partial + self.decoder.decode(data, final)).split("\n")
        self.partial = lines.pop()
        if final and self.partial:
            lines.append(self.partial)
            self.partial = ""
        if lines:
            try:
                self.stream.write("".join(f"[{self.label}] {line}\n" for line in lines))
                self.stream.flush()
            except (OSError, ValueError):
                pass  # the job's log is gone: the output is still in the result


class _FdStream(io.TextIOBase):
    """A text stream that writes each piece straight to a file descriptor (no buffer), so that
    what a member wrote is in its file even when its process is killed."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    def write(self, text: str) -> int:
        view = memoryview(text.encode("utf-8", "backslashreplace"))
        while len(view):
            view = view[os.write(self._fd, view) :]
        return len(text)


@dataclass
class _Running:
    """A member whose process was started."""

    member: Member
    pid: int
    root: str
    started: float
    echoes: list[_Echo]


def members_of(hyperparameters: dict[str, Any]) -> list[Member]:
    """The members the job's hyperparameters name, in order.

    Args:
        hyperparameters: the job's hyperparameters.

    Raises:
        RunnerSetupError: a member's hyperparameter is not what the executor writes.
    """
    found: list[Member] = []
    while (given := hyperparameters.get(f"{runner.HP_MEMBER_PREFIX}{len(found)}")) is not None:
        found.append(
            _member(f"hyperparameter {runner.HP_MEMBER_PREFIX}{len(found)}", given, len(found))
        )
    uris = [member.uri for member in found]
    if len(set(uris)) != len(uris):
        raise runner.RunnerSetupError("two members of the job have the same task prefix")
    return found


def _member(name: str, given: Any, index: int) -> Member:
    """The member a JSON entry names (a hyperparameter's value, or a new member's entry).

    Args:
        name: what the entry is, for the messages.
        given: the entry: a JSON string (or the object it reads as).
        index: the member's index in the job.

    Raises:
        RunnerSetupError: the entry is not what the executor writes.
    """
    try:
        entry = json.loads(given) if isinstance(given, str) else given
    except ValueError:
        entry = None
    uri = entry.get("uri") if isinstance(entry, dict) else None
    parsed = urlparse(uri) if isinstance(uri, str) else None
    if not isinstance(entry, dict) or parsed is None:
        raise runner.RunnerSetupError(f"{name} is not a member's JSON object")
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise runner.RunnerSetupError(f"{name}: {uri!r} is no s3:// prefix")
    limit = entry.get("time_limit")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit < 0
    ):
        raise runner.RunnerSetupError(
            f"{name}: time_limit must be a number of seconds, not {limit!r}"
        )
    sha256 = entry.get("sha256")
    return Member(
        index=index,
        uri=uri,
        bucket=parsed.netloc,
        prefix=parsed.path.strip("/"),
        sha256=sha256 if isinstance(sha256, str) else "",
        time_limit=limit or None,
        checkpoints=entry.get("checkpoints") is not False,
    )


def parallelism(hyperparameters: dict[str, Any]) -> int:
    """How many members run at once: the hyperparameter, or 0 for "0" or none (one per core
    of the instance, and more while they leave cores idle: see :mod:`.cores`).

    Args:
        hyperparameters: the job's hyperparameters.

    Raises:
        RunnerSetupError: the hyperparameter is not a whole number of at least 0.
    """
    return int(_number(hyperparameters, runner.HP_PACK_PARALLEL, int, "a whole number"))


def warm_seconds(hyperparameters: dict[str, Any]) -> float:
    """The job's idle window (see the runner's ``HP_WARM_SECONDS``): 0 when it is not warm.

    Args:
        hyperparameters: the job's hyperparameters.

    Raises:
        RunnerSetupError: the hyperparameter is not a finite number of at least 0.
    """
    return float(_number(hyperparameters, runner.HP_WARM_SECONDS, float, "a number of seconds"))


def _number(
    hyperparameters: dict[str, Any], name: str, kind: Callable[[str], float], what: str
) -> float:
    """A hyperparameter read as ``kind``: finite and at least 0, "0" when missing.

    Raises:
        RunnerSetupError: naming the hyperparameter and what it must be.
    """
    given = str(hyperparameters.get(name) or "0").strip()
    try:
        number = kind(given)
    except ValueError:
        number = -1
    if not 0 <= number < float("inf"):
        raise runner.RunnerSetupError(f"hyperparameter {name} must be {what}, not {given!r}")
    return number


def _s3_client(attempts: int = 10) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": attempts}))


def _preload() -> None:
    """Import before the first fork what every member's process needs, so none imports it."""
    import cloudpickle  # noqa: F401
    from botocore.exceptions import ClientError  # noqa: F401

    try:
        import braket.tracking  # noqa: F401
    except Exception:
        pass  # no Braket SDK in the image: the members count no quantum tasks


def run_pack(hyperparameters: dict[str, Any], pack_key: bytes) -> None:
    """Run every member the hyperparameters name, and see that each has a result.

    Args:
        hyperparameters: the job's hyperparameters.
        pack_key: the job's attempt key, from which each member's key is derived.

    Raises:
        RunnerSetupError: the members cannot be run, or a member's result cannot be uploaded.
    """
    members = members_of(hyperparameters)
    parallel = parallelism(hyperparameters)
    warm = warm_seconds(hyperparameters)
    _preload()
    owner = hyperparameters.get(runner.HP_BUCKET_OWNER)
    owned = {"ExpectedBucketOwner": owner} if owner else {}
    extra = {**runner._encryption(hyperparameters.get(runner.HP_KMS_KEY_ID)), **owned}
    job_name = os.environ.get("AMZN_BRAKET_JOB_NAME", "")
    more = None
    if warm:
        first = members[0]
        more = _More(_s3_client(attempts=2), first.bucket, f"{first.key(runner.MORE_PREFIX)}/")
    warmth = (
        f", warm: more members from s3://{more.bucket}/{more.prefix} until idle for {warm:g} s"
        if more
        else ""
    )
    at_once = (
        f"at most {parallel} at once"
        if parallel
        else f"one per core ({os.cpu_count() or 1}) at once, more while cores are idle"
    )
    _log(f"{len(members)} members, {at_once}{warmth}")
    with tempfile.TemporaryDirectory(prefix="covalent-braket-pack-") as scratch:
        pack = _Pack(_s3_client(), pack_key, job_name, len(members), owned, extra, scratch)
        unsent = _Scheduler(pack, members, parallel, warm, more).run()
    if unsent:
        raise runner.RunnerSetupError(
            "the job could not upload the result of "
            + ", ".join(f"{member.name} ({member.uri})" for member in unsent)
        )
    _log(f"all {pack.size} members have their results")


def _log(text: str) -> None:
    print(f"[pack] {text}", flush=True)


@dataclass
class _More:
    """Where a warm job's new members arrive, and how far it has taken them."""

    s3: Any
    bucket: str
    #: ``<member 0's prefix>/more/``.
    prefix: str
    #: The keys looked at, whatever they held (each is taken once).
    seen: set[str] = field(default_factory=set)
    #: The keys of the objects run as members, in order.
    taken: list[str] = field(default_factory=list)
    #: Whether the last listing (or reading) failed, and that was logged.
    failing: bool = False


class _Scheduler:
    """Starts the members in turn and watches them until each has its result (and, in a warm
    job, takes new members until none arrived for its idle window)."""

    def __init__(
        self,
        pack: _Pack,
        members: list[Member],
        parallel: int,
        warm: float = 0.0,
        more: _More | None = None,
    ) -> None:
        self.pack = pack
        self.pending: deque[Member] = deque(members)
        self.running: dict[int, _Running] = {}
        self.parallel = parallel
        #: With no number given: one member per core, more while cores are idle.
        self.gauge = None if parallel else cores.Gauge(os.cpu_count() or 1)
        self.unsent: list[Member] = []
        self.next_check = 0.0
        self.warned = False
        self.warm = warm if more is not None else 0.0
        self.more = more
        self.uris = {member.uri for member in members}
        self.next_more = 0.0
        #: The job closes: it takes no idle window again; whether ``closed.json`` says so, and
        #: how many looks it took again because it did not, or a look failed.
        self.closing = False
        self.said_closing = False
        self.close_retries = 0
        #: The last time a member was pending or running, or ended (its result sent).
        self.busy = time.monotonic()
        #: The members whose result is there, in order, for ``done.json`` (how many of them
        #: it holds so far, and when it is written next after a failure).
        self.head = members[0] if members else None
        self.done: list[str] = []
        self.done_written = 0
        self.next_done_write = 0.0

    def run(self) -> list[Member]:
        """Run the members; return those whose result could not be uploaded."""
        installed = threading.current_thread() is threading.main_thread()
        if installed:
            previous = signal.signal(signal.SIGTERM, _terminated)
        try:
            self.busy = time.monotonic()
            while True:
                self._reap()
                if time.monotonic() >= self.next_check:
                    self._check_cancels()
                    self.next_check = time.monotonic() + CANCEL_POLL_SECONDS
                self._enforce_time_limits()
                if self.warm and time.monotonic() >= self.next_more:
                    self._take_more()
                    self.next_more = time.monotonic() + MORE_POLL_SECONDS
                for _ in range(self._room()):
                    self._start(self.pending.popleft())
                for running in self.running.values():
                    for echo in running.echoes:
                        echo.pump()
                self._write_done()
                if self.pending or self.running:
                    self.busy = time.monotonic()
                elif not self.warm:
                    break
                elif self.closing or time.monotonic() - self.busy >= self.warm:
                    if self._close():
                        break
                    continue
                time.sleep(POLL_SECONDS)
        finally:
            for running in list(self.running.values()):  # the job is stopped: so are they
                _kill_group(running.pid)
                _wait(running.pid)
            if installed:
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        return self.unsent

    def _room(self) -> int:
        """How many pending members start now."""
        if not self.pending:
            return 0
        if self.gauge is None:
            return min(len(self.pending), max(0, self.parallel - len(self.running)))
        pids = [running.pid for running in self.running.values()]
        return min(len(self.pending), self.gauge.room(pids))

    # ------------------------------------------------------------------ new members
    def _close(self) -> bool:
        """The job is idle past its window, or closing: whether it ends now. It says it closes
        first, then runs what arrived before that; once a last look finds nothing new, it
        names what it ran (see the runner's ``CLOSED_KEY``) and ends."""
        more = self.more
        assert more is not None
        self.closing = True
        if not self.said_closing:
            self.said_closing = self._write_closed({"closing": True})
        self._take_more()  # what arrived before the close, or since the last listing
        if self.pending:
            return False
        if not self.said_closing or more.failing:  # a sender may count on a look not taken
            if self.close_retries < CLOSE_RETRIES:
                self.close_retries += 1
                time.sleep(MORE_POLL_SECONDS)
                return False
            _log("the job ends without a sure last look for more members")
        self._write_closed({"closing": True, "taken": more.taken})
        _log(f"idle for {time.monotonic() - self.busy:.1f} s: the job ends")
        return True

    def _write_closed(self, document: dict[str, Any]) -> bool:
        """Write ``closed.json`` (see the runner's ``CLOSED_KEY``); one that cannot be
        written is logged, and False."""
        try:
            self._put_json(runner.CLOSED_KEY, document)
        except Exception as exc:
            _log(f"cannot write {runner.CLOSED_KEY}: {exc}")
            return False
        return True

    def _take_more(self) -> None:
        """Add, as pending members, the ``more/`` objects that arrived since the last look
        and are vouched for; log and skip the others. A listing or a read that fails is
        logged (once until one succeeds) and tried again at the next look."""
        more = self.more
        assert more is not None
        try:
            keys = self._more_keys(more)
            for key in keys:
                body = self._more_body(more, key)
                more.seen.add(key)  # whatever it holds: it is never looked at again
                if body is not None and self._add_more(key, body):
                    more.taken.append(key)
        except Exception as exc:
            if not more.failing:
                _log(f"cannot list or read s3://{more.bucket}/{more.prefix} (tried again): {exc}")
            more.failing = True
            return
        more.failing = False

    def _more_keys(self, more: _More) -> list[str]:
        """The keys under ``more/`` not looked at yet, in order (every page)."""
        keys = _listed(more.s3, more.bucket, more.prefix, self.pack.owned)
        return [key for key in keys if key not in more.seen]

    def _more_body(self, more: _More, key: str) -> bytes | None:
        """The object's bytes; None (logged) for one that is not a new member's (not
        ``.json``, too big, or gone since it was listed).

        Raises:
            Exception: S3 cannot tell (the object is read again at the next look).
        """
        from botocore.exceptions import ClientError

        where = f"s3://{more.bucket}/{key}"
        if not key.endswith(".json"):
            _log(f"ignored {where}: not a .json object")
            return None
        try:
            reply = more.s3.get_object(Bucket=more.bucket, Key=key, **self.pack.owned)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                _log(f"ignored {where}: it is gone")
                return None
            raise
        stream = reply["Body"]
        try:
            body = stream.read(MAX_MORE_BYTES + 1)
        finally:
            stream.close()
        if len(body) > MAX_MORE_BYTES:
            _log(f"ignored {where}: larger than {MAX_MORE_BYTES} bytes")
            return None
        return body

    def _add_more(self, key: str, body: bytes) -> bool:
        """Add the member the object names, if its MAC vouches for it (else log why not, and
        say False)."""
        more = self.more
        assert more is not None
        where = f"s3://{more.bucket}/{key}"
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        entry = document.get("member") if isinstance(document, dict) else None
        mac = document.get("mac") if isinstance(document, dict) else None
        if not isinstance(entry, str) or not isinstance(mac, str):
            _log(f"ignored {where}: not a new member's JSON object")
            return False
        expected = runner.more_mac(self.pack.pack_key, entry)
        if not hmac.compare_digest(mac.encode("utf-8", "replace"), expected.encode()):
            _log(f"ignored {where}: its MAC is wrong")
            return False
        try:
            member = _member(where, entry, self.pack.size)
        except runner.RunnerSetupError as exc:
            _log(f"ignored {exc}")
            return False
        if member.uri in self.uris:
            _log(f"ignored {where}: {member.uri} is a member already")
            return False
        self.uris.add(member.uri)
        self.pack.size += 1
        self.pending.append(member)
        _log(f"{member.name} arrived: {member.uri}")
        return True

    # ------------------------------------------------------------------ starting
    def _start(self, member: Member) -> None:
        root = tempfile.mkdtemp(prefix=f"{member.name}-", dir=self.pack.scratch)
        os.mkdir(os.path.join(root, WORK_DIR))
        for stream in (sys.stdout, sys.stderr):  # nothing of ours is written twice
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        try:
            pid = os.fork()
        except OSError as exc:
            _log(f"{member.name} cannot start: {exc}")
            outcome = _failure("ChildProcessError", f"the electron's process cannot start: {exc}")
            self._send(member, root, outcome, "crashed")
            return
        if pid == 0:
            _member_process(self.pack, member, root)  # never returns
        echoes = [
            _Echo(os.path.join(root, STDOUT_FILE), sys.stdout, member.name),
            _Echo(os.path.join(root, STDERR_FILE), sys.stderr, member.name),
        ]
        self.running[member.index] = _Running(member, pid, root, time.monotonic(), echoes)
        if self.gauge is not None:
            self.gauge.started(pid)
        limit = f", time limit {member.time_limit:g} s" if member.time_limit else ""
        _log(f"{member.name} started (pid {pid}{limit}): {member.uri}")

    # ------------------------------------------------------------------ watching
    def _reap(self) -> None:
        for running in list(self.running.values()):
            if _exited(running.pid):
                self._finish(running, None)

    def _enforce_time_limits(self) -> None:
        now = time.monotonic()
        for running in list(self.running.values()):
            limit = running.member.time_limit
            if limit is not None and now - running.started > limit:
                self._finish(running, "time_limit")

    def _check_cancels(self) -> None:
        members = [*self.pending, *(running.member for running in self.running.values())]
        cancelled = self._cancelled_among(members)
        for member in [member for member in self.pending if member.index in cancelled]:
            self.pending.remove(member)
            _log(f"{member.name} cancelled before it started")
            root = tempfile.mkdtemp(prefix=f"{member.name}-", dir=self.pack.scratch)
            self._send(member, root, _stopped("cancelled", member, 0), "cancelled")
        for running in list(self.running.values()):
            if running.member.index in cancelled:
                self._finish(running, "cancelled")

    def _cancelled_among(self, members: list[Member]) -> set[int]:
        """The indexes of the members cancelled: one listing of the job's ``cancels/``
        (see the runner's ``CANCELS_PREFIX``), not a request per member, which would hold up
        the loop that reaps and starts members. When S3 cannot tell: none (said once)."""
        if not members or self.head is None:
            return set()
        prefix = f"{self.head.key(runner.CANCELS_PREFIX)}/"
        try:
            keys = _listed(self.pack.s3, self.head.bucket, prefix, self.pack.owned)
            names = {key[len(prefix) :] for key in keys}
        except Exception as exc:
            if not self.warned:
                self.warned = True
                _log(f"cannot tell which members are cancelled (taken as none): {exc}")
            return set()
        return {member.index for member in members if runner.cancel_name(member.uri) in names}

    # ------------------------------------------------------------------ ending
    def _finish(self, running: _Running, stop: str | None) -> None:
        """End a member's process (killed first when ``stop`` is given), and see that the
        member has its result: its own, or one that says how it ended."""
        member = running.member
        del self.running[member.index]
        if self.gauge is not None:
            self.gauge.ended(running.pid)
        _kill_group(running.pid)  # stopped, or what it left running (before its pid is free)
        code = _wait(running.pid)
        run_ms = int((time.monotonic() - running.started) * 1000)
        for echo in running.echoes:
            echo.pump(final=True)
        uploaded = _uploaded(running.root)
        if uploaded is not None:  # it sent its own result (perhaps just before it was stopped)
            self.done.append(member.uri)
            if uploaded.get("ok"):
                _log(f"{member.name} returned in {uploaded.get('run_ms')} ms")
            else:
                kind = uploaded.get("exception_type")
                _log(f"{member.name} raised {kind} in {uploaded.get('run_ms')} ms")
        else:
            if stop is None:
                stop = "crashed"
                _log(f"{member.name} crashed: exit code {_status(code)}")
            else:
                _log(f"{member.name} stopped ({stop}) after {run_ms} ms")
            outcome = _stopped(stop, member, run_ms, code)
            outcome["stdout"] = _read_text(os.path.join(running.root, STDOUT_FILE))
            outcome["stderr"] = _read_text(os.path.join(running.root, STDERR_FILE))
            self._send(member, running.root, outcome, stop)
        shutil.rmtree(running.root, ignore_errors=True)
        self.busy = time.monotonic()  # the idle window starts once the member has ended

    def _send(self, member: Member, root: str, outcome: dict[str, Any], stop: str) -> None:
        """Upload a result this process wrote for ``member``."""
        outcome["stopped"] = stop
        try:
            _upload(self.pack, member, outcome, root)
            self.done.append(member.uri)
        except Exception as exc:
            _log(f"cannot upload the result of {member.name}: {exc}")
            self.unsent.append(member)
        shutil.rmtree(root, ignore_errors=True)
        self.busy = time.monotonic()

    def _write_done(self) -> None:
        """Write ``done.json`` (see the runner's ``DONE_KEY``) when more members have their
        result than it says; one that cannot be written is logged and tried again after
        :data:`DONE_RETRY_SECONDS` (the server learns of those results at the job's end)."""
        if len(self.done) == self.done_written or self.head is None:
            return
        if time.monotonic() < self.next_done_write:
            return
        try:
            self._put_json(runner.DONE_KEY, {"done": self.done})
        except Exception as exc:
            if not self.next_done_write:
                _log(f"cannot write {self.head.key(runner.DONE_KEY)} (tried again): {exc}")
            self.next_done_write = time.monotonic() + DONE_RETRY_SECONDS
            return
        self.done_written = len(self.done)
        self.next_done_write = 0.0

    def _put_json(self, name: str, document: dict[str, Any]) -> None:
        """Write an object the server reads under member 0's prefix (``done.json``,
        ``closed.json``)."""
        assert self.head is not None
        self.pack.s3.put_object(
            Bucket=self.head.bucket,
            Key=self.head.key(name),
            Body=json.dumps(document).encode(),
            ContentType="application/json",
            **self.pack.extra,
        )


def _listed(s3: Any, bucket: str, prefix: str, owned: dict[str, str]) -> list[str]:
    """The keys under ``prefix``, every page, in order."""
    keys: list[str] = []
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": LIST_PAGE_KEYS}
    request.update(owned)
    while True:
        listed = s3.list_objects_v2(**request)
        keys += [item["Key"] for item in listed.get("Contents", [])]
        token = listed.get("NextContinuationToken")
        if not listed.get("IsTruncated") or not token:
            return sorted(set(keys))
        request["ContinuationToken"] = token


def _terminated(signum: int, frame: Any) -> None:
    """SIGTERM (the job is stopped): leave the loop, whose clean-up kills every member."""
    raise SystemExit(128 + signum)


def _exited(pid: int) -> bool:
    """Whether the process has ended; it is left a zombie (its pid not yet free for another
    process) until :func:`_wait`, so that its group can still be killed safely."""
    if pid in _reaped:
        return True
    try:
        if hasattr(os, "waitid"):
            return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        done, status = os.waitpid(pid, os.WNOHANG)  # no waitid: reaped at once
    except ChildProcessError:
        return True
    if done:
        _reaped[pid] = os.waitstatus_to_exitcode(status)
    return bool(done)


#: Exit codes of processes reaped by :func:`_exited` where ``os.waitid`` is missing.
_reaped: dict[int, int] = {}


def _wait(pid: int) -> int | None:
    """Reap the process; its exit code (negative: the signal that ended it), or None."""
    if pid in _reaped:
        return _reaped.pop(pid)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status)


def _kill_group(pid: int) -> None:
    """SIGKILL the member's process group (the process itself if it has no group yet)."""
    try:
        os.killpg(pid, signal.SIGKILL)
        return
    except ProcessLookupError:
        pass
    except PermissionError:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _status(code: int | None) -> str:
    """An exit code as the messages read it: ``3``, ``-11 (signal SIGSEGV)`` or ``unknown``."""
    if code is None:
        return "unknown"
    if code < 0:
        try:
            return f"{code} (signal {signal.Signals(-code).name})"
        except ValueError:
            pass
    return str(code)


def _uploaded(root: str) -> dict[str, Any] | None:
    """What the member's process said of the result it uploaded; None if it did not."""
    try:
        with open(os.path.join(root, UPLOADED_FILE), encoding="utf-8") as handle:
            said = json.load(handle)
    except (OSError, ValueError):
        return None
    return said if isinstance(said, dict) else None


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _failure(kind: str, message: str, trace: str = "") -> dict[str, Any]:
    return {"ok": False, "exception_type": kind, "exception": message, "traceback": trace}


def _stopped(stop: str, member: Member, run_ms: int, code: int | None = None) -> dict[str, Any]:
    """The outcome of a member the job stopped (or whose process ended without a result)."""
    kind, message = _STOPS[stop]
    limit = f"{member.time_limit:g}" if member.time_limit else "?"
    outcome = _failure(kind, message.format(limit=limit, code=_status(code)))
    outcome.update(stdout="", stderr="", run_ms=run_ms)
    return outcome


def _upload(pack: _Pack, member: Member, outcome: dict[str, Any], root: str) -> None:
    """Write the member's ``result.pkl`` in ``root`` and upload it under its prefix."""
    outcome.setdefault("stdout", "")
    outcome.setdefault("stderr", "")
    outcome.setdefault("run_ms", 0)
    outcome["pack"] = {"job_name": pack.job_name, "members": pack.size}
    outcome["format"] = runner.RESULT_FORMAT
    outcome["job_name"] = pack.job_name
    outcome["task_uri"] = member.uri
    key = runner.member_key(pack.pack_key, member.uri)
    try:
        path = runner._write_result(outcome, root, key)
    except Exception as exc:  # the electron's value cannot be pickled: that is its failure
        traceback.print_exc()
        failed = _failure(
            type(exc).__name__,
            f"the electron's result cannot be pickled: {exc}",
            traceback.format_exc(),
        )
        kept = ("stdout", "stderr", "run_ms", "pack", "format", "job_name", "task_uri")
        failed.update({name: outcome[name] for name in kept})
        if "quantum_tasks" in outcome:
            failed["quantum_tasks"] = outcome["quantum_tasks"]
        outcome.clear()
        outcome.update(failed)
        path = runner._write_result(outcome, root, key)
    pack.s3.upload_file(
        path, member.bucket, member.key(runner.RESULT_KEY), ExtraArgs=dict(pack.extra)
    )


# ---------------------------------------------------------------------- the member's process
def _member_process(pack: _Pack, member: Member, root: str) -> None:
    """The member's process, forked from the job's: run the member, upload its result, and
    exit (0 once the result is uploaded, whatever the electron came to). Never returns."""
    status = UPLOAD_FAILED_EXIT
    try:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the job's handler
        except ValueError:
            pass  # forked from another thread than the main one: the handler is not ours
        os.setsid()  # a group of its own, which the job kills whole
        _redirect(root)
        _watch_parent(pack.parent_pid)
        os.chdir(os.path.join(root, WORK_DIR))
        pack.s3 = pack.members_s3  # not the job's, whose connections are the job's
        checkpoints = _member_checkpoints(pack, member, root)
        try:
            outcome = _run_member(pack, member, root)
        finally:
            _save_checkpoints(pack, member, checkpoints)
        outcome["stdout"] = _read_text(os.path.join(root, STDOUT_FILE))
        outcome["stderr"] = _read_text(os.path.join(root, STDERR_FILE))
        _upload(pack, member, outcome, root)
        said = {
            "ok": outcome["ok"],
            "exception_type": outcome.get("exception_type"),
            "run_ms": outcome["run_ms"],
        }
        with open(os.path.join(root, UPLOADED_FILE), "w", encoding="utf-8") as handle:
            json.dump(said, handle)
        status = 0
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        os._exit(status)


def _redirect(root: str) -> None:
    """Send the process's stdout and stderr (its file descriptors, for what subprocesses and
    C code write too) to the member's files, read its stdin from nowhere, and have a fatal
    signal's Python traceback (:mod:`faulthandler`) written to its stderr."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for fd, name in ((1, STDOUT_FILE), (2, STDERR_FILE)):
        opened = os.open(os.path.join(root, name), flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    nowhere = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nowhere, 0)
    os.close(nowhere)
    sys.stdout = _FdStream(1)
    sys.stderr = _FdStream(2)
    faulthandler.enable(sys.stderr)  # a crash's Python traceback goes with the member's stderr


def _watch_parent(parent_pid: int) -> None:
    """Kill the member's process group should the job's process end first (killed without a
    chance to kill its members): no member outlives its job."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="covalent-braket-watch-job", daemon=True).start()


def _checkpoint_prefix(member: Member) -> str:
    """The member's own checkpoints: its electron's, for all its attempts."""
    return runner.checkpoints_of(member.prefix)


def _member_checkpoints(pack: _Pack, member: Member, root: str) -> str:
    """The member's ``AMZN_BRAKET_CHECKPOINT_DIR``: a directory of its own, with what its
    electron saved in an earlier attempt (the job's own checkpoint directory is its first
    member's); not looked for when the member's entry says there can be none."""
    where = os.path.join(root, "checkpoints")
    os.makedirs(where, exist_ok=True)
    os.environ["AMZN_BRAKET_CHECKPOINT_DIR"] = where
    if not member.checkpoints:
        return where
    prefix = _checkpoint_prefix(member) + "/"
    try:
        for key in _listed(pack.s3, member.bucket, prefix, pack.owned):
            relative = key[len(prefix) :]
            target = os.path.realpath(os.path.join(where, relative))
            if not relative or not target.startswith(os.path.realpath(where) + os.sep):
                continue  # nothing lands outside the directory
            os.makedirs(os.path.dirname(target), exist_ok=True)
            pack.s3.download_file(member.bucket, key, target, ExtraArgs=dict(pack.owned))
    except Exception as exc:
        print(f"the checkpoints at s3://{member.bucket}/{prefix} could not be read: {exc}")
    return where


def _save_checkpoints(pack: _Pack, member: Member, where: str) -> None:
    """Upload what the member left in its checkpoint directory, as the container uploads the
    job's when the job ends."""
    prefix = _checkpoint_prefix(member)
    for directory, _, files in os.walk(where):
        for name in files:
            path = os.path.join(directory, name)
            key = f"{prefix}/{os.path.relpath(path, where)}"
            try:
                pack.s3.upload_file(path, member.bucket, key, ExtraArgs=dict(pack.extra))
            except Exception as exc:
                print(f"checkpoint {key} could not be saved: {exc}")


def _run_member(pack: _Pack, member: Member, root: str) -> dict[str, Any]:
    """Read, check and unpickle the member's input, and run it.

    Returns:
        The outcome (see the runner's ``_run_tracked``), with ``run_ms``; a failure when the
        input cannot be had, is not the one the executor recorded, or cannot be unpickled.
    """
    import cloudpickle

    try:
        path = _member_input(pack, member, root)
        runner._check_digest(path, member.sha256, member.bucket, member.prefix)
        with open(path, "rb") as handle:
            function, args, kwargs = cloudpickle.load(handle)
    except Exception as exc:
        traceback.print_exc()
        outcome = _failure(type(exc).__name__, str(exc), traceback.format_exc())
        outcome["run_ms"] = 0
        return outcome
    started = time.monotonic()
    outcome = runner._run_tracked(function, args, kwargs)
    outcome["run_ms"] = int((time.monotonic() - started) * 1000)
    return outcome


def _member_input(pack: _Pack, member: Member, root: str) -> str:
    """The path of the member's input: ``input.pkl`` of its ``runner.tar.gz`` (a small input
    travels there), else its ``input.pkl``, downloaded into ``root``.

    Raises:
        RunnerSetupError: neither can be had.
    """
    path = os.path.join(root, runner.INPUT_KEY)
    archive = f"{member.prefix}/runner.tar.gz"
    try:
        body = pack.s3.get_object(Bucket=member.bucket, Key=archive, **pack.owned)["Body"]
        with tarfile.open(fileobj=body, mode="r|gz") as tar:
            for entry in tar:
                if entry.name == runner.INPUT_KEY and entry.isfile():
                    source = tar.extractfile(entry)
                    if source is not None:
                        with open(path, "wb") as handle:
                            shutil.copyfileobj(source, handle, runner._CHUNK)
                        return path
    except Exception:
        pass  # no archive, or no input in it: the input is beside it
    try:
        pack.s3.download_file(
            member.bucket, member.key(runner.INPUT_KEY), path, ExtraArgs=dict(pack.owned)
        )
    except Exception as exc:
        raise runner.RunnerSetupError(
            f"the electron's input is neither in s3://{member.bucket}/{archive} nor at "
            f"s3://{member.bucket}/{member.key(runner.INPUT_KEY)}: {exc}"
        ) from exc
    return path
