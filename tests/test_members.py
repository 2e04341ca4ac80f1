"""Packed jobs: several electrons ("members") in one Braket job, run by the member runner.

The job runner's ``main`` runs here, in the test process, against the emulator's S3, as it
runs inside a packed job: each member in a process of its own, forked from this one, with its
own working directory and environment, its own time limit and its own ``cancel`` object, and
its own result, authenticated with its own key. The members record what they see (their
working directory, their environment, the times they ran between) and return it, so that the
tests assert on what happened, never on how fast it went.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import itertools
import json
import os
import secrets
import signal
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import cloudpickle
import pytest

from covalent_braket_plugin.job import members as member_runner
from covalent_braket_plugin.job import runner, runner_archive, runner_archive_with
from covalent_braket_plugin.job.runner import (
    CANCELS_PREFIX,
    HP_BUCKET_OWNER,
    HP_INPUT_SHA256,
    HP_MEMBER_PREFIX,
    HP_PACK_PARALLEL,
    HP_PYTHON_VERSION,
    HP_RESULT_KEY,
    HP_TASK_URI,
    RESULT_FORMAT,
    cancel_name,
    member_key,
    read_result_header,
    result_mac,
)
from tests.conftest import BUCKET, ROLE

pytestmark = pytest.mark.timeout(120)
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the members cannot import tests

JOB = "cov-packtest-0-a0"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass
class Spec:
    """One member as a test wants it."""

    function: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    time_limit: int = 60
    #: Where its input is: "archive" (in runner.tar.gz), "input" (input.pkl), "none".
    input: str = "archive"
    #: The digest its hyperparameter names, when not its input's own.
    sha256: str | None = None
    #: False: its entry says its electron has no checkpoints (the job need not look).
    checkpoints: bool = True


@dataclass
class Pack:
    """A packed job's hyperparameters and members, as the tests set them up."""

    key: bytes
    uris: list[str]
    prefixes: list[str]
    hyperparameters: dict[str, str]

    def outcome(self, aws: Any, index: int) -> dict[str, Any]:
        """Member ``index``'s result: its header and MAC checked, then unpickled."""
        uri, prefix = self.uris[index], self.prefixes[index]
        body = aws.s3.get_object(Bucket=BUCKET, Key=f"{prefix}/result.pkl")["Body"].read()
        stream = io.BytesIO(body)
        header = read_result_header(stream)
        assert header["task_uri"] == uri and header["job_name"] == JOB
        payload = stream.read()
        own = result_mac(member_key(self.key, uri), uri, JOB, [payload])
        assert hmac.compare_digest(header["mac"], own)
        assert header["mac"] != result_mac(self.key, uri, JOB, [payload])  # not the job's key
        outcome = cloudpickle.loads(payload)
        assert outcome["format"] == RESULT_FORMAT
        assert (outcome["task_uri"], outcome["job_name"]) == (uri, JOB)
        assert outcome["pack"] == {"job_name": JOB, "members": len(self.uris)}
        assert isinstance(outcome["run_ms"], int) and outcome["run_ms"] >= 0
        return outcome

    def cancel(self, aws: Any, index: int) -> None:
        name = cancel_name(self.uris[index])
        aws.s3.put_object(
            Bucket=BUCKET, Key=f"{self.prefixes[0]}/{CANCELS_PREFIX}/{name}", Body=b""
        )


