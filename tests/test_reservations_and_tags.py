"""Braket Direct reservations (``reservation_arn``) and the ``tags`` setting: what reaches
CreateJob, and what is refused, naming the setting, before anything is created."""

from __future__ import annotations

import sys
from typing import Any

import cloudpickle
import pytest
from botocore.exceptions import ClientError

from covalent_braket_plugin import usage
from covalent_braket_plugin.braket import BraketExecutor
from covalent_braket_plugin.config import InvalidSettingError, check_tags
from covalent_braket_plugin.preflight import check_reservation
from tests.conftest import BUCKET, IMAGE, ROLE, SV1
from tests.test_braket import hosted, keys, run

pytestmark = pytest.mark.timeout(180)
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job cannot import the tests

QPU = "arn:aws:braket:us-east-1::device/qpu/example/Lab-3"
RESERVATION = (
    "arn:aws:braket:us-east-1:123456789012:reservation/a1b2c3d4-0000-4000-8000-000000000001"
)
ASSOCIATION = {"arn": RESERVATION, "type": "RESERVATION_TIME_WINDOW_ARN"}


def add_qpu(aws: Any) -> None:
    aws.control.add_devices(
        [
            {
                "arn": QPU,
                "name": "Lab-3",
                "provider": "Example",
                "qubitCount": 3,
                "nativeGates": ["h", "cnot", "rz", "x"],
                "connectivity": {"0": ["1"], "1": ["0", "2"], "2": ["1"]},
            }
        ]
    )


def nothing_created(aws: Any) -> None:
    assert aws.braket.search_jobs(filters=[])["jobs"] == []
    assert keys(aws) == []


# ---------------------------------------------------------------------------- reservations
def reserved_electron() -> dict:
    """Inside a job with a reservation: a task on the reserved QPU, and one on SV1."""
    import os

    from botocore.exceptions import ClientError as Refused
    from braket.aws import AwsDevice
    from braket.circuits import Circuit

    counts = AwsDevice(os.environ["AMZN_BRAKET_DEVICE_ARN"]).run(Circuit().x(0), shots=10)
    outcome = {"qpu": counts.result().measurement_counts["1"]}
    try:
        AwsDevice("arn:aws:braket:::device/quantum-simulator/amazon/sv1").run(
            Circuit().x(0), shots=10
        )
        outcome["sv1"] = "accepted"
    except Refused as exc:
        outcome["sv1"] = f"{exc.response['Error']['Code']}: {exc.response['Error']['Message']}"
    return outcome


def test_a_reservation_reaches_create_job_and_binds_the_jobs_tasks_to_its_qpu(aws: Any) -> None:
    add_qpu(aws)
    executor = hosted(
        braket_job_execution_role_name=ROLE, quantum_device=QPU, reservation_arn=RESERVATION
    )
    outcome = run(executor, reserved_electron)
    job = aws.braket.get_job(jobArn=executor._handle)
    assert job["associations"] == [ASSOCIATION]
    assert job["deviceConfig"]["device"] == QPU
    assert outcome["qpu"] == 10
    assert outcome["sv1"].startswith("ValidationException: "), outcome
    assert "reservation" in outcome["sv1"] and QPU in outcome["sv1"]
    # The reserved QPU's tasks, and the job itself, are billed by the reservation's hours, not
    # per task and shot, nor per minute of instance or GB-month of storage.
    usage.wait_for_accounts()
    from tests.test_usage import stored_usage

    record = stored_usage(aws)
    assert record["reservation_arn"] == RESERVATION
    assert record["quantum_tasks"][QPU]["tasks"] == {"COMPLETED": 1}
    assert record["cost"]["quantum_tasks"][QPU] == 0
    assert (record["cost"]["instance"], record["cost"]["storage"]) == (0, 0)
    assert record["cost"]["total"] == 0 and record["cost"]["complete"] is True


def test_the_emulator_refuses_a_reservation_on_a_simulator_and_creates_nothing(
    aws: Any,
) -> None:
    from covalent_braket_plugin.job_request import Submission, create_job_request
    from covalent_braket_plugin.location import TaskLocation

    settings = hosted(reservation_arn=RESERVATION).settings()
    submission = Submission(ROLE, IMAGE, "3.11", "0" * 64, "token-1", "123456789012")
    request = create_job_request(settings, TaskLocation.new(BUCKET, "d", 0), submission)
    assert request["associations"] == [ASSOCIATION]
    with pytest.raises(ClientError) as info:
        aws.braket.create_job(**request)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "reservations are for QPUs" in info.value.response["Error"]["Message"]
    add_qpu(aws)
    other = RESERVATION.replace("us-east-1", "us-west-1")
    with pytest.raises(ClientError) as elsewhere:  # on a QPU, but reserved in another Region
        aws.braket.create_job(
            **{
                **request,
                "deviceConfig": {"device": QPU},
                "associations": [{**ASSOCIATION, "arn": other}],
            }
        )
    assert elsewhere.value.response["Error"]["Code"] == "ValidationException"
    assert "us-east-1" in elsewhere.value.response["Error"]["Message"]
    nothing_created(aws)


