"""Nothing lost, nothing let in: bad input, dead jobs, lost or forged results, restarts, data.

The executor runs as Covalent's server would run it (see ``HostedExecutor``) against the
emulator, over the wire.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import threading
import time
from typing import Any

import pytest

from covalent_braket_plugin.braket import BraketJobError
from covalent_braket_plugin.config import InvalidSettingError
from tests.conftest import BUCKET, ROLE
from tests.test_braket import hosted, keys, run
from tests.test_progress import log_at  # noqa: F401 (a fixture)

pytestmark = pytest.mark.timeout(180)

OFFLINE_QPU = "arn:aws:braket:us-east-1::device/qpu/example/Offline-1"

# (setting that must be named, changes to a valid executor)
BAD_INPUTS: list[tuple[str, dict[str, Any]]] = [
    ("time_limit", {"time_limit": 0}),
    ("time_limit", {"time_limit": 432_001}),
    ("time_limit", {"time_limit": "five minutes"}),
    ("time_limit", {"time_limit": 12.5}),
    ("storage", {"storage": 0}),
    ("storage", {"storage": -30}),
    ("poll_freq", {"poll_freq": 0}),
    ("poll_freq", {"poll_freq": "often"}),
    ("classical_device", {"classical_device": "ml.m5.gigantic"}),
    ("classical_device", {"classical_device": "m5.large"}),
    ("quantum_device", {"quantum_device": "sv1"}),
    ("quantum_device", {"quantum_device": "arn:aws:braket:::device/quantum-simulator/amazon/sv9"}),
    ("quantum_device", {"quantum_device": OFFLINE_QPU}),
    ("s3_bucket_name", {"s3_bucket_name": "My_Bucket"}),
    ("s3_bucket_name", {"s3_bucket_name": "ab"}),
    ("s3_bucket_name", {"s3_bucket_name": "192.168.1.1"}),
    ("s3_bucket_name", {"s3_bucket_name": "no-such-bucket-here"}),
    ("ecr_image_uri", {"ecr_image_uri": "python:3.11"}),
    (
        "ecr_image_uri",
        {"ecr_image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/covalent-braket"},
    ),
    (
        "ecr_image_uri",
        {"ecr_image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/missing-repo:latest"},
    ),
    (
        "ecr_image_uri",
        {"ecr_image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/covalent-braket:v0"},
    ),
    ("braket_job_execution_role_name", {"braket_job_execution_role_name": "arn:aws:iam::1:role/x"}),
    ("braket_job_execution_role_name", {"braket_job_execution_role_name": "bad role name"}),
    ("braket_job_execution_role_name", {"braket_job_execution_role_name": "NoSuchRole"}),
    ("region", {"region": "Mars-1"}),
    ("credentials", {"credentials": "/nonexistent/credentials"}),
    ("profile", {"profile": "no-such-profile"}),
    ("kms_key_id", {"kms_key_id": "not a key"}),
    ("cleanup", {"cleanup": "sometimes"}),
    ("freeze_heap", {"freeze_heap": "maybe"}),
]


@pytest.mark.parametrize(
    ("setting", "changes"), BAD_INPUTS, ids=[f"{s}={c[s]!r}" for s, c in BAD_INPUTS]
)
def test_bad_input_is_named_and_creates_nothing(
    aws: Any, setting: str, changes: dict[str, Any]
) -> None:
    aws.control.add_devices(
        [{"arn": OFFLINE_QPU, "name": "Offline-1", "qubitCount": 2, "status": "OFFLINE"}]
    )
    before = keys(aws)
    with pytest.raises(InvalidSettingError) as info:
        run(hosted(**{"braket_job_execution_role_name": ROLE, **changes}), lambda: 1)
    assert info.value.setting == setting
    assert setting in str(info.value)
    assert repr(changes[setting]) in str(info.value)
    assert aws.braket.search_jobs(filters=[])["jobs"] == []
    assert keys(aws) == before
    assert len(BAD_INPUTS) >= 25


def _wait_for_job(aws: Any, status: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = aws.braket.search_jobs(filters=[])["jobs"]
        if jobs and jobs[0]["status"] == status:
            return jobs[0]
        time.sleep(0.05)
    raise AssertionError(f"no job reached {status}")


def test_a_job_process_killed_mid_run_fails_the_task_with_the_reason(aws: Any) -> None:
    executor = hosted(braket_job_execution_role_name=ROLE)

    def killer() -> None:
        job = _wait_for_job(aws, "RUNNING")
        time.sleep(1.0)  # let the job process get going
        aws.control.kill_job(job["jobArn"])

    thread = threading.Thread(target=killer)
    thread.start()
    with pytest.raises(BraketJobError) as info:
        run(executor, lambda: time.sleep(60))
    thread.join()
    assert "killed by signal 9" in str(info.value)
    assert executor._handle in str(info.value)


@pytest.mark.parametrize("damage", ["delete", "corrupt", "forge"])
def test_a_missing_corrupt_or_foreign_result_fails_with_the_job_and_key(
    aws: Any, damage: str
) -> None:
    aws.control.faults(latency_seconds=0.3, services=["braket"])  # the job finishes between polls
    executor = hosted(braket_job_execution_role_name=ROLE, poll_freq=1.0)

    def tamper() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = [k for k in keys(aws) if k.endswith("/result.pkl")]
            if found:
                if damage == "delete":
                    aws.s3.delete_object(Bucket=BUCKET, Key=found[0])
                elif damage == "corrupt":
                    aws.s3.put_object(Bucket=BUCKET, Key=found[0], Body=b"not a pickle")
                else:
                    import cloudpickle

                    forged = {
                        "format": 1,
                        "ok": True,
                        "result": "forged",
                        "job_name": "someone-else",
                        "task_uri": "s3://elsewhere/x",
                        "stdout": "",
                        "stderr": "",
                    }
                    aws.s3.put_object(Bucket=BUCKET, Key=found[0], Body=cloudpickle.dumps(forged))
                return
            time.sleep(0.02)

    thread = threading.Thread(target=tamper)
    thread.start()
    with pytest.raises(BraketJobError) as info:
        run(executor, lambda: 42)
    thread.join()
    message = str(info.value)
    assert executor._handle in message
    assert f"s3://{BUCKET}/covalent-braket/" in message and "result.pkl" in message
    expected = {
        "delete": "could not be read",
        "corrupt": "corrupt result",
        "forge": "not by Braket job",
    }[damage]
    assert expected in message


def test_an_executor_rebuilt_mid_poll_attaches_to_the_running_job(aws: Any) -> None:
    metadata = {"dispatch_id": "5e55-rebuilt", "node_id": 4, "results_dir": "/tmp"}

    def slow_square() -> int:
        import time as _time

        _time.sleep(4)
        return 7 * 7

    async def scenario() -> Any:
        first = hosted(braket_job_execution_role_name=ROLE)
        task = asyncio.create_task(first.run(slow_square, [], {}, metadata))
        while first._handle is None:
            await asyncio.sleep(0.05)
        task.cancel()  # the server went away mid-poll; the job goes on
        try:
            await task
        except asyncio.CancelledError:
            pass
        second = hosted(braket_job_execution_role_name=ROLE)  # rebuilt from scratch
        value = await second.run(slow_square, [], {}, metadata)
        return first._handle, second._handle, value

    first_arn, second_arn, value = asyncio.run(scenario())
    assert value == 49
    assert first_arn == second_arn
    assert len(aws.braket.search_jobs(filters=[])["jobs"]) == 1


@pytest.mark.parametrize("size", [100, 3 * 1024 * 1024, 9 * 1024 * 1024])
def test_a_rebuilt_executor_keeps_the_attempts_upload_and_its_digest(aws: Any, size: int) -> None:
    from covalent_braket_plugin.location import TaskLocation
    from covalent_braket_plugin.transfer import upload_task

    first = hosted(braket_job_execution_role_name=ROLE)
    settings = first.settings()
    location = TaskLocation.new(BUCKET, "5e55-upload", 0)
    first_upload = upload_task(settings, location, (len, [b"a" * size], {}))
    assert not first_upload.resumed
    stored = {key: aws.s3.head_object(Bucket=BUCKET, Key=key)["ETag"] for key in keys(aws)}
    rebuilt = hosted(braket_job_execution_role_name=ROLE)  # pickles something else this time
    again = upload_task(rebuilt.settings(), location, (len, [b"b" * size], {}))
    assert again.sha256 == first_upload.sha256 and again.resumed
    after = {key: aws.s3.head_object(Bucket=BUCKET, Key=key)["ETag"] for key in keys(aws)}
    assert after == stored  # nothing overwritten: the job reads what the digest names


def test_a_multipart_input_survives_failed_parts_and_leaves_nothing_when_it_cannot(
    aws: Any,
) -> None:
    import pickle

    from covalent_braket_plugin.location import TaskLocation
    from covalent_braket_plugin.transfer import upload_task

    executor = hosted(braket_job_execution_role_name=ROLE)
    settings = executor.settings()
    argument = os.urandom(20 * 1024 * 1024)  # kept by reference: parts are views of it

    aws.control.faults(fail={"UploadPart": 3})  # retried: each retry re-reads its part
    location = TaskLocation.new(BUCKET, "5e55-parts", 0)
    upload_task(settings, location, (len, [argument], {}))
    assert aws.control.faults()["injected"]["fail"] == 3
    body = aws.s3.get_object(Bucket=BUCKET, Key=location.key("input.pkl"))["Body"].read()
    assert pickle.loads(body)[1][0] == argument

    aws.control.faults(fail={"UploadPart": 1000})  # more than any retries
    location = TaskLocation.new(BUCKET, "5e55-parts", 1)
    with pytest.raises(Exception, match="upload_part failed"):
        upload_task(settings, location, (len, [argument], {}))
    aws.control.faults(fail={})
    assert not aws.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")  # aborted
    assert not any(key.startswith(location.key("")) and key.endswith(".pkl") for key in keys(aws))


def test_a_task_rerun_after_a_failed_attempt_gets_a_new_job(aws: Any) -> None:
    metadata = {"dispatch_id": "5e55-retry", "node_id": 1, "results_dir": "/tmp"}

    def flaky() -> str:
        raise RuntimeError("first attempt fails")

    from covalent._shared_files.exceptions import TaskRuntimeError

    with pytest.raises(TaskRuntimeError):
        asyncio.run(hosted(braket_job_execution_role_name=ROLE).run(flaky, [], {}, metadata))
    value = asyncio.run(
        hosted(braket_job_execution_role_name=ROLE).run(lambda: "second", [], {}, metadata)
    )
    assert value == "second"
    jobs = aws.braket.search_jobs(filters=[])["jobs"]
    assert sorted(job["status"] for job in jobs) == ["COMPLETED", "FAILED"]
    assert sorted(job["tags"]["covalent:attempt"] for job in jobs) == ["0", "1"]


def test_kms_setting_encrypts_every_object_and_the_job_output(aws: Any) -> None:
    kms = aws.control.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    executor = hosted(braket_job_execution_role_name=ROLE, kms_key_id=key_id, cleanup=False)
    assert run(executor, lambda: "secret") == "secret"
    for key in keys(aws):
        if key.endswith((".pkl", "runner.tar.gz")):
            head = aws.s3.head_object(Bucket=BUCKET, Key=key)
            assert head["ServerSideEncryption"] == "aws:kms", key
            assert key_id in head["SSEKMSKeyId"]
    job = aws.braket.get_job(jobArn=executor._handle)
    assert job["outputDataConfig"]["kmsKeyId"] == key_id


def test_default_encryption_is_sse_s3_and_cleanup_false_keeps_artifacts(aws: Any) -> None:
    executor = hosted(braket_job_execution_role_name=ROLE, cleanup=False)
    assert run(executor, lambda: 1) == 1
    kept = sorted(k.rsplit("/", 1)[1] for k in keys(aws) if k.endswith((".pkl", "runner.tar.gz")))
    assert kept == ["result.pkl", "runner.tar.gz"]  # a small input travels inside runner.tar.gz
    for key in [k for k in keys(aws) if k.endswith((".pkl", "runner.tar.gz"))]:
        assert aws.s3.head_object(Bucket=BUCKET, Key=key)["ServerSideEncryption"] == "AES256"


def test_no_credential_reaches_hyperparameters_tags_pickles_or_logs(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = aws.control.client("sts").assume_role(  # a session's keys and token
        RoleArn=ROLE, RoleSessionName="marked"
    )["Credentials"]
    secret, token = credentials["SecretAccessKey"], credentials["SessionToken"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    from covalent_braket_plugin import aws as aws_module

    aws_module.reset_cache()
    executor = hosted(braket_job_execution_role_name=ROLE, cleanup=False)

    def show_env() -> int:
        import os as _os

        print(sorted(_os.environ))
        return 3

    assert run(executor, show_env) == 3
    job = aws.braket.get_job(jobArn=executor._handle)
    exposed = repr(job["hyperParameters"]) + repr(job["tags"])
    for key in keys(aws):
        body = aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        if key.endswith(".tar.gz"):  # the runner archive carries the (small) input pickle
            body = gzip.decompress(body)
        exposed += body.decode("latin-1")
    for stream in aws.logs.describe_log_streams(logGroupName="/aws/braket/jobs")["logStreams"]:
        events = aws.logs.get_log_events(
            logGroupName="/aws/braket/jobs", logStreamName=stream["logStreamName"]
        )
        exposed += "".join(e["message"] for e in events["events"])
    assert secret not in exposed and token not in exposed
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == secret  # and nothing was rewritten


def test_polling_survives_transient_errors_beyond_botocore_retries(aws: Any) -> None:
    aws.control.faults(fail={"GetJob": 12})  # 12 failures in a row: more than one call's retries
    executor = hosted(braket_job_execution_role_name=ROLE, poll_freq=0.2)
    assert run(executor, lambda: "done") == "done"
    assert aws.control.faults()["injected"]["fail"] == 12
    assert len(aws.braket.search_jobs(filters=[])["jobs"]) == 1


def test_lost_create_job_response_still_makes_exactly_one_job(aws: Any) -> None:
    # The first CreateJob is carried out but its response lost (HTTP 500): botocore retries
    # with the same client token, and the service hands back the same job.
    aws.control.faults(lose={"CreateJob": 1})
    executor = hosted(braket_job_execution_role_name=ROLE)
    assert run(executor, lambda: "once") == "once"
    creates = aws.control.journal(operation="CreateJob")
    assert [(entry["status"], entry.get("fault")) for entry in creates] == [
        (500, "lost"),
        (201, None),
    ]
    assert len(aws.braket.search_jobs(filters=[])["jobs"]) == 1


def test_braket_in_a_box_refuses_to_delete_what_s3_would_not_and_says_so_in_quiet_mode(
    aws: Any,
) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key="kept/locked", Body=b"1")
    aws.s3.put_object(Bucket=BUCKET, Key="kept/free", Body=b"2")
    aws.control.faults(undeletable=["locked"])
    answer = aws.s3.delete_objects(
        Bucket=BUCKET,
        Delete={"Objects": [{"Key": "kept/locked"}, {"Key": "kept/free"}], "Quiet": True},
    )
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("kept/locked", "AccessDenied")]
    assert [k for k in keys(aws) if k.startswith("kept/")] == ["kept/locked"]


def test_objects_s3_did_not_delete_are_named_in_a_warning(aws: Any, log_at: Any) -> None:  # noqa: F811
    from covalent_braket_plugin.results import wait_for_cleanups

    lines = log_at(logging.WARNING)
    aws.control.faults(undeletable=["/input.pkl", "/runner.tar.gz"])
    assert run(hosted(), lambda: 5) == 5
    wait_for_cleanups()
    task_objects = ("runner.tar.gz", "input.pkl", "result.pkl")  # the job's outputs are kept
    left = [key for key in keys(aws) if key.endswith(task_objects)]
    assert left and all(key.endswith("runner.tar.gz") for key in left)  # the input travelled in it
    warned = [line for line in lines if "S3 did not delete" in line]
    assert warned and all(key in warned[0] for key in left), lines
    assert "AccessDenied" in warned[0]
