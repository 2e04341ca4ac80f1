"""Workflows dispatched through a real ``covalent start`` server onto the emulator."""

from __future__ import annotations

import sys
import time
from typing import Any

import cloudpickle
import covalent as ct
import pytest

from covalent_braket_plugin.braket import BraketExecutor
from covalent_braket_plugin.testing import CovalentServer, provision
from tests.conftest import BUCKET, IMAGE, ROLE
from tests.e2e.helpers import POLL, diagnose, executor, jobs_of, run

# The job process cannot import this test module: send its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@ct.electron(executor=executor())
def add(a: int, b: int) -> int:
    print(f"adding {a} and {b}")
    print("a warning on stderr", file=sys.stderr)
    return a + b


@ct.lattice
def add_workflow(a: int, b: int) -> int:
    return add(a, b)


def test_executor_instance_returns_the_result_and_output(aws: Any, server: CovalentServer) -> None:
    result = run(server, add_workflow, 2, 3)
    node = result.get_node_result(0)
    assert str(result.status) == "COMPLETED", diagnose(result)
    assert result.result == 5
    node = result.get_node_result(0)
    assert node["stdout"] == "adding 2 and 3\n"
    assert "a warning on stderr" in node["stderr"]
    jobs = jobs_of(aws, result.dispatch_id)
    assert [job["status"] for job in jobs] == ["COMPLETED"]
    assert jobs[0]["tags"]["covalent:node_id"] == "0"
    assert len(jobs[0]["jobName"]) <= 50


def test_product_doc_workflow_returns_zero_and_its_tasks_are_linked_to_the_job(
    aws: Any, server: CovalentServer
) -> None:
    from covalent_braket_plugin.demo import DOC_SETTINGS, make_workflow
    from covalent_braket_plugin.testing import provision

    settings = {**DOC_SETTINGS, "s3_bucket_name": BUCKET, "poll_freq": POLL}
    provision(
        BUCKET,
        settings["braket_job_execution_role_name"],
        settings["ecr_image_uri"],
        client=aws.control.client,
    )
    result = run(server, make_workflow(BraketExecutor(**settings)), 1)
    assert str(result.status) == "COMPLETED", diagnose(result)
    assert result.result == pytest.approx(0.0, abs=1e-12)  # <Z> after H, up to rounding
    [job] = jobs_of(aws, result.dispatch_id)
    tasks = aws.braket.search_quantum_tasks(
        filters=[{"name": "jobArn", "operator": "EQUAL", "values": [job["jobArn"]]}]
    )["quantumTasks"]
    assert len(tasks) == 1
    assert tasks[0]["status"] == "COMPLETED"
    assert tasks[0]["deviceArn"] == "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
    detail = aws.braket.get_quantum_task(quantumTaskArn=tasks[0]["quantumTaskArn"])
    assert detail["jobArn"] == job["jobArn"]


@ct.electron(executor="braket")
def describe_job(label: str) -> dict:
    import os

    return {
        "label": label,
        "job": os.environ["AMZN_BRAKET_JOB_NAME"],
        "device": os.environ["AMZN_BRAKET_DEVICE_ARN"],
    }


@ct.lattice
def configured_workflow(label: str) -> dict:
    return describe_job(label)


def test_short_name_uses_covalent_conf(aws: Any, server: CovalentServer) -> None:
    result = run(server, configured_workflow, "from-config")
    assert str(result.status) == "COMPLETED", diagnose(result)
    assert result.result["label"] == "from-config"
    jobs = jobs_of(aws, result.dispatch_id)
    assert result.result["job"] == jobs[0]["jobName"]
    assert result.result["device"] == "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
    job = aws.braket.get_job(jobArn=jobs[0]["jobArn"])
    assert job["roleArn"] == "arn:aws:iam::123456789012:role/CovalentBraketJobsExecutionRole"
    assert job["algorithmSpecification"]["containerImage"]["uri"] == IMAGE
    assert job["stoppingCondition"]["maxRuntimeInSeconds"] == 600


@ct.electron(executor=executor())
def explode(value: int) -> int:
    print("about to fail")
    raise ValueError(f"boom {value}")


@ct.lattice
def failing_workflow(value: int) -> int:
    return explode(value)