def prepare(
    aws: Any,
    specs: list[Spec],
    parallel: int | None = None,
    dispatch: Any = None,
    attempt: int = 0,
) -> Pack:
    """Upload each member's input under its own prefix, as the executor does, and write the
    job's hyperparameters."""
    dispatch = dispatch or uuid.uuid4()
    key = secrets.token_bytes(32)
    uris, prefixes, hyperparameters = [], [], {HP_RESULT_KEY: key.hex(), HP_PYTHON_VERSION: PYTHON}
    for index, spec in enumerate(specs):
        prefix = f"covalent-braket/{dispatch}/node-{index}/attempt-{attempt}"
        data = cloudpickle.dumps((spec.function, list(spec.args), spec.kwargs))
        if spec.input == "archive":  # a small input travels in the runner archive
            archive = b"".join(bytes(piece) for piece in runner_archive_with([data], "input.pkl"))
        else:
            archive = runner_archive()[0]
        aws.s3.put_object(Bucket=BUCKET, Key=f"{prefix}/runner.tar.gz", Body=archive)
        if spec.input == "input":
            aws.s3.put_object(Bucket=BUCKET, Key=f"{prefix}/input.pkl", Body=data)
        uri = f"s3://{BUCKET}/{prefix}"
        digest = spec.sha256 or hashlib.sha256(data).hexdigest()
        entry: dict[str, Any] = {"uri": uri, "sha256": digest, "time_limit": spec.time_limit}
        if not spec.checkpoints:
            entry["checkpoints"] = False
        hyperparameters[f"{HP_MEMBER_PREFIX}{index}"] = json.dumps(entry)
        if index == 0:  # the job's own task is its first member's
            hyperparameters.update({HP_TASK_URI: uri, HP_INPUT_SHA256: digest})
        uris.append(uri)
        prefixes.append(prefix)
    if parallel is not None:
        hyperparameters[HP_PACK_PARALLEL] = str(parallel)
    return Pack(key, uris, prefixes, hyperparameters)


def run_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Pack], None]:
    """A packed job's runner run in this process, as the job's container would call it."""
    monkeypatch.setattr(member_runner, "CANCEL_POLL_SECONDS", 0.2)
    monkeypatch.setenv("AMZN_BRAKET_JOB_NAME", JOB)
    hyperparameters = tmp_path / "hyperparameters.json"
    monkeypatch.setenv("AMZN_BRAKET_HP_FILE", str(hyperparameters))

    def run(pack: Pack) -> None:
        hyperparameters.write_text(json.dumps(pack.hyperparameters))
        runner.main()  # returns: the job ends COMPLETED, whatever its members came to

    return run


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Pack], None]:
    return run_here(tmp_path, monkeypatch)


def start_in_braket_in_a_box(aws: Any, pack: Pack) -> str:
    """Create a Braket-in-a-box job that runs ``pack`` (script mode, the runner's archive);
    its ARN."""
    from covalent_braket_plugin.job import ENTRY_POINT
    from tests.emulator.test_container import upload
    from tests.emulator.test_jobs import job_request

    request = job_request(
        upload(aws, runner_archive()[0], "runner.tar.gz"),
        jobName=JOB,
        hyperParameters=pack.hyperparameters,
    )
    request["algorithmSpecification"]["scriptModeConfig"]["entryPoint"] = ENTRY_POINT
    return aws.braket.create_job(**request)["jobArn"]


# ---------------------------------------------------------------------------- members
def _greets(name: str, *, punctuation: str = "!") -> str:
    print(f"hello {name}")
    print(f"a word on {name}", file=sys.stderr)
    return f"hello {name}{punctuation}"


def _raises(message: str) -> None:
    print("about to raise")
    raise ValueError(message)


def _crashes() -> None:
    print("going down", flush=True)
    os._exit(3)


def _segfaults() -> None:
    print("about to segfault", file=sys.stderr)
    os.kill(os.getpid(), signal.SIGSEGV)


def _sleeps(record: str) -> None:
    """Start a process of its own (in the member's group), say so, and sleep past any limit."""
    child = subprocess.Popen(["sleep", "60"])
    Path(f"{record}.part").write_text(json.dumps([os.getpid(), child.pid]))
    os.replace(f"{record}.part", record)  # whole, or not there
    print(f"sleeping in {os.getpid()}")
    time.sleep(60)


def _waits_for(path: str) -> str:
    while not os.path.exists(path):
        time.sleep(0.05)
    return "released"


def _records_start(record: str) -> str:
    Path(record).write_text("started")
    return "ran"


def _sets_environment() -> dict[str, Any]:
    os.environ["COVALENT_PACK_TEST"] = "set by member 0"
    Path("left-by-member-0.txt").write_text("x")
    return {"cwd": os.getcwd(), "pid": os.getpid(), "listing": sorted(os.listdir("."))}


