"""The bucket's name: Braket writes quantum task results through its service-linked role.

Amazon Braket's service-linked role (AWSServiceRoleForAmazonBraket, policy
AmazonBraketServiceRolePolicy) may put objects only into buckets named ``amazon-braket-*`` of
the account ("put objects into and get objects from any bucket in your account with a name
that starts with amazon-braket-", the developer guide's service-linked role page), and the
quantum tasks a job creates write their results to the job's output bucket, the executor's
``s3_bucket_name``. So Braket-in-a-box fails a task whose results go elsewhere, and the
executor, ``setup`` and Terraform refuse another name before anything is created.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from covalent_braket_plugin.config import InvalidSettingError
from tests.test_braket import hosted, run

SV1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
ROOT = Path(__file__).resolve().parents[1]


def test_braket_in_a_box_fails_a_task_whose_results_go_to_another_bucket(aws: Any) -> None:
    from braket.aws import AwsDevice, AwsSession
    from braket.circuits import Circuit

    aws.s3.create_bucket(Bucket="results-elsewhere")
    session = AwsSession(boto_session=None, braket_client=aws.braket, default_bucket=None)
    device = AwsDevice(SV1, aws_session=session)
    task = device.run(Circuit().h(0), ("results-elsewhere", "tasks"), shots=10)
    deadline = time.monotonic() + 60
    while task.state() not in ("COMPLETED", "FAILED") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert task.state() == "FAILED"
    reason = aws.braket.get_quantum_task(quantumTaskArn=task.id)["failureReason"]
    assert "amazon-braket-" in reason and "service-linked role" in reason
    listed = aws.s3.list_objects_v2(Bucket="results-elsewhere").get("Contents", [])
    assert listed == []


@pytest.mark.parametrize("name", ["covalent-results", "my-amazon-braket-bucket"])
def test_another_bucket_name_is_refused_before_anything_is_created(aws: Any, name: str) -> None:
    with pytest.raises(InvalidSettingError) as info:
        hosted(s3_bucket_name=name)
    message = str(info.value)
    assert "s3_bucket_name" in message and name in message
    assert "amazon-braket-" in message and "service-linked role" in message
    assert aws.braket.search_jobs(filters=[])["jobs"] == []


def test_setup_refuses_another_bucket_name_and_creates_nothing(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from covalent_braket_plugin import cli

    before = {bucket["Name"] for bucket in aws.s3.list_buckets()["Buckets"]}
    assert cli.main(["setup", "--bucket", "covalent-results"]) != 0
    said = capsys.readouterr()
    assert "service-linked role" in said.out + said.err, said
    assert {bucket["Name"] for bucket in aws.s3.list_buckets()["Buckets"]} == before


def test_terraform_refuses_another_bucket_name() -> None:
    text = (ROOT / "infra" / "terraform" / "variables.tf").read_text()
    assert 'startswith(var.bucket_name, "amazon-braket-")' in text


def test_a_pre_flight_refusal_is_in_the_server_log_too(aws: Any) -> None:
    import logging

    from covalent_braket_plugin.covalent_loader import server_log

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    server_log.addHandler(handler)
    try:
        with pytest.raises(InvalidSettingError, match="amazon-braket-nowhere-to-be-found"):
            run(hosted(s3_bucket_name="amazon-braket-nowhere-to-be-found"), lambda: 1)
    finally:
        server_log.removeHandler(handler)
    (record,) = [r for r in records if "refused before any Braket job" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert "amazon-braket-nowhere-to-be-found" in record.getMessage()
