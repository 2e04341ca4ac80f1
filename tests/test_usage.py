"""What an electron's job used and cost: ``usage.json`` beside the task's objects, priced
from the price list the emulator serves, and the summary in the server log."""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
import urllib.request
from decimal import Decimal
from typing import Any

import cloudpickle
import pytest

from covalent_braket_plugin import pricing, usage
from covalent_braket_plugin.braket import wait_for_cleanups
from covalent_braket_plugin.covalent_loader import server_log
from covalent_braket_plugin.emulator.aws_services.price_list import PATH as PRICE_PATH
from covalent_braket_plugin.location import TaskLocation
from tests.conftest import BUCKET, ROLE
from tests.test_braket import hosted, keys, run

pytestmark = pytest.mark.timeout(180)
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job cannot import the tests

DISPATCH = "d0c0ffee-1234-5678-9abc-def012345678"  # tests.test_braket.run's
SV1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
DM1 = "arn:aws:braket:::device/quantum-simulator/amazon/dm1"


def sv1_and_dm1_electron() -> float:
    """Three tasks on SV1, two on DM1 (the emulator runs them on local simulators); the
    SDK's own Tracker prices them too, from the same served price list."""
    from braket.aws import AwsDevice
    from braket.circuits import Circuit
    from braket.tracking import Tracker

    with Tracker() as tracker:
        for arn, shots in (
            ("arn:aws:braket:::device/quantum-simulator/amazon/sv1", 100),
            ("arn:aws:braket:::device/quantum-simulator/amazon/sv1", 50),
            ("arn:aws:braket:::device/quantum-simulator/amazon/sv1", 10),
            ("arn:aws:braket:::device/quantum-simulator/amazon/dm1", 80),
            ("arn:aws:braket:::device/quantum-simulator/amazon/dm1", 20),
        ):
            AwsDevice(arn).run(Circuit().h(0).cnot(0, 1), shots=shots).result()
    return float(tracker.simulator_tasks_cost())


def served_prices(url: str) -> list[dict[str, str]]:
    """The emulator's price list, read as AWS documents the format (5 metadata lines)."""
    with urllib.request.urlopen(url + PRICE_PATH, timeout=30) as response:
        text = response.read().decode()
    return list(csv.DictReader(io.StringIO(text.split("\n", 5)[5])))


def per_minute(rows: list[dict[str, str]], **match: str) -> Decimal:
    [row] = [row for row in rows if all(row[key] == value for key, value in match.items())]
    assert row["Unit"] == "minutes" and row["Currency"] == "USD"
    return Decimal(row["PricePerUnit"])


