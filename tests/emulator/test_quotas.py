"""Braket's request quotas, enforced by the emulator as the service enforces them."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.emulator.test_jobs import job_request

pytestmark = pytest.mark.timeout(120)


def braket(aws: Any, region: str = "us-east-1") -> Any:
    """A client that does not retry: each throttled request is seen."""
    return aws.control.client(
        "braket",
        region_name=region,
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=False),
    )


def codes(client: Any, count: int, region: str = "") -> list[str]:
    answers = []
    for _ in range(count):
        try:
            client.create_job(**job_request())
            answers.append("ok")
        except ClientError as error:
            answers.append(error.response["Error"]["Code"])
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] in (429, 400)
    return answers


def test_a_burst_beyond_the_quota_is_throttled_per_account_and_region(aws: Any) -> None:
    assert codes(braket(aws), 7) == ["ok"] * 5 + ["ThrottlingException"] * 2  # burst 5
    throttled = aws.control.journal(operation="CreateJob")[-1]
    assert (throttled["status"], throttled["error"]) == (429, "ThrottlingException")
    assert codes(braket(aws, "us-west-2"), 1) == ["ok"]  # another Region's bucket is full
    info = braket(aws).get_job  # other operations have buckets of their own
    assert info is not None


def test_quotas_can_be_changed_and_turned_off(aws: Any) -> None:
    aws.settings(quota_limits={"CreateJob": [1, 2]})
    assert codes(braket(aws), 3) == ["ok", "ok", "ThrottlingException"]
    # 10 jobs at once: raised job quotas
    aws.settings(quotas=False, concurrent_jobs_quota=10, instance_quotas={"ml.m5.large": 10})
    assert codes(braket(aws), 8) == ["ok"] * 8
