"""Devices and quantum tasks, driven by the unmodified Braket SDK and PennyLane over the wire."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import BUCKET

pytestmark = pytest.mark.timeout(180)

SV1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
DM1 = "arn:aws:braket:::device/quantum-simulator/amazon/dm1"
TN1 = "arn:aws:braket:::device/quantum-simulator/amazon/tn1"
FOLDER = (BUCKET, "tasks")


def test_managed_simulators_are_online_with_capabilities_the_sdk_parses(aws: Any) -> None:
    from braket.aws import AwsDevice

    for arn, name, status in (
        (SV1, "SV1", "ONLINE"),
        (DM1, "dm1", "ONLINE"),
        (TN1, "TN1", "RETIRED"),
    ):
        device = AwsDevice(arn)
        assert (device.name, device.status, device.type.value) == (name, status, "SIMULATOR")
        assert "braket.ir.openqasm.program" in device.properties.action
        assert device.properties.paradigm.qubitCount > 0
    assert {d["deviceArn"] for d in aws.braket.search_devices(filters=[])["devices"]} >= {
        SV1,
        DM1,
        TN1,
    }
    only_dm1 = aws.braket.search_devices(filters=[{"name": "deviceName", "values": ["dm1"]}])[
        "devices"
    ]
    assert [d["deviceArn"] for d in only_dm1] == [DM1]


def test_unknown_device_is_not_found(aws: Any) -> None:
    with pytest.raises(ClientError) as info:
        aws.braket.get_device(deviceArn="arn:aws:braket:::device/quantum-simulator/amazon/nope")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_bell_circuit_with_shots_on_sv1_gives_the_expected_distribution(aws: Any) -> None:
    from braket.aws import AwsDevice
    from braket.circuits import Circuit

    shots = 2000
    task = AwsDevice(SV1).run(Circuit().h(0).cnot(0, 1), s3_destination_folder=FOLDER, shots=shots)
    counts = task.result().measurement_counts
    assert set(counts) == {"00", "11"}
    assert sum(counts.values()) == shots
    # Binomial(2000, 0.5): five standard deviations is about 112.
    assert abs(counts["00"] - shots / 2) < 5 * math.sqrt(shots) / 2
    key = f"tasks/{task.id.rsplit('/', 1)[1]}/results.json"
    assert (
        json.loads(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())["taskMetadata"]["id"]
        == task.id
    )


def test_exact_expectation_on_sv1_and_noisy_dm1_match_the_local_simulators(aws: Any) -> None:
    from braket.aws import AwsDevice
    from braket.circuits import Circuit, observables
    from braket.devices import LocalSimulator

    exact = Circuit().h(0).expectation(observable=observables.Z(), target=0)
    assert AwsDevice(SV1).run(exact, s3_destination_folder=FOLDER, shots=0).result().values[
        0
    ] == pytest.approx(0.0)

    noisy = Circuit().x(0).depolarizing(0, 0.1).expectation(observable=observables.Z(), target=0)
    remote = AwsDevice(DM1).run(noisy, s3_destination_folder=FOLDER, shots=0).result().values[0]
    local = LocalSimulator("braket_dm").run(noisy, shots=0).result().values[0]
    assert remote == pytest.approx(local)
    assert remote == pytest.approx(-1 + 4 * 0.1 / 3)


def test_pennylane_braket_aws_qubit_runs_unchanged(aws: Any) -> None:
    import pennylane as qml

    device = qml.device("braket.aws.qubit", device_arn=SV1, s3_destination_folder=FOLDER, wires=1)

    @qml.qnode(device)
    def circuit(theta: float) -> Any:
        qml.RX(theta, wires=0)
        return qml.expval(qml.PauliZ(0))

    assert float(circuit(0.0)) == pytest.approx(1.0)
    assert float(circuit(math.pi / 3)) == pytest.approx(0.5)


def test_programs_a_device_cannot_run_are_rejected_with_the_reason(aws: Any) -> None:
    from braket.aws import AwsDevice
    from braket.circuits import Circuit, observables

    noisy = Circuit().x(0).depolarizing(0, 0.1).expectation(observable=observables.Z(), target=0)
    with pytest.raises(ClientError) as info:
        AwsDevice(SV1).run(noisy, s3_destination_folder=FOLDER, shots=0)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "noise" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as info:
        AwsDevice(SV1).run(Circuit().h(0), s3_destination_folder=FOLDER, shots=100_001)
    assert "shots between 0 and 100000" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as info:  # retired by the service
        AwsDevice(TN1).run(Circuit().h(0), s3_destination_folder=FOLDER, shots=10)
    assert info.value.response["Error"]["Code"] == "DeviceRetiredException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410


def test_quantum_task_cancelled_before_it_runs_ends_cancelled(aws: Any) -> None:
    from braket.aws import AwsDevice
    from braket.circuits import Circuit

    aws.settings(task_queue_seconds=30)
    task = AwsDevice(SV1).run(Circuit().h(0), s3_destination_folder=FOLDER, shots=10)
    assert task.state() == "QUEUED"
    task.cancel()
    deadline = time.monotonic() + 10
    while task.state() != "CANCELLED" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert task.state() == "CANCELLED"
    with pytest.raises(ClientError) as info:
        aws.braket.cancel_quantum_task(quantumTaskArn=task.id)
    assert info.value.response["Error"]["Code"] == "ConflictException"


def test_search_quantum_tasks_filters_by_device_and_status(aws: Any) -> None:
    from braket.aws import AwsDevice
    from braket.circuits import Circuit

    AwsDevice(SV1).run(Circuit().h(0), s3_destination_folder=FOLDER, shots=10).result()
    AwsDevice(DM1).run(Circuit().h(0), s3_destination_folder=FOLDER, shots=10).result()
    on_dm1 = aws.braket.search_quantum_tasks(
        filters=[
            {"name": "deviceArn", "operator": "EQUAL", "values": [DM1]},
            {"name": "status", "operator": "EQUAL", "values": ["COMPLETED"]},
        ]
    )["quantumTasks"]
    assert [task["deviceArn"] for task in on_dm1] == [DM1]
