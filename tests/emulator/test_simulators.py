"""Quantum tasks as the managed simulators run them: results the service's schema accepts,
with values, metadata and the service's checks; simulations in worker processes, so that a
crash, a hang or many tasks at once take only their own task down."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from tests.conftest import BUCKET

pytestmark = pytest.mark.timeout(240)

SV1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
DM1 = "arn:aws:braket:::device/quantum-simulator/amazon/dm1"
FOLDER = (BUCKET, "tasks")

BELL = "OPENQASM 3.0;\nqubit[2] q;\nh q[0];\ncnot q[0], q[1];\n"
#: Every result type, and the value it has on a Bell pair (exact, or within sampling error).
WITH_SHOTS = {
    "#pragma braket result probability q[0], q[1]": [0.5, 0.0, 0.0, 0.5],
    "#pragma braket result expectation z(q[0]) @ z(q[1])": 1.0,
    "#pragma braket result variance z(q[0]) @ z(q[1])": 0.0,
    "#pragma braket result sample z(q[0]) @ z(q[1])": None,  # every sample is +1
}
WITHOUT_SHOTS = {
    "#pragma braket result state_vector": [0.5**0.5, 0, 0, 0.5**0.5],
    '#pragma braket result amplitude "00", "11"': {"00": 0.5**0.5, "11": 0.5**0.5},
    "#pragma braket result probability": [0.5, 0.0, 0.0, 0.5],
    # (a density matrix is left as [real, imag] pairs by the SDK, as in Amazon's own tests)
    "#pragma braket result density_matrix q[0]": [[[0.5, 0], [0, 0]], [[0, 0], [0.5, 0]]],
    "#pragma braket result expectation z(q[0])": 0.0,
    "#pragma braket result variance z(q[0])": 1.0,
}


def program(source: str, inputs: dict[str, float] | None = None) -> Any:
    from braket.ir.openqasm import Program

    return Program(source=source, inputs=inputs)


def results_of(aws: Any, task: Any) -> tuple[dict[str, Any], Any]:
    """The task's results.json as stored, checked against the service's schema, and as the
    SDK reads it."""
    from braket.task_result import GateModelTaskResult

    result = task.result()  # waits for the task to end
    detail = aws.braket.get_quantum_task(quantumTaskArn=task.id)
    key = f"{detail['outputS3Directory']}/results.json"
    text = aws.s3.get_object(Bucket=detail["outputS3Bucket"], Key=key)["Body"].read()
    GateModelTaskResult.parse_raw(text)  # raises unless the service's schema accepts it
    return json.loads(text), result


@pytest.mark.parametrize("device_arn", [SV1, DM1])
def test_every_result_type_is_stored_with_its_value_as_the_service_writes_it(
    aws: Any, device_arn: str
) -> None:
    from braket.aws import AwsDevice

    device = AwsDevice(device_arn)
    vector_only = ("state_vector", "amplitude")  # DM1 gives neither, as the service's DM1
    without_shots = {
        pragma: value
        for pragma, value in WITHOUT_SHOTS.items()
        if device_arn == SV1 or not any(name in pragma for name in vector_only)
    }
    for shots, requested in ((1000, WITH_SHOTS), (0, without_shots)):
        source = BELL + "\n".join(requested)
        stored, result = results_of(aws, device.run(program(source), FOLDER, shots=shots))
        assert [entry["type"]["type"] for entry in stored["resultTypes"]] == [
            pragma.split()[3].replace("_", "") for pragma in requested
        ]
        for entry, expected, value in zip(
            stored["resultTypes"], requested.values(), result.values, strict=True
        ):
            assert "value" in entry
            if expected is None:  # samples: one per shot, all +1 on a Bell pair
                assert len(value) == shots and set(np.asarray(value).tolist()) == {1}
            elif isinstance(expected, dict):
                assert {k: complex(v) for k, v in value.items()} == pytest.approx(expected)
            else:
                tolerance = 0.1 if shots else 1e-9
                assert np.allclose(np.asarray(value), np.asarray(expected), atol=tolerance)
        duration = stored["additionalMetadata"]["simulatorMetadata"]["executionDuration"]
        assert isinstance(duration, int) and duration >= 1
        assert result.additional_metadata.simulatorMetadata.executionDuration == duration


def test_adjoint_gradient_on_sv1_matches_the_service(aws: Any) -> None:
    """The figures of Amazon's own integration test, to the last digit."""
    from braket.aws import AwsDevice
    from braket.circuits import Circuit, Observable
    from braket.parametric import FreeParameter

    theta = FreeParameter("theta")
    circuit = (
        Circuit()
        .rx(0, theta)
        .adjoint_gradient(
            observable=(-2 * Observable.Y()) @ (3 * Observable.I())
            + 0.75 * Observable.Y() @ Observable.Z(),
            target=[[0, 1], [2, 3]],
            parameters=["theta"],
        )
    )
    task = AwsDevice(SV1).run(circuit, FOLDER, shots=0, inputs={"theta": 0.2})
    stored, result = results_of(aws, task)
    assert result.values == [
        {"expectation": 1.1920159847703675, "gradient": {"theta": 5.880399467047451}}
    ]
    assert result.result_types[0].type.observable == "-6 * y @ i + 0.75 * y @ z"
    assert stored["resultTypes"][0]["type"]["targets"] == [[0, 1], [2, 3]]
    with pytest.raises(ClientError, match="only supported with shots=0"):
        AwsDevice(SV1).run(circuit, FOLDER, shots=10, inputs={"theta": 0.2})
    with pytest.raises(ClientError, match="does not support the adjoint_gradient"):
        AwsDevice(DM1).run(circuit, FOLDER, shots=0, inputs={"theta": 0.2})