def _reads_environment() -> dict[str, Any]:
    return {
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "variable": os.environ.get("COVALENT_PACK_TEST"),
        "listing": sorted(os.listdir(".")),
        "job_name": os.environ.get("AMZN_BRAKET_JOB_NAME"),
    }


def _interval(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


# ---------------------------------------------------------------------------- helpers
def _gone(pid: int) -> bool:
    """Whether the process has ended (a zombie nobody reaped yet counts as ended)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def _when_written(path: Path, then: Callable[[], None]) -> threading.Thread:
    """A thread that calls ``then`` once ``path`` exists (a member wrote it)."""

    def wait() -> None:
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        then()

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


def _keys(aws: Any, prefix: str) -> list[str]:
    listed = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return [item["Key"] for item in listed]


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that share an instant."""
    return max(sum(1 for s, e in intervals if s <= start < e) for start, _ in intervals)


# ---------------------------------------------------------------------------- tests
def test_each_member_returns_its_own_value_output_and_traceback(
    aws: Any, job: Callable[[Pack], None], capsys: pytest.CaptureFixture[str]
) -> None:
    pack = prepare(
        aws,
        [
            Spec(_greets, ("ada",)),
            Spec(_greets, ("bob",), {"punctuation": "?"}, input="input"),
            Spec(_raises, ("boom",)),
        ],
    )
    job(pack)

    ada, bob, failed = (pack.outcome(aws, index) for index in range(3))
    assert ada["ok"] and ada["result"] == "hello ada!"
    assert (ada["stdout"], ada["stderr"]) == ("hello ada\n", "a word on ada\n")
    assert bob["ok"] and bob["result"] == "hello bob?"
    assert (bob["stdout"], bob["stderr"]) == ("hello bob\n", "a word on bob\n")
    assert "stopped" not in ada and "stopped" not in bob
    assert not failed["ok"] and "stopped" not in failed
    assert (failed["exception_type"], failed["exception"]) == ("ValueError", "boom")
    assert "in _raises" in failed["traceback"] and "ValueError: boom" in failed["traceback"]
    assert failed["stdout"] == "about to raise\n"
    assert "ValueError: boom" in failed["stderr"]

    log = capsys.readouterr()  # the job's log: each member's lines after its name
    assert "[member-0] hello ada\n" in log.out and "[member-1] hello bob\n" in log.out
    assert "[member-0] a word on ada\n" in log.err and "[member-2] ValueError: boom\n" in log.err
    assert "[pack] member-1 started (pid " in log.out and pack.uris[1] in log.out
    assert "[pack] member-0 returned in " in log.out
    assert "[pack] member-2 raised ValueError in " in log.out


def test_a_crash_a_time_limit_and_a_cancel_leave_the_other_members_results_intact(
    aws: Any, job: Callable[[Pack], None], tmp_path: Path
) -> None:
    slept, waited = tmp_path / "slept.json", tmp_path / "waited.json"
    pack = prepare(
        aws,
        [
            Spec(_greets, ("first",)),
            Spec(_crashes),
            Spec(_sleeps, (str(slept),), time_limit=1),
            Spec(_sleeps, (str(waited),), input="input"),  # cancelled once it runs
            Spec(_segfaults),
            Spec(_greets, ("last",), input="input"),
        ],
        parallel=6,
    )
    canceller = _when_written(waited, lambda: pack.cancel(aws, 3))
    job(pack)
    canceller.join()

    first, crashed, timed_out, cancelled, segfaulted, last = (
        pack.outcome(aws, index) for index in range(6)
    )
    assert first["ok"] and first["result"] == "hello first!" and first["stdout"] == "hello first\n"
    assert last["ok"] and last["result"] == "hello last!" and last["stdout"] == "hello last\n"

    assert not crashed["ok"] and crashed["stopped"] == "crashed"
    assert crashed["exception_type"] == "ChildProcessError"
    assert crashed["exception"] == (
        "the electron's process ended with exit code 3 before it returned"
    )
    assert crashed["stdout"] == "going down\n" and crashed["traceback"] == ""

    assert not segfaulted["ok"] and segfaulted["stopped"] == "crashed"
    assert "exit code -11 (signal SIGSEGV)" in segfaulted["exception"]
    assert segfaulted["stderr"].startswith("about to segfault\n")
    assert "Fatal Python error: Segmentation fault" in segfaulted["stderr"]
    assert "in _segfaults" in segfaulted["stderr"]  # where it crashed, from faulthandler

    assert not timed_out["ok"] and timed_out["stopped"] == "time_limit"
    assert timed_out["exception_type"] == "TimeoutError"
    assert timed_out["exception"] == "the electron ran past its time limit of 1 s"
    assert timed_out["run_ms"] >= 1000  # it is stopped only once its limit has passed
    assert timed_out["stdout"].startswith("sleeping in ") and timed_out["traceback"] == ""

    assert not cancelled["ok"] and cancelled["stopped"] == "cancelled"
    assert cancelled["exception_type"] == "CancelledError"
    assert cancelled["exception"] == "the electron was cancelled"
    assert cancelled["stdout"].startswith("sleeping in ")

    for record in (slept, waited):  # each stopped member's whole process group was killed
        member, its_child = json.loads(record.read_text())
        assert _gone(member) and _gone(its_child)


def test_a_member_cancelled_before_its_turn_never_starts(
    aws: Any, job: Callable[[Pack], None], tmp_path: Path
) -> None:
    record = tmp_path / "started"
    pack = prepare(aws, [Spec(_greets, ("only",)), Spec(_records_start, (str(record),))], 1)
    pack.cancel(aws, 1)
    job(pack)

    assert pack.outcome(aws, 0)["result"] == "hello only!"
    cancelled = pack.outcome(aws, 1)
    assert cancelled["stopped"] == "cancelled" and cancelled["exception_type"] == "CancelledError"
    assert (cancelled["run_ms"], cancelled["stdout"], cancelled["stderr"]) == (0, "", "")
    assert not record.exists()


def test_done_json_names_the_members_whose_results_are_there_as_they_come(
    aws: Any, job: Callable[[Pack], None], tmp_path: Path
) -> None:
    """The server reads one object per poll, ``done.json``, to fetch each result as soon as
    it is there: it names a member once its result is uploaded (its own, or the one the job
    wrote for a crash), while the others still run."""
    go = tmp_path / "go"
    pack = prepare(
        aws,
        [Spec(_greets, ("quick",)), Spec(_waits_for, (str(go),)), Spec(_crashes)],
        parallel=3,
    )
    seen: list[list[str]] = []

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not seen:
            done = _done_json(aws, pack)
            if len(done) == 2:
                seen.append(sorted(done))
            time.sleep(0.05)
        go.write_text("go")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    job(pack)
    watcher.join()

    assert seen == [sorted([pack.uris[0], pack.uris[2]])]  # while member 1 waited
    for uri in _done_json(aws, pack):  # each one named has its result there
        assert _keys(aws, f"{pack.prefixes[pack.uris.index(uri)]}/result.pkl")
    assert sorted(_done_json(aws, pack)) == sorted(pack.uris)
    assert pack.outcome(aws, 1)["result"] == "released"


def _done_json(aws: Any, pack: Pack) -> list[str]:
    """What the job's ``done.json`` says (nothing before it is written)."""
    from botocore.exceptions import ClientError

    try:
        body = aws.s3.get_object(Bucket=BUCKET, Key=f"{pack.prefixes[0]}/done.json")["Body"]
    except ClientError:
        return []
    return json.loads(body.read())["done"]


def test_members_have_their_own_working_directory_and_environment(
    aws: Any, job: Callable[[Pack], None]
) -> None:
    pack = prepare(aws, [Spec(_sets_environment), Spec(_reads_environment)], parallel=1)
    here = os.getcwd()
    job(pack)

    setter, reader = pack.outcome(aws, 0)["result"], pack.outcome(aws, 1)["result"]
    assert setter["listing"] == ["left-by-member-0.txt"]
    assert reader["listing"] == []  # a fresh directory, not the one member 0 wrote in
    assert len({setter["cwd"], reader["cwd"], here}) == 3
    assert len({setter["pid"], reader["pid"], os.getpid()}) == 3
    assert reader["variable"] is None  # what member 0 set stayed in its own process
    assert reader["job_name"] == JOB
    assert "COVALENT_PACK_TEST" not in os.environ and os.getcwd() == here


def _resumes(name: str) -> str:
    import os

    where = os.path.join(os.environ["AMZN_BRAKET_CHECKPOINT_DIR"], "state.txt")
    if os.path.exists(where):
        with open(where) as handle:
            return handle.read()
    with open(where, "w") as handle:
        handle.write(f"{name} got this far")
    raise RuntimeError(f"{name} interrupted")


def test_each_member_keeps_its_own_checkpoints_across_attempts(
    aws: Any, job: Callable[[Pack], None]
) -> None:
    dispatch = uuid.uuid4()
    specs = [Spec(_resumes, ("ada",)), Spec(_resumes, ("bob",))]
    first = prepare(aws, specs, dispatch=dispatch)
    job(first)
    assert [first.outcome(aws, i)["exception"] for i in range(2)] == [
        "ada interrupted",
        "bob interrupted",
    ]
    for index, name in enumerate(("ada", "bob")):  # each under its own electron's prefix
        key = f"covalent-braket/{dispatch}/node-{index}/checkpoints/state.txt"
        body = aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert body == f"{name} got this far".encode()
    again = prepare(aws, specs, dispatch=dispatch, attempt=1)  # the members sent again
    job(again)
    assert [again.outcome(aws, i)["result"] for i in range(2)] == [
        "ada got this far",
        "bob got this far",
    ]


def test_a_member_told_its_electron_has_no_checkpoints_does_not_look_but_saves_its_own(
    aws: Any, job: Callable[[Pack], None]
) -> None:
    """The server says so of a first attempt uploaded afresh: no listing per member."""
    dispatch = uuid.uuid4()
    for index, name in enumerate(("ada", "bob")):  # each electron saved something before
        key = f"covalent-braket/{dispatch}/node-{index}/checkpoints/state.txt"
        aws.s3.put_object(Bucket=BUCKET, Key=key, Body=f"{name} got this far".encode())
    specs = [Spec(_resumes, ("ada",)), Spec(_resumes, ("bob",), checkpoints=False)]
    pack = prepare(aws, specs, dispatch=dispatch, attempt=1)
    aws.control.clear_journal()
    job(pack)

    listings = aws.control.journal(service="s3", operation="ListObjectsV2")
    listed = [parse_qs(entry["query"]).get("prefix", [""])[0] for entry in listings]
    assert f"covalent-braket/{dispatch}/node-0/checkpoints/" in listed
    assert not [prefix for prefix in listed if "/node-1/" in prefix]
    assert pack.outcome(aws, 0)["result"] == "ada got this far"
    assert pack.outcome(aws, 1)["exception"] == "bob interrupted"  # it began afresh
    key = f"covalent-braket/{dispatch}/node-1/checkpoints/state.txt"  # and saved its own
    assert aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"bob got this far"


@pytest.mark.parametrize("parallel", [1, 2])
def test_at_most_parallel_members_run_at_once(
    aws: Any, job: Callable[[Pack], None], parallel: int
) -> None:
    pack = prepare(aws, [Spec(_interval, (0.4,)) for _ in range(4)], parallel=parallel)
    job(pack)

    intervals = [pack.outcome(aws, index)["result"] for index in range(4)]
    assert _most_at_once(intervals) == parallel
    if parallel == 1:  # one after another, in order
        for before, after in itertools.pairwise(intervals):
            assert before[1] <= after[0]
    else:  # the first two together; the others each once one of those ended
        assert intervals[1][0] < intervals[0][1] and intervals[0][0] < intervals[1][1]
        assert intervals[2][0] >= min(intervals[0][1], intervals[1][1])


def test_by_default_waiting_members_leave_their_core_to_others(
    aws: Any, job: Callable[[Pack], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No number given: one member per core (one here), and more while the running ones
    leave it idle (they sleep, as an electron that waits on a QPU task does)."""
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    pack = prepare(aws, [Spec(_interval, (1.0,)) for _ in range(4)])
    job(pack)

    intervals = [pack.outcome(aws, index)["result"] for index in range(4)]
    assert _most_at_once(intervals) >= 2, intervals


def test_a_bad_digest_or_a_missing_input_fails_only_that_member(
    aws: Any, job: Callable[[Pack], None]
) -> None:
    pack = prepare(
        aws,
        [
            Spec(_greets, ("fine",)),
            Spec(_greets, ("tampered",), sha256="0" * 64),
            Spec(_greets, ("tampered too",), input="input", sha256="0" * 64),
            Spec(_greets, ("lost",), input="none"),
        ],
    )
    job(pack)

    assert pack.outcome(aws, 0)["result"] == "hello fine!"
    for index, says in ((1, "does not match the digest"), (2, "does not match the digest")):
        refused = pack.outcome(aws, index)
        assert not refused["ok"] and refused["exception_type"] == "RunnerSetupError"
        assert says in refused["exception"] and pack.prefixes[index] in refused["exception"]
        assert "hello" not in refused["stdout"]  # never unpickled, never run
    missing = pack.outcome(aws, 3)
    assert not missing["ok"] and missing["exception_type"] == "RunnerSetupError"
    assert f"{pack.prefixes[3]}/input.pkl" in missing["exception"]


def test_member_results_are_encrypted_and_go_only_to_the_named_owners_bucket(
    aws: Any, job: Callable[[Pack], None], capsys: pytest.CaptureFixture[str]
) -> None:
    account = ROLE.split(":")[4]  # the bucket's owner
    pack = prepare(aws, [Spec(_greets, ("ada",)), Spec(_crashes)])
    pack.hyperparameters[HP_BUCKET_OWNER] = account
    job(pack)
    for index, prefix in enumerate(pack.prefixes):  # its own result, and one the job wrote
        head = aws.s3.head_object(Bucket=BUCKET, Key=f"{prefix}/result.pkl")
        assert head["ServerSideEncryption"] == "AES256", index
    assert pack.outcome(aws, 0)["result"] == "hello ada!"
    assert pack.outcome(aws, 1)["stopped"] == "crashed"

    elsewhere = prepare(aws, [Spec(_greets, ("bob",))])
    elsewhere.hyperparameters[HP_BUCKET_OWNER] = "210987654321"  # not the bucket's owner
    with pytest.raises(runner.RunnerSetupError, match="could not upload the result of member-0"):
        job(elsewhere)  # a member without a result: the job fails
    assert _keys(aws, elsewhere.prefixes[0]) == [f"{elsewhere.prefixes[0]}/runner.tar.gz"]
    assert "cannot upload the result of member-0" in capsys.readouterr().out


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_member_outlives_its_job(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: signal.Signals
) -> None:
    """The job's process stopped (SIGTERM), or killed outright (SIGKILL: the member's process
    notices its parent is gone): the member's whole process group goes with it."""
    record = tmp_path / "record.json"
    pack = prepare(aws, [Spec(_sleeps, (str(record),))])
    hyperparameters = tmp_path / "hyperparameters.json"
    hyperparameters.write_text(json.dumps(pack.hyperparameters))
    monkeypatch.setenv("AMZN_BRAKET_HP_FILE", str(hyperparameters))
    monkeypatch.setenv("AMZN_BRAKET_JOB_NAME", JOB)
    code = "from covalent_braket_plugin.job import runner; runner.main()"
    job = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not record.exists() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert record.exists(), "the member never started"
        job.send_signal(stop)
        assert job.wait(timeout=30) == (128 + stop if stop == signal.SIGTERM else -stop)
    finally:
        job.kill()
    member, its_child = json.loads(record.read_text())
    assert _gone(member) and _gone(its_child)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        (f"{HP_MEMBER_PREFIX}0", "not json", "is not a member's JSON object"),
        (f"{HP_MEMBER_PREFIX}0", json.dumps({"uri": "https://x/y"}), "is no s3:// prefix"),
        (HP_PACK_PARALLEL, "many", "must be a whole number"),
        (HP_RESULT_KEY, "", "is missing or not a key"),
    ],
)
def test_a_job_that_cannot_run_its_members_fails_whole(
    job: Callable[[Pack], None], name: str, value: str, says: str
) -> None:
    entry = json.dumps({"uri": "s3://bucket/a/b", "sha256": "0" * 64, "time_limit": 5})
    hyperparameters = {
        HP_RESULT_KEY: secrets.token_hex(32),
        f"{HP_MEMBER_PREFIX}0": entry,
        name: value,
    }
    with pytest.raises(runner.RunnerSetupError, match=says):
        job(Pack(b"", [], [], hyperparameters))