def test_raising_electron_fails_the_node_with_its_traceback(
    aws: Any, server: CovalentServer
) -> None:
    result = run(server, failing_workflow, 7)
    assert str(result.status) == "FAILED"
    node = result.get_node_result(0)
    assert str(node["status"]) == "FAILED"
    assert "Traceback (most recent call last)" in node["stderr"]
    assert "ValueError: boom 7" in node["stderr"]
    assert "about to fail" in node["stdout"]
    jobs = jobs_of(aws, result.dispatch_id)
    job = aws.braket.get_job(jobArn=jobs[0]["jobArn"])
    assert job["status"] == "FAILED"
    assert "ValueError: boom 7" in job["failureReason"]


@ct.electron(executor=executor())
def slow(seconds: float) -> float:
    import time as _time

    _time.sleep(seconds)
    return seconds


@ct.lattice
def slow_workflow(seconds: float) -> float:
    return slow(seconds)


def test_cancel_stops_the_job_and_cancels_the_node(aws: Any, server: CovalentServer) -> None:
    dispatch_id = ct.dispatch(slow_workflow, dispatcher_addr=server.address)(120)
    deadline = time.monotonic() + 60
    jobs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        jobs = jobs_of(aws, dispatch_id)
        if jobs and jobs[0]["status"] == "RUNNING":
            break
        time.sleep(0.2)
    assert jobs and jobs[0]["status"] == "RUNNING"
    ct.cancel(dispatch_id, dispatcher_addr=server.address)
    result = ct.get_result(dispatch_id, wait=True, dispatcher_addr=server.address)
    assert str(result.status) == "CANCELLED"
    assert str(result.get_node_result(0)["status"]) == "CANCELLED"
    assert aws.braket.get_job(jobArn=jobs[0]["jobArn"])["status"] == "CANCELLED"


#: The side-by-side test runs in a Region no other test of the server uses, whose job quotas
#: it raises first: the server's executors then read the raised quota (Service Quotas), as a
#: server would after AWS raised an account's.
WEST = "us-west-2"
WEST_BUCKET = f"{BUCKET}-{WEST}"
WEST_IMAGE = IMAGE.replace(".us-east-1.", f".{WEST}.")


@ct.electron(
    executor=executor(
        pacing=False, region=WEST, s3_bucket_name=WEST_BUCKET, ecr_image_uri=WEST_IMAGE
    )
)
def unpaced_slow(seconds: float) -> float:
    import time as _time

    _time.sleep(seconds)
    return seconds


@ct.lattice
def fan_out(count: int, seconds: float) -> list:
    return [unpaced_slow(seconds + i / 1000) for i in range(count)]


def test_twenty_concurrent_electrons_run_side_by_side(aws: Any, server: CovalentServer) -> None:
    # Braket's quotas and the pacing to them are off (an account whose CreateJob rate was
    # raised): what is under test is that the server runs the electrons at once, not that
    # CreateJob waits its turn (tests/test_pacing, tests/e2e/test_progress); its job quotas
    # are raised to twenty jobs at once.
    aws.control.settings(
        quotas=False, concurrent_jobs_quota=20, instance_quotas={"ml.m5.large": 20}
    )
    provision(
        WEST_BUCKET,
        ROLE,
        WEST_IMAGE,
        client=lambda name: aws.control.client(name, region_name=WEST),
    )
    seconds = 8.0
    many = run(server, fan_out, 20, seconds)
    assert str(many.status) == "COMPLETED", diagnose(many)
    assert sorted(many.result) == sorted(seconds + i / 1000 for i in range(20))
    west = aws.control.client("braket", region_name=WEST)
    jobs = [west.get_job(jobArn=job["jobArn"]) for job in jobs_of(aws, many.dispatch_id, west)]
    assert len(jobs) == 20
    # One after another, no two jobs would be RUNNING at once. Side by side, they all are:
    # at the busiest moment at least half of them run.
    changes = sorted(
        [(job["startedAt"], 1) for job in jobs] + [(job["endedAt"], -1) for job in jobs]
    )
    running = busiest = 0
    for _, change in changes:
        running += change
        busiest = max(busiest, running)
    assert busiest >= 10, changes