def test_pragmas_on_one_line_are_each_honoured(aws: Any) -> None:
    from braket.aws import AwsDevice

    one_line = (
        "OPENQASM 3;qubit[2] q;x q[0];x q[1];#pragma braket noise bit_flip(0.1) q[0]"
        "#pragma braket result probability q[0], q[1]"
    )
    result = AwsDevice(DM1).run(program(one_line), FOLDER, shots=2000).result()
    assert len(result.result_types) == 1
    assert np.allclose(result.values[0], [0.0, 0.1, 0.0, 0.9], atol=0.05)


def test_the_service_checks_are_made_at_creation(aws: Any) -> None:
    from braket.aws import AwsDevice
    from braket.circuits import Circuit

    partial = Circuit().h(0).cnot(0, 1).h(2).measure([0, 1])
    with pytest.raises(ClientError, match="Device requires all qubits in the program to be"):
        AwsDevice(SV1).run(partial, FOLDER, shots=100)
    assert (
        len(
            AwsDevice(SV1)
            .run(Circuit().h(0).measure([0]), FOLDER, shots=10)
            .result()
            .measurements[0]
        )
        == 1
    )
    reservation = "arn:aws:braket:us-east-1:123456789012:reservation/a1b2c3"
    with pytest.raises(ClientError, match="Braket Direct is not supported for"):
        AwsDevice(SV1).run(Circuit().h(0), FOLDER, shots=10, reservation_arn=reservation)


def test_task_records_carry_action_metadata_and_queue_info(aws: Any) -> None:
    from braket.aws import AwsDevice, AwsQuantumTask
    from braket.circuits import Circuit

    aws.control.faults(crash_simulations=1)
    failed = AwsDevice(SV1).run(Circuit().h(0), FOLDER, shots=10)
    assert failed.result() is None  # the SDK reads actionMetadata of a FAILED task
    detail = aws.braket.get_quantum_task(
        quantumTaskArn=failed.id, additionalAttributeNames=["QueueInfo"]
    )
    assert detail["status"] == "FAILED"
    assert detail["actionMetadata"] == {
        "actionType": "braket.ir.openqasm.program",
        "programCount": 1,
    }
    assert detail["queueInfo"]["position"] == "None"
    assert "FAILED status" in detail["queueInfo"]["message"]
    aws.settings(task_queue_seconds=30)
    queued = [AwsDevice(SV1).run(Circuit().h(0), FOLDER, shots=10) for _ in range(2)]
    info = AwsQuantumTask(queued[1].id).queue_position()
    assert (info.queue_position, info.queue_type.value) == ("2", "Normal")
    for task in queued:
        task.cancel()