def test_the_executor_refuses_a_reservation_on_a_simulator_with_nothing_created(
    aws: Any,
) -> None:
    executor = hosted(braket_job_execution_role_name=ROLE, reservation_arn=RESERVATION)
    with pytest.raises(InvalidSettingError) as info:  # pre-flight, before any upload
        run(executor, lambda: "never")
    assert info.value.setting == "reservation_arn" and "reservations are for QPUs" in str(
        info.value
    )
    nothing_created(aws)


@pytest.mark.parametrize(
    ("device", "reservation", "allowed"),
    [
        (SV1, RESERVATION, "reservations are for QPUs"),
        (QPU, RESERVATION.replace("us-east-1", "eu-north-1"), "a reservation in us-east-1"),
    ],
)
def test_check_reservation_names_the_setting_the_value_and_what_is_allowed(
    device: str, reservation: str, allowed: str
) -> None:
    settings = BraketExecutor(quantum_device=device, reservation_arn=reservation).settings()
    with pytest.raises(InvalidSettingError) as info:
        check_reservation(settings.for_job())
    assert info.value.setting == "reservation_arn" and info.value.value == reservation
    assert allowed in str(info.value) and repr(reservation) in str(info.value)
    check_reservation(BraketExecutor(quantum_device=QPU).settings())  # none: nothing to check
    check_reservation(
        BraketExecutor(quantum_device=QPU, reservation_arn=RESERVATION).settings().for_job()
    )


# ---------------------------------------------------------------------------- tags
#: 46 tags of the user's (Braket takes 50 on a job; the executor adds 4), in several scripts.
MANY_TAGS = {
    "team": "quantum",
    "cost-center": "4711",
    "Projet ÉTÉ": "été 2026",
    "名前": "値 1",
    "path/key.v2": "a=b+c@d:e_f-g",
    "empty": "",
    **{f"k{i}": f"v{i}" for i in range(40)},
}


def test_tags_reach_the_job_beside_the_executors_own(aws: Any) -> None:
    assert len(MANY_TAGS) == 46
    executor = hosted(braket_job_execution_role_name=ROLE, tags=MANY_TAGS)
    assert run(executor, lambda: "tagged", node_id=5) == "tagged"
    tags = aws.braket.get_job(jobArn=executor._handle)["tags"]
    assert tags == {
        **MANY_TAGS,
        "covalent:dispatch_id": "d0c0ffee-1234-5678-9abc-def012345678",
        "covalent:node_id": "5",
        "covalent:attempt": "0",
        "covalent:node_name": "_lambda_",  # the electron's name, as a tag value may have it
    }


BAD_TAGS = [
    ({"aws:created-by": "me"}, "reserved prefix"),
    ({"AWS:Team": "me"}, "reserved prefix"),
    ({"covalent:node_id": "7"}, "reserved prefix"),
    ({"": "no key"}, "0 characters"),
    ({"k" * 129: "v"}, "129 characters"),
    ({"k": "v" * 257}, "257 characters"),
    ({"tab": "a\tb"}, "character AWS does not take"),
    ({"new\nline": "v"}, "character AWS does not take"),
    ({"semi;colon": "v"}, "character AWS does not take"),
    ({"team": 5}, "must be strings"),
    ({f"k{i}": "v" for i in range(47)}, "47 tags"),
    ([("team", "a"), ("team", "b")], "given twice"),
    ("team=quantum", "a mapping"),
]


@pytest.mark.parametrize(("tags", "problem"), BAD_TAGS, ids=[p for _, p in BAD_TAGS])
def test_bad_tags_are_refused_naming_the_setting_value_and_what_is_allowed(
    aws: Any, tags: Any, problem: str
) -> None:
    with pytest.raises(InvalidSettingError) as info:  # at once, in the user's code
        BraketExecutor(tags=tags)
    assert info.value.setting == "tags" and info.value.value == tags
    message = str(info.value)
    assert message.startswith(f"BraketExecutor setting tags={tags!r} is invalid: ")
    assert problem in message and "keys of 1-128 and values of 0-256" in message
    # A server's executor rebuilt from a covalent.conf with these tags: refused before any
    # AWS resource is made.
    executor = hosted(braket_job_execution_role_name=ROLE)
    executor.tags = tags
    with pytest.raises(InvalidSettingError) as again:
        run(executor, lambda: "never")
    assert again.value.setting == "tags"
    nothing_created(aws)


def test_tag_characters_are_those_aws_allows() -> None:
    allowed = {"a": "Ωμέγα", "b": "١٢٣", "c": "\u00a0non-breaking space", "_.:/=+-@": "x"}
    assert dict(check_tags(allowed)) == allowed
    for refused in ("\x1f", "\u200b", "#", "*", "é\u0301"):  # control, format, symbols, mark
        with pytest.raises(InvalidSettingError):
            check_tags({"key": refused})
