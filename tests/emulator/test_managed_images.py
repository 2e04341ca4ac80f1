"""Amazon's managed job images and price list, served offline: ``@hybrid_job`` with its
default image, a staged Python mismatch, Tracker prices inside a job; and a standalone
emulator provisioned for a new user's own workflow."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(240)

SV1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
REGISTRY = "292282985366"


def braket_defaults(aws: Any) -> None:
    """What the SDK looks for by default: its bucket (the job role under /service-role/ is the
    onboarded account's own)."""
    aws.s3.create_bucket(Bucket="amazon-braket-us-east-1-123456789012")


def test_managed_images_carry_the_emulators_python_in_their_full_tag(aws: Any) -> None:
    ecr = aws.control.client("ecr", region_name="eu-north-1")
    for repository in ("amazon-braket-base-jobs", "amazon-braket-pytorch-jobs"):
        target = {"registryId": REGISTRY, "repositoryName": repository}
        latest = ecr.batch_get_image(imageIds=[{"imageTag": "latest"}], **target)["images"][0]
        same = ecr.batch_get_image(
            imageIds=[{"imageDigest": latest["imageId"]["imageDigest"]}], **target
        )["images"]
        python = "{}{}".format(*sys.version_info[:2])
        assert [image["imageId"]["imageTag"] for image in same] == [
            f"1.0-cpu-py{python}-ubuntu24.04"
        ]


def test_hybrid_job_runs_on_its_default_image_and_prices_its_tasks(
    aws: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from braket.jobs import hybrid_job

    braket_defaults(aws)
    monkeypatch.chdir(tmp_path)  # the decorator writes its source directory here

    @hybrid_job(device=SV1)
    def priced_bell(shots: int) -> dict:
        from braket.aws import AwsDevice
        from braket.circuits import Circuit
        from braket.jobs import get_job_device_arn
        from braket.tracking import Tracker

        with Tracker() as tracker:
            task = AwsDevice(get_job_device_arn()).run(Circuit().h(0).cnot(0, 1), shots=shots)
            counts = task.result().measurement_counts
        return {"counts": dict(counts), "cost": float(tracker.simulator_tasks_cost())}

    job = priced_bell(200)
    result = job.result()
    assert job.state() == "COMPLETED"
    assert sum(result["counts"].values()) == 200 and set(result["counts"]) <= {"00", "11"}
    assert result["cost"] == pytest.approx(0.00375)  # a job's SV1 task: 3 s at 0.075 USD/min
    image = job.metadata()["algorithmSpecification"]["containerImage"]["uri"]
    assert image == f"{REGISTRY}.dkr.ecr.us-east-1.amazonaws.com/amazon-braket-base-jobs:latest"


def test_a_python_mismatch_with_the_managed_image_can_be_staged(
    aws: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from braket.jobs import hybrid_job

    braket_defaults(aws)
    monkeypatch.chdir(tmp_path)
    aws.settings(managed_image_python="3.99")
    with pytest.raises(RuntimeError, match=r"container uses Python 3\.99"):

        @hybrid_job(device=SV1)
        def never() -> None:
            pass


def test_a_provisioned_standalone_emulator_runs_a_new_users_task(tmp_path: Any) -> None:
    import asyncio

    from covalent_braket_plugin import aws as aws_module
    from covalent_braket_plugin.testing import emulator_env
    from tests.test_braket import HostedExecutor

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "covalent_braket_plugin.cli",
            "emulator",
            "--port",
            "0",
            "--provision",
            "--print",  # the settings printed, covalent.conf left alone
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip().rsplit(" ", 1)[1]
        lines: list[str] = []
        while not lines or not lines[-1].startswith("Start the Covalent server"):
            lines.append(process.stdout.readline())
        assert "Nothing was written to" in "".join(lines)
        section = "".join(lines).split("[executors.braket]\n", 1)[1]
        settings = {
            line.split(" = ")[0]: json.loads(line.split(" = ", 1)[1])
            for line in section.splitlines()
            if " = " in line
        }
        assert set(settings) == {
            "region",
            "s3_bucket_name",
            "braket_job_execution_role_name",
            "ecr_image_uri",
        }
        # The emulator's own credentials (made by its process), as it printed them.
        exported = next(line for line in lines if line.strip().startswith("export "))
        printed = dict(pair.split("=", 1) for pair in shlex.split(exported)[1:])
        saved = {**emulator_env(url), **printed}
        with pytest.MonkeyPatch.context() as patch:
            for key, value in saved.items():
                patch.setenv(key, value)
            aws_module.reset_cache()
            executor = HostedExecutor(**settings, poll_freq=0.3)
            metadata = {"dispatch_id": "first-run", "node_id": 0, "results_dir": str(tmp_path)}
            assert asyncio.run(executor.run(lambda: "hello", [], {}, metadata)) == "hello"
            aws_module.reset_cache()
    finally:
        process.terminate()
        process.wait(timeout=30)