def test_sixteen_concurrent_dm1_and_sv1_tasks_leave_the_emulator_up_and_right(aws: Any) -> None:
    """The local simulators abort their process when two threads simulate at once; here each
    simulation has a process of its own."""
    from braket.aws import AwsDevice
    from braket.circuits import Circuit

    aws.settings(simulator_workers=4)
    tasks = []
    for index in range(16):
        device = AwsDevice(DM1 if index % 2 else SV1)
        flipped = index % 4 < 2
        circuit = Circuit().x(0).i(1) if flipped else Circuit().h(0).cnot(0, 1)
        expected = [0, 0, 1, 0] if flipped else [0.5, 0, 0, 0.5]
        tasks.append((expected, device.run(circuit.probability(), FOLDER, shots=0)))
    for expected, task in tasks:
        assert np.allclose(task.result().values[0], expected, atol=1e-9)
    health = aws.control.health()
    assert health["status"] == "ok"
    assert health["simulators"]["replaced"] == 0
    assert health["simulators"]["started"] <= 4  # (idle workers of earlier tests are reused)
    assert 1 <= len(health["simulators"]["idle"]) <= 4  # never more than simulator_workers


def test_a_crashing_or_hanging_simulation_fails_only_its_own_task(aws: Any) -> None:
    from braket.aws import AwsDevice
    from braket.circuits import Circuit

    aws.settings(simulator_workers=2, task_time_limit_seconds=3)
    aws.control.faults(crash_simulations=1)
    crashed = AwsDevice(SV1).run(Circuit().h(0), FOLDER, shots=10)
    neighbours = [AwsDevice(SV1).run(Circuit().x(0), FOLDER, shots=10) for _ in range(3)]
    assert crashed.state() in ("QUEUED", "RUNNING", "FAILED")
    assert crashed.result() is None
    reason = aws.braket.get_quantum_task(quantumTaskArn=crashed.id)["failureReason"]
    assert "the simulator process died (killed by signal 6)" in reason
    for task in neighbours:
        assert task.result().measurement_counts == {"1": 10}

    aws.control.faults(hang_simulations=1)
    hung = AwsDevice(SV1).run(Circuit().h(0), FOLDER, shots=10)
    started = time.monotonic()
    assert hung.result() is None
    reason = aws.braket.get_quantum_task(quantumTaskArn=hung.id)["failureReason"]
    assert "ran longer than the 3 s allowed" in reason
    assert AwsDevice(SV1).run(Circuit().x(0), FOLDER, shots=5).result().measurement_counts == {
        "1": 5
    }
    assert aws.control.health()["simulators"]["replaced"] == 2
    assert time.monotonic() - started < 120  # (a bound on the test, not a figure)


