"""A real account's hybrid-job regime, kept by the emulator by default: the quotas on jobs at
once and on each instance type's instances (HTTP 402 past them), one job at a time on a QPU,
Service Quotas reporting the limits enforced, an instance's start delay (not billed)."""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import datetime
from typing import Any

import pytest

from covalent_braket_plugin.service import CONCURRENT_JOBS_QUOTA, QUOTA_EXCEEDED_MESSAGE
from tests.emulator.test_jobs import error_of, job_request, upload_script, wait_for

pytestmark = pytest.mark.timeout(120)

QPU = "arn:aws:braket:us-east-1::device/qpu/example/Lab-3"
CONCURRENT = "Number of concurrent jobs"


def queued_regime(aws: Any, **changes: Any) -> None:
    """Jobs that stay QUEUED (they count against the quotas without running), and no request
    quotas in the way (the request rate is not what is under test)."""
    aws.settings(quotas=False, queue_seconds=600, **changes)


def refused(aws: Any, request: dict[str, Any], quota: str, limit: int) -> None:
    """``CreateJob`` of ``request`` is refused past ``quota``, in the service's words, and
    creates nothing."""
    code, status, message = error_of(lambda: aws.braket.create_job(**request))
    assert (code, status) == ("ServiceQuotaExceededException", 402)
    assert message == QUOTA_EXCEEDED_MESSAGE.format(quota=quota, limit=limit, region="us-east-1")
    names = [job["jobName"] for job in aws.braket.search_jobs(filters=[])["jobs"]]
    assert request["jobName"] not in names


def test_past_the_concurrent_quota_create_job_gets_402_until_a_job_ends(aws: Any) -> None:
    queued_regime(aws)
    limit = CONCURRENT_JOBS_QUOTA[1]
    arns = [aws.braket.create_job(**job_request())["jobArn"] for _ in range(limit)]
    request = job_request()
    refused(aws, request, CONCURRENT, limit)
    assert len(aws.braket.search_jobs(filters=[])["jobs"]) == limit
    assert aws.control.journal(operation="CreateJob")[-1]["status"] == 402
    other_region = aws.control.client("braket", region_name="us-west-2")
    other_region.create_job(**job_request())  # another Region's quota is its own
    aws.braket.cancel_job(jobArn=arns[0])
    wait_for(aws, arns[0], {"CANCELLED"})
    assert aws.braket.create_job(**request)["jobArn"]


def test_a_changed_concurrent_quota_is_enforced(aws: Any) -> None:
    queued_regime(aws, concurrent_jobs_quota=2)
    for _ in range(2):
        aws.braket.create_job(**job_request())
    refused(aws, job_request(), CONCURRENT, 2)


def test_instance_quotas_count_instances_of_each_type(aws: Any) -> None:
    queued_regime(aws)
    gpu = job_request(instanceConfig={"instanceType": "ml.g4dn.xlarge", "volumeSizeInGb": 30})
    refused(aws, gpu, "Maximum number of instances of ml.g4dn.xlarge for jobs", 0)
    two = {"instanceType": "ml.c5.4xlarge", "volumeSizeInGb": 30, "instanceCount": 2}
    refused(
        aws,
        job_request(instanceConfig=two),
        "Maximum number of instances of ml.c5.4xlarge for jobs",
        1,
    )
    aws.settings(instance_quotas={"ml.g4dn.xlarge": 1})
    aws.braket.create_job(**gpu)
    refused(
        aws,
        job_request(instanceConfig=gpu["instanceConfig"]),
        "Maximum number of instances of ml.g4dn.xlarge for jobs",
        1,
    )


def test_a_repeated_client_token_returns_its_job_never_402(aws: Any) -> None:
    queued_regime(aws)
    requests = [job_request(clientToken=str(uuid.uuid4())) for _ in range(5)]
    arns = [aws.braket.create_job(**request)["jobArn"] for request in requests]
    for request, arn in zip(requests, arns, strict=True):
        assert aws.braket.create_job(**request)["jobArn"] == arn
    refused(aws, job_request(clientToken=str(uuid.uuid4())), CONCURRENT, 5)


def test_one_job_at_a_time_on_a_qpu(aws: Any) -> None:
    aws.settings(quotas=False)
    aws.control.add_devices(
        [{"arn": QPU, "name": "Lab-3", "provider": "Example", "qubitCount": 3,
          "nativeGates": ["h", "cnot", "rz", "x"]}]
    )  # fmt: skip
    script = upload_script(aws, "import time\ndef main():\n    time.sleep(3)\n")
    on_qpu = job_request(script, deviceConfig={"device": QPU})
    first = aws.braket.create_job(**on_qpu)["jobArn"]
    wait_for(aws, first, {"RUNNING"})
    second = aws.braket.create_job(**{**on_qpu, "jobName": f"job-{uuid.uuid4().hex[:12]}"})
    simulator = aws.braket.create_job(**job_request(script))["jobArn"]
    wait_for(aws, simulator, {"RUNNING"})  # simulators are not held so
    while aws.braket.get_job(jobArn=first)["status"] == "RUNNING":
        job = aws.braket.get_job(jobArn=second["jobArn"], additionalAttributeNames=["QueueInfo"])
        assert job["status"] == "QUEUED"
        assert job["queueInfo"]["position"] == "1"
        time.sleep(0.2)
    done = wait_for(aws, first, {"COMPLETED"})
    later = wait_for(aws, second["jobArn"], {"COMPLETED"})
    assert later["startedAt"] >= done["endedAt"]


