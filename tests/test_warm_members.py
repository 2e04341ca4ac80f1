"""Warm packed jobs: once its members are done, a packed job takes more, for an idle window.

As in ``tests/test_members.py``, the job runner's ``main`` runs here, in the test process,
against the emulator's S3 (and, in the last test, inside a job of Braket-in-a-box). New members
arrive as objects ``<member 0's prefix>/more/<name>.json``, each vouched for by its MAC; the
members record when they ran (``time.monotonic``, one clock for every process of the machine),
so that the tests assert on the order of what happened, never on how fast it went.
"""

from __future__ import annotations

import hmac
import io
import json
import secrets
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import cloudpickle
import pytest

from covalent_braket_plugin.job import members as member_runner
from covalent_braket_plugin.job import runner
from covalent_braket_plugin.job.runner import (
    HP_MEMBER_PREFIX,
    HP_RESULT_KEY,
    HP_WARM_SECONDS,
    MORE_PREFIX,
    RESULT_FORMAT,
    member_key,
    more_mac,
    read_result_header,
    result_mac,
)
from tests.conftest import BUCKET
from tests.test_members import (
    JOB,
    Pack,
    Spec,
    _greets,
    _keys,
    prepare,
    run_here,
    start_in_braket_in_a_box,
)

pytestmark = pytest.mark.timeout(120)
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the members cannot import tests


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Pack], None]:
    """The packed job's runner run here, looking for more members often."""
    monkeypatch.setattr(member_runner, "MORE_POLL_SECONDS", 0.1)
    return run_here(tmp_path, monkeypatch)


# ---------------------------------------------------------------------------- members
def _span(seconds: float = 0.1) -> tuple[float, float]:
    """When it ran, on the machine's monotonic clock (the same in every process)."""
    start = time.monotonic()
    time.sleep(seconds)
    return start, time.monotonic()


# ---------------------------------------------------------------------------- helpers
def _warm(pack: Pack, seconds: float) -> Pack:
    pack.hyperparameters[HP_WARM_SECONDS] = f"{seconds:g}"
    return pack


def _entry(extra: Pack) -> str:
    """The member JSON of the (only) member of ``extra``, as a hyperparameter would name it."""
    return extra.hyperparameters[f"{HP_MEMBER_PREFIX}0"]


def _put_more(aws: Any, pack: Pack, name: str, body: Any) -> None:
    """Put ``body`` (JSON for anything but bytes) as ``more/<name>`` of the job."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    key = f"{pack.prefixes[0]}/{MORE_PREFIX}/{name}"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=data)


def _vouched(pack: Pack, entry: str) -> dict[str, str]:
    """A new member's object, as the executor writes it."""
    return {"member": entry, "mac": more_mac(pack.key, entry)}


def _outcome(aws: Any, pack: Pack, uri: str, prefix: str, members: int) -> dict[str, Any]:
    """The result of the member at ``uri``: its header and MAC (with the job's key) checked,
    then unpickled; ``members``: how many members the job knew when it wrote it."""
    body = aws.s3.get_object(Bucket=BUCKET, Key=f"{prefix}/result.pkl")["Body"].read()
    stream = io.BytesIO(body)
    header = read_result_header(stream)
    assert header["task_uri"] == uri and header["job_name"] == JOB
    payload = stream.read()
    own = result_mac(member_key(pack.key, uri), uri, JOB, [payload])
    assert hmac.compare_digest(header["mac"], own)
    outcome = cloudpickle.loads(payload)
    assert outcome["format"] == RESULT_FORMAT
    assert (outcome["task_uri"], outcome["job_name"]) == (uri, JOB)
    assert outcome["pack"] == {"job_name": JOB, "members": members}
    return outcome


def _has_no_result(aws: Any, extra: Pack) -> bool:
    return _keys(aws, extra.prefixes[0]) == [f"{extra.prefixes[0]}/runner.tar.gz"]


def _when_stored(aws: Any, key: str, then: Callable[[], None]) -> threading.Thread:
    """A thread that calls ``then`` once the object ``key`` is in the bucket."""

    def wait() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                aws.s3.head_object(Bucket=BUCKET, Key=key)
                break
            except Exception:
                time.sleep(0.02)
        then()

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


def _in_order(log: str, *lines: str) -> bool:
    """Whether each of ``lines`` is in ``log``, each after the one before."""
    at = -1
    for line in lines:
        at = log.find(line, at + 1)
        if at < 0:
            return False
    return True


