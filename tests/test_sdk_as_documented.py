"""A user's own test file as the Braket SDK's documentation writes hybrid jobs: no session, no
role, no bucket, the default image; only the ``braket_emulator`` fixture. On a real account
the role is the one onboarding made and the bucket the SDK's default, which it creates; so in
Braket-in-a-box."""

from __future__ import annotations

from typing import Any

import pytest
from braket.aws import AwsQuantumJob
from braket.devices import Devices
from braket.jobs import hybrid_job

pytestmark = pytest.mark.timeout(180)


def test_a_hybrid_job_as_the_docs_write_it(
    braket_emulator: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the decorator writes its source folder here

    @hybrid_job(device=Devices.Amazon.SV1, wait_until_complete=True)
    def run_circuit(shots: int) -> dict:
        from braket.aws import AwsDevice
        from braket.circuits import Circuit
        from braket.jobs import get_job_device_arn

        device = AwsDevice(get_job_device_arn())
        counts = device.run(Circuit().h(0).cnot(0, 1), shots=shots).result().measurement_counts
        return {"outcomes": sorted(counts)}

    job = run_circuit(50)
    assert job.state() == "COMPLETED"
    assert job.result()["outcomes"] == ["00", "11"]
    assert job.metadata()["roleArn"].endswith(":role/service-role/AmazonBraketJobsExecutionRole")


def test_aws_quantum_job_create_as_the_docs_write_it(braket_emulator: Any, tmp_path: Any) -> None:
    script = tmp_path / "algorithm_script.py"
    script.write_text("def start_here():\n    print('Test job started!')\n")
    job = AwsQuantumJob.create(
        device=Devices.Amazon.SV1,
        source_module=str(script),
        entry_point="algorithm_script:start_here",
        wait_until_complete=True,
    )
    assert job.state() == "COMPLETED"
    metadata = job.metadata()
    account = metadata["jobArn"].split(":")[4]
    region = metadata["jobArn"].split(":")[3]
    assert metadata["outputDataConfig"]["s3Path"].startswith(
        f"s3://amazon-braket-{region}-{account}/"
    )