def test_service_quotas_report_the_limits_enforced(aws: Any) -> None:
    quotas = aws.control.client("service-quotas")
    code = CONCURRENT_JOBS_QUOTA[0]
    quota = quotas.get_service_quota(ServiceCode="braket", QuotaCode=code)["Quota"]
    assert quota == {
        "ServiceCode": "braket",
        "ServiceName": "Amazon Braket",
        "QuotaArn": f"arn:aws:servicequotas:us-east-1:123456789012:braket/{code}",
        "QuotaCode": code,
        "QuotaName": CONCURRENT,
        "Value": 5.0,
        "Unit": "None",
        "Adjustable": True,
        "GlobalQuota": False,
    }
    aws.settings(concurrent_jobs_quota=12, instance_quotas={"ml.g4dn.xlarge": 2})
    pages = quotas.get_paginator("list_service_quotas").paginate(
        ServiceCode="braket", PaginationConfig={"PageSize": 7}
    )
    listed = {q["QuotaName"]: q["Value"] for page in pages for q in page["Quotas"]}
    assert listed[CONCURRENT] == 12.0
    assert listed["Maximum number of instances of ml.g4dn.xlarge for jobs"] == 2.0
    assert listed["Maximum number of instances of ml.m5.large for jobs"] == 5.0
    west = aws.control.client("service-quotas", region_name="us-west-2")
    arn = west.get_service_quota(ServiceCode="braket", QuotaCode=code)["Quota"]["QuotaArn"]
    assert arn.startswith("arn:aws:servicequotas:us-west-2:")
    missing = error_of(lambda: quotas.get_service_quota(ServiceCode="braket", QuotaCode="L-0"))
    assert missing[:2] == ("NoSuchResourceException", 400)


def test_queue_past_quota_accepts_and_queues_as_before(aws: Any) -> None:
    aws.settings(quotas=False, queue_past_quota=True, concurrent_jobs_quota=1)
    script = upload_script(aws, "import time\ndef main():\n    time.sleep(2)\n")
    first = aws.braket.create_job(**job_request(script))["jobArn"]
    second = aws.braket.create_job(**job_request(script))["jobArn"]  # no 402
    wait_for(aws, first, {"RUNNING"})
    time.sleep(0.5)
    assert aws.braket.get_job(jobArn=second)["status"] == "QUEUED"
    done = wait_for(aws, first, {"COMPLETED"})
    assert wait_for(aws, second, {"COMPLETED"})["startedAt"] >= done["endedAt"]


def test_without_job_quotas_any_number_is_accepted(aws: Any) -> None:
    queued_regime(aws, job_quotas=False)
    for _ in range(7):
        aws.braket.create_job(**job_request())


def _ms(moment: datetime) -> float:
    return moment.timestamp() * 1000


def test_job_start_seconds_delay_running_and_are_not_billed(aws: Any) -> None:
    aws.settings(job_start_seconds=1.5)
    script = upload_script(aws, "import time\ndef main():\n    time.sleep(0.5)\n")
    arn = aws.braket.create_job(**job_request(script))["jobArn"]
    time.sleep(0.8)
    job = aws.braket.get_job(jobArn=arn)
    assert job["status"] == "QUEUED"
    assert job["events"][-1]["eventType"] == "STARTING_INSTANCE"
    assert "billableDuration" not in job
    job = wait_for(aws, arn, {"COMPLETED"})
    created, started, ended = (_ms(job[key]) for key in ("createdAt", "startedAt", "endedAt"))
    assert started - created >= 1500
    # Billed from the instance's start to the end: at least the time RUNNING, never the start.
    assert ended - started - 2 <= job["billableDuration"] <= ended - created - 1500 + 2
    cancelled = aws.braket.create_job(**job_request(script))["jobArn"]
    time.sleep(0.5)
    aws.braket.cancel_job(jobArn=cancelled)
    assert wait_for(aws, cancelled, {"CANCELLED"})["billableDuration"] == 0


def test_the_regime_is_set_by_the_command_and_a_reset_restores_it(aws: Any) -> None:
    from covalent_braket_plugin.cli.emulator_command import _settings, add_command

    parser = argparse.ArgumentParser()
    add_command(parser.add_subparsers())
    args = parser.parse_args(
        ["emulator", "--concurrent-jobs", "9", "--instance-quota", "ml.g4dn.xlarge=2",
         "--instance-quota", "ml.m5.large=7", "--no-job-quotas", "--queue-past-quota",
         "--job-start-seconds", "60"]
    )  # fmt: skip
    settings = _settings(args)
    assert (settings.concurrent_jobs_quota, settings.job_quotas, settings.queue_past_quota) == (
        9,
        False,
        True,
    )
    assert settings.instance_quotas == {"ml.g4dn.xlarge": 2, "ml.m5.large": 7}
    assert settings.job_start_seconds == 60.0
    defaults = aws.settings()
    assert (defaults["job_quotas"], defaults["concurrent_jobs_quota"]) == (True, None)
    aws.settings(concurrent_jobs_quota=3, job_start_seconds=1, instance_quotas={"ml.c4.xlarge": 0})
    assert aws.settings(concurrent_jobs_quota=None)["concurrent_jobs_quota"] is None
    aws.control.reset()
    assert aws.settings() == defaults