# ---------------------------------------------------------------------------- tests
def test_a_warm_job_runs_a_member_that_arrives_after_its_first_then_ends_once_idle(
    aws: Any, job: Callable[[Pack], None], capsys: pytest.CaptureFixture[str]
) -> None:
    window = 1.5
    pack = _warm(prepare(aws, [Spec(_greets, ("first",))]), window)
    extra = prepare(aws, [Spec(_span)])
    put_at: list[float] = []

    def put() -> None:  # once the first member has its result
        put_at.append(time.monotonic())
        _put_more(aws, pack, "000001.json", _vouched(pack, _entry(extra)))

    putter = _when_stored(aws, f"{pack.prefixes[0]}/result.pkl", put)
    job(pack)
    ended = time.monotonic()
    putter.join()

    first = _outcome(aws, pack, pack.uris[0], pack.prefixes[0], members=1)
    assert first["ok"] and first["result"] == "hello first!"
    second = _outcome(aws, pack, extra.uris[0], extra.prefixes[0], members=2)
    assert second["ok"] and second["stdout"] == "" and "stopped" not in second
    started, finished = second["result"]
    assert put_at[0] <= started < finished < ended  # it arrived, ran, and then the job ended
    assert ended - finished >= window  # idle for the window since the last member ended

    log = capsys.readouterr().out
    # (member-1 may be seen arriving before member-0's end is logged: it is put once
    # member-0's result is stored, which is before its process is reaped)
    assert "[pack] member-0 returned in " in log
    assert _in_order(
        log,
        f"[pack] member-1 arrived: {extra.uris[0]}\n",
        "[pack] member-1 started (pid ",
        "[pack] member-1 returned in ",
        "[pack] idle for ",
        "[pack] all 2 members have their results",
    )
    assert "s: the job ends\n" in log and "ignored" not in log and "cannot list" not in log