def test_a_reset_stops_the_simulations_under_way_and_counts_afresh(aws: Any) -> None:
    import os

    from braket.aws import AwsDevice
    from braket.circuits import Circuit

    from covalent_braket_plugin.testing import provision
    from tests.conftest import IMAGE, ROLE

    aws.settings(simulator_workers=1, task_time_limit_seconds=300)
    aws.control.faults(hang_simulations=1)
    AwsDevice(SV1).run(Circuit().h(0), FOLDER, shots=10)
    deadline = time.monotonic() + 30
    while not aws.control.health()["simulators"]["busy"] and time.monotonic() < deadline:
        time.sleep(0.05)
    [busy] = aws.control.health()["simulators"]["busy"]

    aws.control.reset()  # the hung simulation's task is forgotten: its worker is stopped
    provision(BUCKET, ROLE, IMAGE, client=aws.control.client)
    deadline = time.monotonic() + 20
    while aws.control.health()["simulators"]["busy"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert aws.control.health()["simulators"]["busy"] == []
    with pytest.raises(ProcessLookupError):
        os.kill(busy["pid"], 0)
    task = AwsDevice(SV1).run(Circuit().x(0), FOLDER, shots=5)
    assert task.result().measurement_counts == {"1": 5}
    assert aws.control.health()["simulators"]["replaced"] == 0  # not the reset's doing


def test_a_program_the_simulator_rejects_fails_its_task_with_the_reason(aws: Any) -> None:
    from braket.aws import AwsDevice

    bad = program("OPENQASM 3.0;\nqubit[1] q;\nnot_a_gate q[0];\n#pragma braket result probability")
    task = AwsDevice(SV1).run(bad, FOLDER, shots=0)
    assert task.result() is None
    reason = aws.braket.get_quantum_task(quantumTaskArn=task.id)["failureReason"]
    assert "not_a_gate" in reason
    assert aws.control.health()["simulators"]["replaced"] == 0  # the worker goes on


def test_tracker_prices_tasks_from_the_emulators_price_list(aws: Any) -> None:
    from braket.aws import AwsDevice
    from braket.circuits import Circuit
    from braket.tracking import Tracker

    with Tracker() as tracker:
        AwsDevice(SV1).run(Circuit().h(0), FOLDER, shots=100).result()
    stats = tracker.quantum_tasks_statistics()
    assert stats[SV1]["shots"] == 100 and stats[SV1]["tasks"] == {"COMPLETED": 1}
    # SV1 at 0.075 USD a minute, billed at least 3 s: 0.00375 USD.
    assert float(tracker.simulator_tasks_cost()) == pytest.approx(0.00375)


def test_the_price_list_has_the_shape_of_aws_bulk_csv_and_both_readers_read_it(aws: Any) -> None:
    """Five metadata lines, then AWS's pricing columns before the product's, an on-demand term
    on every row; the Braket SDK's ``price_search`` finds exactly one row for each of the
    Tracker's own look-ups, and the executor's parser prices the same products."""
    import csv
    import io
    import urllib.request

    from braket.tracking import pricing as sdk_pricing

    from covalent_braket_plugin import pricing

    url = aws.control.env()["BRAKET_PRICE_OFFERS_URL"]
    text = urllib.request.urlopen(url, timeout=30).read().decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert [row[0] for row in rows[:5]] == [
        "FormatVersion", "Disclaimer", "Publication Date", "Version", "OfferCode"
    ]  # fmt: skip
    header = rows[5]
    assert header[:11] == [
        "SKU", "OfferTermCode", "RateCode", "TermType", "PriceDescription", "EffectiveDate",
        "StartingRange", "EndingRange", "Unit", "PricePerUnit", "Currency",
    ]  # fmt: skip
    assert {"Product Family", "serviceCode", "Location", "usageType", "Region Code"} <= set(header)
    body = [dict(zip(header, row, strict=True)) for row in rows[6:]]
    assert {row["TermType"] for row in body} == {"OnDemand"}
    assert all(row["RateCode"].startswith(row["SKU"] + "." + row["OfferTermCode"]) for row in body)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BRAKET_PRICE_OFFERS_URL", url)
        sdk = sdk_pricing.Pricing()  # the SDK's reader, as the Tracker's, reading this list
        sdk.get_prices()
        region = {"Region Code": "us-east-1"}
        simulator = {**region, "Version": "SV1", "Product Family": "Simulator Task"}
        assert len(sdk.price_search(**simulator, operation="CompleteTask")) == 1
        shot = {**region, "DeviceName": "Forte-1", "Product Family": "Quantum Task-Shot"}
        assert len(sdk.price_search(**shot)) == 1
        listed = pricing.PriceList.parse(io.StringIO(text), url)
    assert listed.get("Braket Managed Jobs Instance", "us-east-1", "ml.m5.large") is not None
    assert listed.get("Braket Managed Jobs Simulator Task", "us-east-1", "SV1") is not None
