"""``covalent-braket jobs`` and ``covalent-braket logs`` on a finished dispatch and on a
running one, against the emulator."""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from typing import Any
from urllib.parse import quote

import cloudpickle
import pytest

from covalent_braket_plugin import cli, report, usage
from covalent_braket_plugin.config import DEFAULTS
from tests.conftest import BUCKET, ROLE
from tests.test_braket import hosted, run

pytestmark = pytest.mark.timeout(180)
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job cannot import the tests

DISPATCH = "d0c0ffee-1234-5678-9abc-def012345678"  # tests.test_braket.run's


@pytest.fixture
def configured(aws: Any) -> Any:
    """covalent.conf names the tests' bucket, as the server's would."""
    from covalent._shared_files.config import set_config

    set_config("executors.braket.s3_bucket_name", BUCKET)
    yield aws
    set_config("executors.braket.s3_bucket_name", DEFAULTS["s3_bucket_name"])


def command(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def chatty(count: int) -> int:
    for i in range(count):
        print(f"line {i} of the electron")
    return count


def explode() -> None:
    raise ValueError("boom in node 1")


def test_jobs_and_logs_of_a_finished_dispatch(
    configured: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    aws = configured
    assert run(hosted(braket_job_execution_role_name=ROLE), chatty, 30, node_id=0) == 30
    with pytest.raises(Exception, match="boom in node 1"):
        run(hosted(braket_job_execution_role_name=ROLE), explode, node_id=1)
    usage.wait_for_accounts()
    aws.control.clear_journal()

    code, out, _ = command(capsys, "jobs", DISPATCH, "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(row["node"], row["state"]) for row in rows] == [("0", "COMPLETED"), ("1", "FAILED")]
    assert [row["node_name"] for row in rows] == ["chatty", "explode"]  # the electrons' names
    # Found by one search; a finished job with its usage.json needs no GetJob.
    calls = [entry["operation"] for entry in aws.control.journal(service="braket")]
    assert calls == ["SearchJobs"], calls
    for row in rows:
        job = aws.braket.get_job(jobArn=row["job_arn"])
        assert row["job_name"] == job["jobName"] and row["attempt"] == 0
        assert row["started"] and row["ended"] and row["queue_position"] is None
        assert row["billable_ms"] == pytest.approx(job["billableDuration"], abs=2)
        assert row["usage_recorded"] and row["estimated_cost_usd"] > 0
        assert row["quantum_tasks"] == {}
        assert row["console"].endswith("#/jobs/" + quote(row["job_arn"], safe=""))

    code, out, _ = command(capsys, "jobs", DISPATCH)
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split()[:4] == ["NODE", "ELECTRONS", "JOB", "STATE"]
    assert "CONSOLE" not in header and max(map(len, lines)) < 160  # the links are in --json
    assert any(rows[0]["job_name"] in line and "COMPLETED" in line for line in lines)
    assert any(line.startswith("0 chatty ") for line in lines)
    assert any("Estimated total: USD" in line and "2 of 2 jobs" in line for line in lines)
    assert "*" not in out  # no row lacks a price: no footnote for it

    code, out, _ = command(capsys, "logs", DISPATCH, "0")
    assert code == 0
    assert out.startswith(f"==> {rows[0]['job_name']} (node 0, attempt 0, COMPLETED) <==\n")
    for i in range(30):
        assert out.count(f"line {i} of the electron\n") == 1, out
    assert rows[1]["job_name"] not in out

    code, out, _ = command(capsys, "logs", DISPATCH)
    assert code == 0 and "ValueError: boom in node 1" in out and "line 29 of the electron" in out

    code, out, err = command(capsys, "jobs", "no-such-dispatch")
    assert code == 1 and "no Braket jobs of dispatch no-such-dispatch" in err


def ticking(ticks: int) -> str:
    import time as _time

    for i in range(ticks):
        print(f"tick {i}", flush=True)
        _time.sleep(0.5)
    print("the end", flush=True)
    return "done"


def test_jobs_and_logs_follow_a_running_dispatch_until_its_job_ends(
    configured: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    aws = configured
    aws.settings(queue_seconds=3)
    results: list[Any] = []
    executor = hosted(braket_job_execution_role_name=ROLE)
    worker = threading.Thread(target=lambda: results.append(run(executor, ticking, 8, node_id=3)))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not aws.braket.search_jobs(filters=[])["jobs"] and time.monotonic() < deadline:
            time.sleep(0.1)
        code, out, _ = command(capsys, "jobs", DISPATCH, "--json")
        [row] = json.loads(out)
        assert code == 0 and row["state"] == "QUEUED", row
        assert row["queue_position"] == "1" and row["queue"] == "JOBS_QUEUE"

        while time.monotonic() < deadline:
            if aws.braket.search_jobs(filters=[])["jobs"][0]["status"] == "RUNNING":
                break
            time.sleep(0.1)
        code, out, _ = command(capsys, "jobs", DISPATCH, "--json")
        [row] = json.loads(out)
        assert row["state"] == "RUNNING" and row["started"] and row["ended"] is None
        assert row["estimated_cost_usd"] is None and not row["usage_recorded"]

        code, out, _ = command(capsys, "logs", DISPATCH, "3", "--follow")
        # --follow returned because the job ended, with every line of it, once.
        assert aws.braket.get_job(jobArn=row["job_arn"])["status"] == "COMPLETED"
        assert code == 0
        ticks = [line for line in out.splitlines() if line.startswith("tick ")]
        assert ticks == [f"tick {i}" for i in range(8)], out
        assert out.count("the end\n") == 1
        assert out.rstrip().endswith(f"==> {row['job_name']} ended COMPLETED <==")
    finally:
        worker.join(timeout=120)
    assert results == ["done"]


def test_a_log_is_read_page_by_page_and_only_what_is_new(aws: Any) -> None:
    settings = hosted().settings()
    job = {"jobName": "cov-paging-0-a0", "jobArn": "arn:aws:braket:us-east-1:123456789012:job/p1"}
    stream = "cov-paging-0-a0/p1/algo-1-1"
    try:
        aws.logs.create_log_group(logGroupName="/aws/braket/jobs")
    except aws.logs.exceptions.ResourceAlreadyExistsException:
        pass
    aws.logs.create_log_stream(logGroupName="/aws/braket/jobs", logStreamName=stream)
    start = int(time.time() * 1000)

    def put(first: int, count: int) -> None:
        aws.logs.put_log_events(
            logGroupName="/aws/braket/jobs",
            logStreamName=stream,
            logEvents=[
                {"timestamp": start + i, "message": f"event {i}"}
                for i in range(first, first + count)
            ],
        )

    put(0, 6000)
    put(6000, 6000)  # 12,000 events: more than one page of get_log_events (10,000)
    log = report.JobLog(settings, job)
    out = io.StringIO()
    assert log.read(out) == 12_000
    assert out.getvalue().splitlines() == [f"event {i}" for i in range(12_000)]
    assert log.read(io.StringIO()) == 0  # the token came back unchanged: nothing new
    put(12_000, 3)
    again = io.StringIO()
    assert log.read(again) == 3
    assert again.getvalue().splitlines() == ["event 12000", "event 12001", "event 12002"]


def test_the_search_names_the_dispatch_as_every_job_name_starts() -> None:
    from covalent_braket_plugin.location import job_name

    prefix = report.dispatch_prefix(DISPATCH)
    for node, attempt in ((0, 0), (123456789012345, 19), ("node-x", 3)):
        assert job_name(DISPATCH, node, attempt).startswith(prefix)
    assert not job_name("another-dispatch", 0, 0).startswith(prefix)


def test_the_jobs_table_says_why_an_estimate_is_missing_or_partial() -> None:
    from covalent_braket_plugin import job_table

    def row(name: str, cost: Any, complete: Any, notes: list[str]) -> dict[str, Any]:
        return {
            "node": "0", "job_name": name, "state": "COMPLETED", "queue_position": None,
            "started": None, "ended": None, "billable_ms": 1000, "quantum_tasks": {},
            "usage_recorded": True, "estimated_cost_usd": cost, "cost_complete": complete,
            "cost_notes": notes,
        }  # fmt: skip

    offline = "price list unavailable: http://127.0.0.1:9/x (connection refused)"
    text = job_table.render(
        [
            row("cov-a", None, None, [offline]),
            row("cov-b", None, None, [offline]),
            row("cov-c", 0.01, False, ["no price for device Xyz in us-east-1"]),
            row("cov-d", 0.02, True, ["the job did not count its quantum tasks"]),
        ]
    )
    assert f"  cov-a, cov-b: {offline}" in text
    assert "  cov-c: no price for device Xyz in us-east-1" in text
    assert "cov-d:" not in text  # a complete estimate needs no excuse
    assert "0.0100*" in text and "* an estimate that lacks a price" in text
