"""What code inside an emulated job can rely on: the Braket SDK's job helpers, image mode,
and devices added from a catalogue."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from tests.conftest import BUCKET, IMAGE
from tests.emulator.test_jobs import job_request, upload_script, wait_for

pytestmark = pytest.mark.timeout(180)

SDK_JOB = """
import os
from braket.aws import AwsDevice
from braket.circuits import Circuit
from braket.jobs import load_job_checkpoint, save_job_checkpoint, save_job_result
from braket.jobs.metrics import log_metric


def main():
    device = AwsDevice(os.environ["AMZN_BRAKET_DEVICE_ARN"])
    counts = device.run(Circuit().h(0).cnot(0, 1), shots=100).result().measurement_counts
    for step in range(3):
        log_metric(metric_name="loss", value=1.0 / (step + 1), iteration_number=step)
    save_job_checkpoint({"step": 3})
    assert load_job_checkpoint(os.environ["AMZN_BRAKET_JOB_NAME"])["step"] == 3
    save_job_result({"counts": dict(counts)})
"""


def test_braket_sdk_job_helpers_work_inside_an_emulated_job(
    aws: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from braket.aws import AwsQuantumJob

    monkeypatch.chdir(tmp_path)  # the SDK downloads the job's results into the working directory

    request = job_request(
        upload_script(aws, SDK_JOB),
        checkpointConfig={"s3Uri": f"s3://{BUCKET}/jobs/checkpoints"},
    )
    arn = aws.braket.create_job(**request)["jobArn"]
    job = wait_for(aws, arn, {"COMPLETED", "FAILED"}, timeout=120)
    assert job["status"] == "COMPLETED", job.get("failureReason")

    result = AwsQuantumJob(arn).result()  # the SDK reads model.tar.gz where Braket puts it
    assert (tmp_path / "model.tar.gz").exists()
    assert sum(result["counts"].values()) == 100
    assert set(result["counts"]) <= {"00", "11"}

    checkpoints = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix="jobs/checkpoints/")["Contents"]
    assert any(item["Key"].endswith(".json") for item in checkpoints)

    stream = aws.logs.describe_log_streams(
        logGroupName="/aws/braket/jobs", logStreamNamePrefix=f"{request['jobName']}/"
    )["logStreams"][0]["logStreamName"]
    messages = [
        e["message"]
        for e in aws.logs.get_log_events(logGroupName="/aws/braket/jobs", logStreamName=stream)[
            "events"
        ]
    ]
    assert sum("Metrics - " in line and "loss=" in line for line in messages) == 3

    tasks = aws.braket.search_quantum_tasks(
        filters=[{"name": "jobArn", "operator": "EQUAL", "values": [arn]}]
    )["quantumTasks"]
    assert len(tasks) == 1 and tasks[0]["status"] == "COMPLETED"


def test_image_mode_runs_the_mapped_command_with_sagemaker_style_hyperparameters(aws: Any) -> None:
    image = "210987654321.dkr.ecr.us-west-2.amazonaws.com/my-trainer:1.0"
    command = [
        sys.executable,
        "-c",
        "import json, os, boto3; boto3.client('s3').put_object("
        "Bucket=os.environ['AMZN_BRAKET_OUT_S3_BUCKET'], Key='image-mode.json', "
        "Body=json.dumps({k: v for k, v in os.environ.items() if k.startswith('SM_HP')}))",
    ]
    aws.settings(image_commands={image: command})
    request = job_request(
        algorithmSpecification={"containerImage": {"uri": image}},
        hyperParameters={"learning-rate": "0.1", "epochs": "3"},
    )
    arn = aws.braket.create_job(**request)["jobArn"]
    assert wait_for(aws, arn, {"COMPLETED", "FAILED"})["status"] == "COMPLETED"
    seen = json.loads(aws.s3.get_object(Bucket=BUCKET, Key="image-mode.json")["Body"].read())
    assert seen["SM_HP_LEARNING_RATE"] == "0.1"
    assert seen["SM_HP_EPOCHS"] == "3"
    assert json.loads(seen["SM_HPS"]) == {"learning-rate": "0.1", "epochs": "3"}


def test_unmapped_image_fails_the_job_with_a_clear_reason(aws: Any) -> None:
    request = job_request(algorithmSpecification={"containerImage": {"uri": IMAGE}})
    job = wait_for(aws, aws.braket.create_job(**request)["jobArn"], {"COMPLETED", "FAILED"})
    assert job["status"] == "FAILED"
    assert IMAGE in job["failureReason"] and "image_commands" in job["failureReason"]


def test_catalogue_adds_an_emulated_qpu_with_its_gates_and_connectivity(aws: Any) -> None:
    from botocore.exceptions import ClientError
    from braket.aws import AwsDevice
    from braket.circuits import Circuit

    arn = "arn:aws:braket:us-east-1::device/qpu/example/Lab-3"
    added = aws.control.add_devices(
        [
            {
                "arn": arn,
                "name": "Lab-3",
                "provider": "Example",
                "qubitCount": 3,
                "nativeGates": ["h", "cnot", "rz", "x"],
                "connectivity": {"0": ["1"], "1": ["0", "2"], "2": ["1"]},
            }
        ]
    )
    assert added == [arn]
    device = AwsDevice(arn)
    assert device.type.value == "QPU" and "emulated" in device.name
    assert device.properties.paradigm.qubitCount == 3
    assert device.properties.paradigm.connectivity.connectivityGraph == {
        "0": ["1"],
        "1": ["0", "2"],
        "2": ["1"],
    }
    counts = (
        device.run(Circuit().x(0), s3_destination_folder=(BUCKET, "qpu"), shots=20)
        .result()
        .measurement_counts
    )
    assert counts == {"1": 20}
    with pytest.raises(ClientError) as info:
        device.run(Circuit().ry(0, 0.5), s3_destination_folder=(BUCKET, "qpu"), shots=20)
    assert "ry" in info.value.response["Error"]["Message"]
    aws.control.reset()
    with pytest.raises(ClientError):
        aws.braket.get_device(deviceArn=arn)
