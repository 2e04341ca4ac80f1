"""Job slots: an account's hybrid jobs stay within its job quotas (concurrent jobs, instances of
a type), every electron waits its turn instead of failing, and nothing is created for one that
cannot run or is cancelled while it waits. Against the emulator, which enforces the quotas
(``ServiceQuotaExceededException``, HTTP 402) and answers Service Quotas with them."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import pytest
from covalent._shared_files.exceptions import TaskCancelledError

from covalent_braket_plugin import aws as aws_module
from covalent_braket_plugin import cli, doctor, server_board
from covalent_braket_plugin import slots as slots_module
from covalent_braket_plugin.config import InvalidSettingError
from tests.conftest import BUCKET
from tests.emulator.test_jobs import job_request, upload_script, wait_for
from tests.test_braket import hosted, keys, run
from tests.test_progress import log_at  # noqa: F401 (a fixture)
from tests.test_setup_and_doctor import conf_dir, diagnose, good  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(180)
DISPATCH = "5107-5107-5107"


def metadata(node: int) -> dict[str, Any]:
    return {"dispatch_id": DISPATCH, "node_id": node, "results_dir": "/tmp"}


def work(seconds: float) -> Any:
    """An electron that works ``seconds`` and returns its argument."""

    def electron(x: int) -> int:
        import time

        time.sleep(seconds)
        return x

    return electron


def our_jobs(aws: Any) -> list[dict[str, Any]]:
    found = aws.braket.search_jobs(filters=[])["jobs"]
    return [aws.braket.get_job(jobArn=job["jobArn"]) for job in found if "cov-" in job["jobName"]]


def most_at_once(jobs: list[dict[str, Any]]) -> int:
    """The most jobs that held a slot at once: each from its creation until it ended."""
    moments = sorted(
        [(job["createdAt"], 1) for job in jobs] + [(job["endedAt"], -1) for job in jobs],
        key=lambda moment: (moment[0], moment[1]),  # an end before a start at the same time
    )
    at_once = most = 0
    for _, change in moments:
        at_once += change
        most = max(most, at_once)
    return most


def refusals(aws: Any) -> list[dict[str, Any]]:
    return [
        entry
        for entry in aws.control.journal(service="braket", operation="CreateJob")
        if entry.get("error") == "ServiceQuotaExceededException"
    ]


def test_more_electrons_than_slots_all_complete_never_more_at_once_than_the_quota(
    aws: Any,
) -> None:
    aws.settings(concurrent_jobs_quota=2)

    async def many() -> list[Any]:
        return await asyncio.gather(
            *(hosted(pack=False).run(work(0.5), [i], {}, metadata(i)) for i in range(6))
        )

    assert asyncio.run(many()) == list(range(6))
    jobs = our_jobs(aws)
    assert len(jobs) == 6 and all(job["status"] == "COMPLETED" for job in jobs)
    assert most_at_once(jobs) <= 2
    assert refusals(aws) == []  # the gate knew the quota (Service Quotas): nothing refused


def test_a_refusal_caused_by_another_clients_jobs_is_waited_out_with_the_inputs_kept(
    aws: Any,
) -> None:
    aws.settings(concurrent_jobs_quota=1)
    script = upload_script(aws, "def main():\n    import time\n    time.sleep(4)\n")
    other = aws.braket.create_job(**job_request(script))["jobArn"]  # another client's job
    executor = hosted()
    assert run(executor, lambda: 42) == 42
    theirs = wait_for(aws, other, {"COMPLETED", "FAILED"})
    ours = aws.braket.get_job(jobArn=executor._handle)
    assert ours["status"] == "COMPLETED"
    assert ours["createdAt"] >= theirs["endedAt"]  # created once the other job had ended
    assert refusals(aws)  # it was refused while the other job ran, and waited
    created = aws.control.journal(service="braket", operation="CreateJob")
    assert [entry.get("error") for entry in created][-1] is None
    uploads = [
        entry
        for entry in aws.control.journal(service="s3", operation="PutObject")
        if entry["path"].endswith(("/node-0/attempt-0/runner.tar.gz", "/input.pkl"))
    ]
    assert len(uploads) == 1  # the input was kept, not uploaded again
    assert len(our_jobs(aws)) == 1  # the same attempt (job name, client token), once


def test_cancel_while_waiting_for_a_slot_creates_nothing_and_ends_cancelled(aws: Any) -> None:
    aws.settings(concurrent_jobs_quota=1)
    first, second = hosted(), hosted()

    async def scenario() -> tuple[Any, bool, BaseException | None]:
        running = asyncio.create_task(first.run(work(3), [1], {}, metadata(0)))
        while first._handle is None:
            await asyncio.sleep(0.05)
        waiting = asyncio.create_task(second.run(work(0), [2], {}, metadata(1)))
        await asyncio.sleep(1.0)  # it waits for the slot the first holds
        cancelled = await second.cancel({"dispatch_id": DISPATCH, "node_id": 1}, None)
        outcome = (await asyncio.gather(waiting, return_exceptions=True))[0]
        return await running, cancelled, outcome

    value, cancelled, outcome = asyncio.run(scenario())
    assert value == 1
    assert cancelled is True
    assert isinstance(outcome, TaskCancelledError)
    assert len(our_jobs(aws)) == 1  # only the first's
    assert not [key for key in keys(aws) if "/node-1/" in key]  # nothing uploaded either
    assert refusals(aws) == []


def test_an_instance_type_with_quota_0_is_refused_before_anything_is_created(aws: Any) -> None:
    aws.settings(instance_quotas={"ml.m5.xlarge": 0})  # Braket's default is 5
    before = keys(aws)
    with pytest.raises(InvalidSettingError) as info:
        run(hosted(classical_device="ml.m5.xlarge"), lambda: 1)
    message = str(info.value)
    for part in (
        "classical_device",
        "ml.m5.xlarge",
        "L-CEDB9365",
        "is 0",
        "us-east-1",
        "Service Quotas console",
        "aws service-quotas request-service-quota-increase --service-code braket "
        "--quota-code L-CEDB9365",
    ):
        assert part in message, (part, message)
    assert aws.braket.search_jobs(filters=[])["jobs"] == []
    assert keys(aws) == before
    assert aws.control.journal(service="braket", operation="CreateJob") == []


def test_doctor_reports_the_instance_quota_and_the_concurrent_jobs_quota(
    aws: Any,
    good: dict[str, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aws.settings(concurrent_jobs_quota=7, instance_quotas={"ml.m5.large": 3})
    checks = diagnose()
    assert checks["concurrent jobs quota"].status == doctor.OK
    assert "7 jobs at once" in checks["concurrent jobs quota"].detail
    assert "L-65BEB721" in checks["concurrent jobs quota"].detail
    assert checks["instance quota"].status == doctor.OK
    assert "ml.m5.large: 3 at once" in checks["instance quota"].detail

    def denied(*args: Any) -> float:
        raise aws_module.AwsError("GetServiceQuota", "AccessDeniedException", "not allowed")

    monkeypatch.setattr(aws_module, "service_quota", denied)
    checks = diagnose()
    for name in ("concurrent jobs quota", "instance quota"):
        assert checks[name].status == doctor.UNKNOWN
        assert "unknown (not allowed to look: servicequotas:GetServiceQuota)" in (
            checks[name].detail
        )


def test_the_server_log_says_an_electron_waits_for_a_job_slot(aws: Any, log_at: Any) -> None:  # noqa: F811
    aws.settings(concurrent_jobs_quota=1)
    lines = log_at(logging.INFO)

    async def two() -> list[Any]:
        return await asyncio.gather(
            hosted().run(work(1), [0], {}, metadata(0)),
            hosted().run(work(0), [1], {}, metadata(1)),
        )

    assert asyncio.run(two()) == [0, 1]
    waiting = [line for line in lines if "waiting for a job slot" in line]
    assert waiting, lines
    assert any(f"dispatch {DISPATCH}, node " in line and "(0 ahead)" in line for line in waiting)


def test_covalent_braket_jobs_lists_an_electron_waiting_for_a_job_slot(
    aws: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from covalent._shared_files.config import get_config, set_config

    aws.settings(concurrent_jobs_quota=1)
    cache = str(tmp_path / "cache")
    before = {key: get_config(f"executors.braket.{key}") for key in ("s3_bucket_name", "cache_dir")}
    set_config({"executors.braket.s3_bucket_name": BUCKET, "executors.braket.cache_dir": cache})
    first, second = hosted(pack=False, cache_dir=cache), hosted(pack=False, cache_dir=cache)

    def jobs_command() -> tuple[int, str]:
        server_board.flush()
        code = cli.main(["jobs", DISPATCH])
        return code, capsys.readouterr().out

    async def scenario() -> tuple[list[Any], tuple[int, str]]:
        running = asyncio.create_task(first.run(work(3), [1], {}, metadata(0)))
        while first._handle is None:
            await asyncio.sleep(0.05)
        waiting = asyncio.create_task(second.run(work(0), [2], {}, metadata(1)))
        while not any(gate.waiting() for gate in list(slots_module._gates.values())):
            await asyncio.sleep(0.05)  # it waits for the slot the first holds
        while_waiting = await asyncio.to_thread(jobs_command)
        return list(await asyncio.gather(running, waiting)), while_waiting

    try:
        values, (code, table) = asyncio.run(scenario())
        assert values == [1, 2]
        assert code == 0
        rows = {line.split()[0]: line for line in table.splitlines()[1:] if line.strip()}
        assert "WAITING FOR A JOB SLOT" in rows["1"] and "0 ahead" in rows["1"], table
        assert "RUNNING" in rows["0"] or "QUEUED" in rows["0"], table
        code, table = jobs_command()  # once it has its job, it waits no more
        assert "WAITING FOR A JOB SLOT" not in table
        assert not list((tmp_path / "cache" / server_board.FOLDER).glob("*.json"))  # nothing on it
    finally:
        set_config({f"executors.braket.{key}": value for key, value in before.items()})


def test_intervals_helper_counts_overlaps() -> None:
    at = datetime.fromtimestamp
    jobs = [
        {"createdAt": at(0), "endedAt": at(2)},
        {"createdAt": at(1), "endedAt": at(3)},
        {"createdAt": at(3), "endedAt": at(4)},
    ]
    assert most_at_once(jobs) == 2


def test_while_electrons_wait_for_a_slot_the_jobs_holding_slots_are_watched_closely(
    aws: Any,
) -> None:
    """A slot is handed on when its job is seen to end. With a long poll_freq (10 s here; 30 s
    by default), the next electron of a sweep would wait for the next look; while electrons
    wait, the watcher looks at least every second (``slots.WATCH_SECONDS``): several look-ups
    of the running job, not one or two, come before the waiting electron's job is created."""
    aws.settings(concurrent_jobs_quota=1)

    async def two() -> list[Any]:
        # Either may take the slot first: each works 4 s, so a look a second meets either.
        first = hosted(poll_freq=10, pack=False).run(work(4.0), [1], {}, metadata(1))
        second = hosted(poll_freq=10, pack=False).run(work(4.0), [2], {}, metadata(2))
        return await asyncio.gather(first, second)

    assert asyncio.run(two()) == [1, 2]
    creates = [
        entry
        for entry in aws.control.journal(service="braket", operation="CreateJob")
        if not entry.get("error")
    ]
    assert len(creates) == 2
    looks = [
        entry
        for entry in aws.control.journal(service="braket")
        if entry["operation"] in ("GetJob", "SearchJobs")
        and creates[0]["time"] < entry["time"] < creates[1]["time"]
    ]
    assert len(looks) >= 3, looks