def stored_usage(aws: Any, node: int = 0) -> dict[str, Any]:
    key = TaskLocation.new(BUCKET, DISPATCH, node).key(usage.USAGE_KEY)
    return json.loads(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def server_lines() -> Any:
    handler, level = Lines(), server_log.level
    server_log.addHandler(handler)
    server_log.setLevel(logging.INFO)
    yield handler.lines
    server_log.removeHandler(handler)
    server_log.setLevel(level)


def test_usage_json_has_the_tasks_shots_and_a_cost_to_the_cent_of_the_price_list(
    aws: Any, server_lines: list[str]
) -> None:
    aws.settings(instance_quotas={"ml.g4dn.xlarge": 1})  # a GPU type's quota (0) raised
    executor = hosted(braket_job_execution_role_name=ROLE, classical_device="ml.g4dn.xlarge")
    sdk_cost = run(executor, sv1_and_dm1_electron)
    usage.wait_for_accounts()
    wait_for_cleanups()
    assert not any(key.endswith((".pkl", "runner.tar.gz")) for key in keys(aws))
    record = stored_usage(aws)  # usage.json outlives the clean-up
    job = aws.braket.get_job(jobArn=executor._handle)

    # What the job ran, as the service recorded it: five tasks of the job, their shots, and
    # the execution time each results.json reports (billed at least 3 s, as the SDK does).
    tasks = aws.braket.search_quantum_tasks(
        filters=[{"name": "jobArn", "operator": "EQUAL", "values": [job["jobArn"]]}]
    )["quantumTasks"]
    billed: dict[str, int] = {SV1: 0, DM1: 0}
    for task in tasks:
        result = json.loads(
            aws.s3.get_object(
                Bucket=task["outputS3Bucket"], Key=task["outputS3Directory"] + "/results.json"
            )["Body"].read()
        )
        ms = result["additionalMetadata"]["simulatorMetadata"]["executionDuration"]
        billed[task["deviceArn"]] += max(int(ms), 3000)
    assert record["quantum_tasks"][SV1]["tasks"] == {"COMPLETED": 3}
    assert record["quantum_tasks"][SV1]["shots"] == 160
    assert record["quantum_tasks"][DM1]["tasks"] == {"COMPLETED": 2}
    assert record["quantum_tasks"][DM1]["shots"] == 100
    assert record["quantum_tasks"][SV1]["billed_execution_ms"] == billed[SV1]
    assert record["quantum_tasks"][DM1]["billed_execution_ms"] == billed[DM1]
    assert record["instance"] == {
        "type": "ml.g4dn.xlarge",
        "count": 1,
        "billable_ms": job["billableDuration"],
        "billable_from": "billableDuration",
    }

    # The price, worked out here from the served list, to the cent (and well below it).
    rows = served_prices(aws.url)
    region = {"Region Code": "us-east-1"}
    instance = per_minute(
        rows,
        **region,
        **{"Product Family": "Braket Managed Jobs Instance", "Instance Type": "ml.g4dn.xlarge"},
    )
    tasks_cost = sum(
        per_minute(
            rows,
            **region,
            **{"Product Family": "Braket Managed Jobs Simulator Task", "Version": name},
        )
        * billed[arn]
        / 60_000
        for arn, name in ((SV1, "SV1"), (DM1, "DM1"))
    )
    # The job's storage volume, per GB-month (a month of 730 hours), for the same time.
    family = "Braket Managed Jobs Volume"
    [volume] = [r for r in rows if (r["Product Family"], r["Region Code"]) == (family, "us-east-1")]
    assert volume["Unit"] == "GB-Mo" and job["instanceConfig"]["volumeSizeInGb"] == 30
    storage = Decimal(volume["PricePerUnit"]) * 30 * job["billableDuration"] / (730 * 3_600_000)
    expected = instance * job["billableDuration"] / 60_000 + storage + tasks_cost
    cost = record["cost"]
    assert cost["storage"] == pytest.approx(float(storage), abs=1e-8) and storage > 0
    assert cost["currency"] == "USD" and cost["complete"] is True
    assert round(cost["total"], 2) == round(float(expected), 2) >= 0.01
    assert cost["total"] == pytest.approx(float(expected), abs=1e-7)
    assert cost["instance"] == pytest.approx(
        float(instance * job["billableDuration"] / 60_000), abs=1e-8
    )
    # The SDK's Tracker, inside the job, priced the same tasks the same.
    assert sum(cost["quantum_tasks"].values()) == pytest.approx(sdk_cost, abs=1e-6)

    # One summary line in the server log.
    [summary] = [line for line in server_lines if "estimated cost" in line]
    assert f"USD {cost['total']:.4f}" in summary and "sv1: 3 tasks, 160 shots" in summary


def test_without_a_price_list_usage_is_recorded_unpriced_and_the_task_succeeds(
    aws: Any, monkeypatch: pytest.MonkeyPatch, server_lines: list[str]
) -> None:
    import socket

    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv(pricing.PRICE_LIST_VARIABLE, f"http://127.0.0.1:{port}{PRICE_PATH}")
    pricing.forget_price_list()
    executor = hosted(braket_job_execution_role_name=ROLE)
    assert run(executor, lambda: "priceless") == "priceless"
    usage.wait_for_accounts()
    record = stored_usage(aws)
    assert record["cost"] is None
    assert record["instance"]["billable_ms"] > 0 and record["status"] == "COMPLETED"
    assert any("could not be read" in note for note in record["notes"]), record["notes"]
    [summary] = [line for line in server_lines if "no cost estimate" in line]
    assert "could not be read" in summary


def test_a_failed_electron_is_accounted_too(aws: Any) -> None:
    from covalent._shared_files.exceptions import TaskRuntimeError

    def explode() -> None:
        raise ValueError("boom")

    with pytest.raises(TaskRuntimeError):
        run(hosted(braket_job_execution_role_name=ROLE), explode)
    usage.wait_for_accounts()
    record = stored_usage(aws)
    assert record["status"] == "FAILED" and record["cost"]["total"] > 0


def test_accounting_never_fails_or_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the price list module is broken")

    monkeypatch.setattr(usage, "record", broken)
    location = TaskLocation.new(BUCKET, DISPATCH, 0)
    settings = hosted().settings()
    assert usage.account(settings, location, {"jobArn": "arn:x"}, None) is None


def test_prices_are_read_from_the_columns_of_the_real_list() -> None:
    text = "\n".join(
        [
            '"FormatVersion","v1.0"',
            '"Disclaimer","x"',
            '"Publication Date","2026-01-01T00:00:00Z"',
            '"Version","1"',
            '"OfferCode","AmazonBraket"',
            '"SKU","TermType","Unit","PricePerUnit","Currency","Product Family","Region Code",'
            '"operation","Version","Device Name","Instance Type"',
            '"A","OnDemand","Hrs","1.20","USD","Braket Managed Jobs Instance","us-west-1","","",'
            '"","ml.m5.large"',
            '"B","OnDemand","minutes","0.075","USD","Braket Managed Jobs Simulator Task",'
            '"us-west-1","Managed-Jobs","SV1","",""',
            '"C","OnDemand","minutes","9","USD","Simulator Task","us-west-1","CompleteTask",'
            '"SV1","",""',
            '"D","OnDemand","Task","0.30","USD","Braket Managed Jobs QPU Task","us-west-1","",'
            '"","Ankaa-3",""',
            '"E","OnDemand","Shot","0.0009","USD","Braket Managed Jobs QPU Task Shot",'
            '"us-west-1","","","Ankaa-3",""',
        ]
    )
    prices = pricing.PriceList.parse(io.StringIO(text), "test")
    assert prices.get(pricing.INSTANCE_FAMILY, "us-west-1", "ml.m5.large").per_ms() == Decimal(
        "1.20"
    ) / Decimal(3_600_000)
    assert prices.get(pricing.SIMULATOR_FAMILY, "us-west-1", "SV1").per_unit == Decimal("0.075")
    settings = hosted().settings()
    location = TaskLocation.new(BUCKET, DISPATCH, 0)
    job = {
        "jobArn": "arn:aws:braket:us-west-1:123456789012:job/x",
        "billableDuration": 60_000,
        "status": "COMPLETED",
    }
    outcome = {
        "quantum_tasks": {
            "arn:aws:braket:us-west-1::device/qpu/rigetti/Ankaa-3": {
                "tasks": {"COMPLETED": 2, "FAILED": 1},
                "shots": 300,
                "billable_tasks": 2,
                "billable_shots": 200,
            }
        }
    }
    record = usage.record(settings, location, job, outcome, prices)
    # a minute of ml.m5.large at 1.20/h, and 2 tasks of 100 shots (the failed one is free)
    assert record["cost"]["total"] == pytest.approx(0.02 + 2 * 0.30 + 200 * 0.0009)