def test_a_more_object_not_vouched_for_is_never_run_and_the_job_still_ends(
    aws: Any,
    job: Callable[[Pack], None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(member_runner, "LIST_PAGE_KEYS", 2)  # the listing takes a few pages
    pack = _warm(prepare(aws, [Spec(_greets, ("first",))]), 1)
    forged, late = prepare(aws, [Spec(_greets, ("forged",))]), prepare(aws, [Spec(_span)])
    other_key = secrets.token_bytes(32)
    objects: list[tuple[str, Any]] = [
        ("000001.json", {"member": _entry(forged), "mac": more_mac(other_key, _entry(forged))}),
        ("000002.json", b"not json"),
        ("000003.json", {"member": _entry(forged), "mac": "\u00fc" * 64}),
        ("000004.json", {"member": _entry(forged)}),
        ("000005.json", b"[" * 50_000),
        ("000006.json", _vouched(pack, _entry(late))),  # the one to run
        ("000007.json", _vouched(pack, _entry(late))),  # the same again
        ("000008.json", _vouched(pack, pack.hyperparameters[f"{HP_MEMBER_PREFIX}0"])),
        ("000009.json", _vouched(pack, json.dumps({"uri": "https://elsewhere/x"}))),
        ("notes.txt", _vouched(pack, _entry(forged))),
    ]
    for name, body in objects:
        _put_more(aws, pack, name, body)
    job(pack)  # it returns: the job ends

    assert _has_no_result(aws, forged)  # never run
    assert _outcome(aws, pack, pack.uris[0], pack.prefixes[0], members=2)["ok"]
    assert _outcome(aws, pack, late.uris[0], late.prefixes[0], members=2)["ok"]

    log = capsys.readouterr().out
    more = f"s3://{BUCKET}/{pack.prefixes[0]}/{MORE_PREFIX}"
    for name, says in (
        ("000001.json", "its MAC is wrong"),
        ("000002.json", "not a new member's JSON object"),
        ("000003.json", "its MAC is wrong"),
        ("000004.json", "not a new member's JSON object"),
        ("000005.json", "not a new member's JSON object"),
        ("000007.json", f"{late.uris[0]} is a member already"),
        ("000008.json", f"{pack.uris[0]} is a member already"),
        ("000009.json", "'https://elsewhere/x' is no s3:// prefix"),
        ("notes.txt", "not a .json object"),
    ):
        assert f"[pack] ignored {more}/{name}: {says}\n" in log, name
    assert f"[pack] member-1 arrived: {late.uris[0]}\n" in log
    assert forged.uris[0] not in log and "member-2" not in log
    assert _in_order(log, "[pack] idle for ", "[pack] all 2 members have their results")


def test_a_more_object_that_lands_after_a_later_one_is_run_too(
    aws: Any, job: Callable[[Pack], None]
) -> None:
    # 000002 lands once the first member has its result; 000001 (numbered first, but its
    # sender was slower) once 000002's member has its own: the job took 000002 long before.
    pack = _warm(prepare(aws, [Spec(_greets, ("first",))]), 1.5)
    early, late = (prepare(aws, [Spec(_greets, (name,))]) for name in ("early", "late"))
    putters = [
        _when_stored(
            aws,
            f"{pack.prefixes[0]}/result.pkl",
            lambda: _put_more(aws, pack, "000002.json", _vouched(pack, _entry(late))),
        ),
        _when_stored(
            aws,
            f"{late.prefixes[0]}/result.pkl",
            lambda: _put_more(aws, pack, "000001.json", _vouched(pack, _entry(early))),
        ),
    ]
    job(pack)
    for putter in putters:
        putter.join()

    assert _outcome(aws, pack, late.uris[0], late.prefixes[0], members=2)["result"] == (
        "hello late!"
    )
    assert _outcome(aws, pack, early.uris[0], early.prefixes[0], members=3)["result"] == (
        "hello early!"
    )


def test_a_warm_job_says_it_closes_then_runs_what_came_before_its_last_look_and_names_it(
    aws: Any, job: Callable[[Pack], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    pack = _warm(prepare(aws, [Spec(_greets, ("first",))]), 1)
    before, after = (prepare(aws, [Spec(_greets, (name,))]) for name in ("before", "after"))
    _put_more(aws, pack, "000002.json", b"not json")  # looked at, never run, never named
    written: list[dict[str, Any]] = []
    write_closed = member_runner._Scheduler._write_closed

    def write_then_send(self: Any, document: dict[str, Any]) -> bool:
        said = write_closed(self, document)
        written.append(document)
        # a sender's object that lands just after the job said it closes, and one after it
        # named what it ran
        name, extra = ("000003.json", before) if len(written) == 1 else ("000004.json", after)
        _put_more(aws, pack, name, _vouched(pack, _entry(extra)))
        return said

    monkeypatch.setattr(member_runner._Scheduler, "_write_closed", write_then_send)
    aws.control.clear_journal()
    job(pack)

    more = f"{pack.prefixes[0]}/{MORE_PREFIX}/"
    named = {"closing": True, "taken": [f"{more}000003.json"]}
    assert written == [{"closing": True}, named]
    closed = aws.s3.get_object(Bucket=BUCKET, Key=f"{pack.prefixes[0]}/closed.json")
    assert json.loads(closed["Body"].read()) == named
    assert _outcome(aws, pack, before.uris[0], before.prefixes[0], members=2)["result"] == (
        "hello before!"
    )
    assert _has_no_result(aws, after)
    # the job said it closes before it last listed more/, and listed nothing after it named
    # what it ran
    steps = [
        "closed" if entry["path"].endswith("/closed.json") else "list"
        for entry in aws.control.journal(service="s3")
        if (entry["operation"], entry["path"][-12:]) == ("PutObject", "/closed.json")
        or (
            entry["operation"] == "ListObjectsV2"
            and parse_qs(entry["query"]).get("prefix") == [more]
        )
    ]
    assert steps.count("closed") == 2 and steps[-1] == "closed"
    assert steps[steps.index("closed") + 1 :].count("list") >= 1


def test_a_closing_job_whose_last_look_fails_looks_again_before_it_ends(
    aws: Any,
    job: Callable[[Pack], None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Only the looks for more members list here (not the looks for cancels).
    monkeypatch.setattr(member_runner._Scheduler, "_cancelled_among", lambda self, members: set())
    pack = _warm(prepare(aws, [Spec(_greets, ("first",))]), 1)
    extra = prepare(aws, [Spec(_greets, ("more",))])
    write_closed = member_runner._Scheduler._write_closed

    def write_then_fail(self: Any, document: dict[str, Any]) -> bool:
        said = write_closed(self, document)
        if document == {"closing": True}:  # its sender found no closed.json: it counts on it
            _put_more(aws, pack, "000001.json", _vouched(pack, _entry(extra)))
            aws.control.faults(fail={"ListObjectsV2": 3})  # the look after fails (3 tries)
        return said

    monkeypatch.setattr(member_runner._Scheduler, "_write_closed", write_then_fail)
    job(pack)

    assert _outcome(aws, pack, extra.uris[0], extra.prefixes[0], members=2)["result"] == (
        "hello more!"
    )
    closed = aws.s3.get_object(Bucket=BUCKET, Key=f"{pack.prefixes[0]}/closed.json")
    taken = [f"{pack.prefixes[0]}/{MORE_PREFIX}/000001.json"]
    assert json.loads(closed["Body"].read()) == {"closing": True, "taken": taken}
    log = capsys.readouterr().out
    assert _in_order(log, "[pack] cannot list or read ", "[pack] member-1 arrived: ")
    assert "without a sure last look" not in log


@pytest.mark.parametrize("warm", [None, "0"], ids=["missing", "zero"])
def test_a_job_that_is_not_warm_never_looks_for_more_members(
    aws: Any, job: Callable[[Pack], None], capsys: pytest.CaptureFixture[str], warm: str | None
) -> None:
    pack = prepare(aws, [Spec(_greets, ("only",)), Spec(_greets, ("second",))])
    if warm is not None:
        pack.hyperparameters[HP_WARM_SECONDS] = warm
    extra = prepare(aws, [Spec(_greets, ("more",))])
    _put_more(aws, pack, "000001.json", _vouched(pack, _entry(extra)))
    aws.control.clear_journal()
    job(pack)

    listings = aws.control.journal(service="s3", operation="ListObjectsV2")
    prefixes = [parse_qs(entry["query"]).get("prefix", [""])[0] for entry in listings]
    # (each member lists its own checkpoints, the job its cancels; none looks for more members)
    assert prefixes and not [prefix for prefix in prefixes if "/more" in prefix]
    assert pack.outcome(aws, 0)["result"] == "hello only!"
    assert pack.outcome(aws, 1)["result"] == "hello second!"
    assert _has_no_result(aws, extra)
    log = capsys.readouterr().out
    assert "arrived" not in log and "idle for" not in log and "warm" not in log
    assert "[pack] all 2 members have their results" in log


def test_a_failing_more_listing_is_logged_once_and_tried_again(
    aws: Any,
    job: Callable[[Pack], None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only the looks for more members list here (not the looks for cancels, whose listing
    # would take the failures).
    monkeypatch.setattr(member_runner._Scheduler, "_cancelled_among", lambda self, members: set())
    pack = _warm(prepare(aws, [Spec(_greets, ("first",))]), 1)
    extra = prepare(aws, [Spec(_greets, ("more",))])
    _put_more(aws, pack, "000001.json", _vouched(pack, _entry(extra)))
    aws.control.faults(fail={"ListObjectsV2": 4})  # a look's 3 tries, the next look's first
    aws.control.clear_journal()
    job(pack)

    assert _outcome(aws, pack, extra.uris[0], extra.prefixes[0], members=2)["result"] == (
        "hello more!"
    )
    listings = aws.control.journal(service="s3", operation="ListObjectsV2")
    assert [entry.get("fault") for entry in listings[:4]] == ["fail"] * 4
    assert listings[4:] and all("fault" not in entry for entry in listings[4:])
    log = capsys.readouterr().out
    assert log.count("[pack] cannot list or read ") == 1
    assert _in_order(
        log, "[pack] cannot list or read ", "[pack] member-1 arrived: ", "[pack] idle for "
    )


@pytest.mark.parametrize("value", ["soon", "-1", "inf", "nan"])
def test_a_warm_window_that_is_not_a_number_of_seconds_fails_the_job(
    job: Callable[[Pack], None], value: str
) -> None:
    entry = json.dumps({"uri": "s3://bucket/a/b", "sha256": "0" * 64, "time_limit": 5})
    hyperparameters = {
        HP_RESULT_KEY: secrets.token_hex(32),
        f"{HP_MEMBER_PREFIX}0": entry,
        HP_WARM_SECONDS: value,
    }
    with pytest.raises(runner.RunnerSetupError, match="must be a number of seconds"):
        job(Pack(b"", [], [], hyperparameters))


def test_more_mac_is_the_hmac_of_the_label_and_the_entry() -> None:
    key, entry = secrets.token_bytes(32), json.dumps({"uri": "s3://b/p", "sha256": "x"})
    message = json.dumps(["covalent-braket more", entry]).encode()
    assert more_mac(key, entry) == hmac.new(key, message, "sha256").hexdigest()
    assert more_mac(key, entry) != more_mac(secrets.token_bytes(32), entry)


def test_a_warm_packed_job_in_braket_in_a_box_takes_a_member_that_arrives_late(
    aws: Any,
) -> None:
    from tests.emulator.test_container import log_of
    from tests.emulator.test_jobs import wait_for

    pack = _warm(prepare(aws, [Spec(_greets, ("ada",))]), 2)
    extra = prepare(aws, [Spec(_greets, ("late",), input="input")])
    putter = _when_stored(
        aws,
        f"{pack.prefixes[0]}/result.pkl",
        lambda: _put_more(aws, pack, "000001.json", _vouched(pack, _entry(extra))),
    )
    arn = start_in_braket_in_a_box(aws, pack)
    done = wait_for(aws, arn, {"COMPLETED", "FAILED"}, timeout=100)
    putter.join()
    assert done["status"] == "COMPLETED", done.get("failureReason")

    assert _outcome(aws, pack, pack.uris[0], pack.prefixes[0], members=1)["result"] == (
        "hello ada!"
    )
    late = _outcome(aws, pack, extra.uris[0], extra.prefixes[0], members=2)
    assert late["ok"] and late["result"] == "hello late!" and late["stdout"] == "hello late\n"
    log = log_of(aws, done)
    assert _in_order(
        log,
        f"[pack] member-1 arrived: {extra.uris[0]}",
        "[member-1] hello late",
        "[pack] idle for ",
        "[pack] all 2 members have their results",
    )
