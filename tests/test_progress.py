"""Progress in the server log: one line per job state change, with the queue position while
the job is queued, the time since submission and the console link; and the few extra calls
that costs (none while the log does not show INFO)."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any
from urllib.parse import quote

import pytest

from covalent_braket_plugin import progress
from covalent_braket_plugin.covalent_loader import server_log
from tests.conftest import ROLE
from tests.test_braket import hosted, run
from tests.test_usage import Lines

pytestmark = pytest.mark.timeout(120)
DISPATCH = "d0c0ffee-1234-5678-9abc-def012345678"  # tests.test_braket.run's


@pytest.fixture
def log_at() -> Any:
    handler, level = Lines(), server_log.level
    server_log.addHandler(handler)

    def at(wanted: int) -> list[str]:
        server_log.setLevel(wanted)
        return handler.lines

    yield at
    server_log.removeHandler(handler)
    server_log.setLevel(level)


def job_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("Braket job ") and "after submission" in line]


def queue_info_calls(aws: Any) -> list[dict[str, Any]]:
    return [
        entry
        for entry in aws.control.journal(service="braket", operation="GetJob")
        if "QueueInfo" in (entry.get("query") or "")
    ]


def test_console_link_and_durations() -> None:
    arn = "arn:aws:braket:eu-north-1:123456789012:job/abc-123"
    assert progress.console_url(arn) == (
        "https://eu-north-1.console.aws.amazon.com/braket/home?region=eu-north-1"
        "#/jobs/arn%3Aaws%3Abraket%3Aeu-north-1%3A123456789012%3Ajob%2Fabc-123"
    )
    assert [progress.duration(s) for s in (3.25, 42, 185, 7500)] == [
        "3.2 s",
        "42 s",
        "3 min 05 s",
        "2 h 05 min",
    ]


def test_one_line_per_state_change_with_the_queue_position_while_queued(
    aws: Any, log_at: Any
) -> None:
    lines = log_at(logging.INFO)
    aws.settings(queue_seconds=2.5)  # several polls (0.3 s) while QUEUED, one line
    aws.control.clear_journal()
    executor = hosted(braket_job_execution_role_name=ROLE)
    # Running for several polls too, so that RUNNING is seen on a busy machine as well.
    assert run(executor, lambda: __import__("time").sleep(1.5) or "done", node_id=7) == "done"
    job_arn = executor._handle
    said = job_lines(lines)
    states = [re.search(r"\) ([A-Z]+)", line).group(1) for line in said]
    assert states == ["QUEUED", "RUNNING", "COMPLETED"], said
    assert "in JOBS_QUEUE at position 1" in said[0]
    job = aws.braket.get_job(jobArn=job_arn)
    for line in said:
        assert f"Braket job {job['jobName']} (dispatch {DISPATCH}, node 7)" in line
        assert line.endswith(
            f"https://us-east-1.console.aws.amazon.com/braket/home?region=us-east-1"
            f"#/jobs/{quote(job_arn, safe='')}"
        )
    seconds = [float(re.search(r", ([\d.]+) s after submission", line).group(1)) for line in said]
    assert seconds == sorted(seconds) and seconds[1] >= 2.0  # it waited out the queue
    # The place is asked on the watcher's own GetJob (one job watched: no extra call), and at
    # most once per three polls.
    get_jobs = aws.control.journal(service="braket", operation="GetJob")
    asked = queue_info_calls(aws)
    assert len(get_jobs) >= 6, get_jobs  # ~8 polls while queued
    assert 1 <= len(asked) <= len(get_jobs) // progress.QUEUE_INFO_EVERY + 1


def test_nothing_is_logged_or_asked_when_the_server_log_is_not_at_info(
    aws: Any, log_at: Any
) -> None:
    lines = log_at(logging.WARNING)
    aws.settings(queue_seconds=1.0)
    aws.control.clear_journal()
    assert run(hosted(braket_job_execution_role_name=ROLE), lambda: 1) == 1
    assert job_lines(lines) == []
    assert queue_info_calls(aws) == []


def test_many_jobs_watched_by_search_get_few_extra_look_ups(aws: Any, log_at: Any) -> None:
    lines = log_at(logging.INFO)
    aws.settings(max_concurrent_jobs=1)  # one job runs at a time: the others queue
    aws.control.clear_journal()

    def nap(n: int) -> int:
        import time

        time.sleep(1.0)
        return n * n

    async def four() -> list[Any]:
        metadata = [
            {"dispatch_id": "feedface", "node_id": node, "results_dir": "/tmp"} for node in range(4)
        ]
        executors = [hosted(braket_job_execution_role_name=ROLE, poll_freq=0.5) for _ in metadata]
        return await asyncio.gather(
            *(
                executor.run(nap, [n], {}, data)
                for n, (executor, data) in enumerate(zip(executors, metadata, strict=True))
            )
        )

    assert asyncio.run(four()) == [0, 1, 4, 9]
    said = job_lines(lines)
    rank = {"QUEUED": 0, "RUNNING": 1, "COMPLETED": 2}
    for node in range(4):
        mine = [line for line in said if f"(dispatch feedface, node {node})" in line]
        states = [re.search(r"\) ([A-Z]+)", line).group(1) for line in mine]
        # States in their order, each said once (one may pass between two polls, as the first
        # job's QUEUED does); a QUEUED one again only with another place in the queue.
        assert states[-1] == "COMPLETED", mine
        assert [rank[state] for state in states] == sorted(rank[state] for state in states)
        assert states.count("RUNNING") <= 1 and states.count("COMPLETED") == 1, mine
        queued = [
            re.sub(r", [\d.]+ s after.*", "", line) for line in mine[: states.count("QUEUED")]
        ]
        assert len(set(queued)) == len(queued), mine
    assert any("at position" in line for line in said), said  # a place was asked
    searches = aws.control.journal(service="braket", operation="SearchJobs")
    extra = queue_info_calls(aws)
    # one extra GetJob in a round, at most every third round
    assert searches and 1 <= len(extra) <= len(searches) // progress.QUEUE_INFO_EVERY + 1
    per_job: dict[str, int] = {}
    for entry in extra:
        per_job[entry["path"]] = per_job.get(entry["path"], 0) + 1
    rounds = len(searches)
    assert all(count <= rounds // progress.QUEUE_INFO_EVERY + 1 for count in per_job.values())