MODULES = ["covalent_braket_runner.py", "covalent_braket_members.py", "covalent_braket_cores.py"]


def test_every_runner_archive_ships_the_member_runner(tmp_path: Path) -> None:
    source = Path(member_runner.__file__).read_bytes()
    plain = runner_archive()[0]
    with_input = b"".join(bytes(piece) for piece in runner_archive_with([b"data"], "input.pkl"))
    again = b"".join(bytes(piece) for piece in runner_archive_with([b"data"], "input.pkl"))
    assert with_input == again  # byte for byte the same
    for archive, names in (
        (plain, [*MODULES]),
        (with_input, [*MODULES, "input.pkl"]),
    ):
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive))) as tar:
            assert tar.getnames() == names
            shipped = tar.extractfile("covalent_braket_members.py")
            assert shipped is not None and shipped.read() == source
            tar.extractall(tmp_path, filter="data")

    # In the job they are top-level modules: the member runner uses those beside it.
    code = (
        "import covalent_braket_runner as r, covalent_braket_members as m\n"
        "import covalent_braket_cores as c\n"
        "assert m.runner is r and m.cores is c and r._members_module() is m\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_a_packed_job_in_braket_in_a_box_completes_with_each_members_result(aws: Any) -> None:
    from tests.emulator.test_container import log_of
    from tests.emulator.test_jobs import wait_for

    pack = prepare(
        aws,
        [Spec(_greets, ("ada",)), Spec(_raises, ("boom",), input="input"), Spec(_crashes)],
        parallel=2,
    )
    arn = start_in_braket_in_a_box(aws, pack)
    job = wait_for(aws, arn, {"COMPLETED", "FAILED"}, timeout=100)
    assert job["status"] == "COMPLETED", job.get("failureReason")

    ada, failed, crashed = (pack.outcome(aws, index) for index in range(3))
    assert ada["ok"] and ada["result"] == "hello ada!" and ada["stdout"] == "hello ada\n"
    assert failed["exception_type"] == "ValueError" and "stopped" not in failed
    assert crashed["stopped"] == "crashed" and "exit code 3" in crashed["exception"]
    log = log_of(aws, job)
    assert "[member-0] hello ada" in log and "[member-2] going down" in log
    assert "[pack] all 3 members have their results" in log


def test_a_cancelled_packed_job_in_braket_in_a_box_stops_its_members(
    aws: Any, tmp_path: Path
) -> None:
    from tests.emulator.test_jobs import wait_for

    record = tmp_path / "record.json"
    pack = prepare(aws, [Spec(_greets, ("quick",)), Spec(_sleeps, (str(record),))], parallel=2)
    arn = start_in_braket_in_a_box(aws, pack)
    quick = f"{pack.prefixes[0]}/result.pkl"
    deadline = time.monotonic() + 60
    while not (record.exists() and _keys(aws, quick)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert record.exists() and _keys(aws, quick), "the members never got that far"
    aws.braket.cancel_job(jobArn=arn)
    assert wait_for(aws, arn, {"CANCELLED", "FAILED", "COMPLETED"})["status"] == "CANCELLED"

    assert pack.outcome(aws, 0)["result"] == "hello quick!"
    member, its_child = json.loads(record.read_text())
    assert _gone(member) and _gone(its_child)
