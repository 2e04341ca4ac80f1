"""What real AWS refuses or does, the emulator refuses or does too, and the executor copes:
Regions, bucket ownership, role paths, IAM scoping of CreateJob, the lag before a new job is
seen, one job's error among many, expiring credentials and throttled submissions."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import pytest

from covalent_braket_plugin.aws import AwsError
from covalent_braket_plugin.config import InvalidSettingError
from covalent_braket_plugin.emulator.aws_services.identity import CLIENT_ACCESS_KEY
from covalent_braket_plugin.testing import provision
from tests.conftest import BUCKET, IMAGE, ROLE
from tests.test_braket import hosted, keys, run

pytestmark = pytest.mark.timeout(240)

OTHER_ACCOUNT = "210987654321"
RIGETTI = "arn:aws:braket:us-west-1::device/qpu/rigetti/Ankaa-3"


def other_account_client(aws: Any, service: str, **kwargs: Any) -> Any:
    """A client acting in another account (with credentials of a role assumed there)."""
    credentials = aws.control.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/elsewhere", RoleSessionName="strict"
    )["Credentials"]
    return aws.control.client(
        service,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        **kwargs,
    )


def jobs(aws: Any, region: str = "us-east-1") -> list[dict[str, Any]]:
    braket = aws.control.client("braket", region_name=region)
    return braket.search_jobs(filters=[])["jobs"]


# ---------------------------------------------------------------------------- buckets
def test_a_bucket_owned_by_another_account_is_refused_before_anything_is_written(
    aws: Any,
) -> None:
    foreign = other_account_client(aws, "s3")
    foreign.create_bucket(Bucket="amazon-braket-covalent-job-resources")  # the documented default
    with pytest.raises(InvalidSettingError) as info:
        run(hosted(braket_job_execution_role_name=ROLE, s3_bucket_name=None), lambda: 1)
    assert info.value.setting == "s3_bucket_name"
    message = str(info.value)
    assert (
        "another account" in message and "amazon-braket-covalent-us-east-1-123456789012" in message
    )
    assert (
        foreign.list_objects_v2(Bucket="amazon-braket-covalent-job-resources").get("KeyCount") == 0
    )
    assert jobs(aws) == []


def test_s3_calls_name_the_expected_bucket_owner(aws: Any) -> None:
    executor = hosted(braket_job_execution_role_name=ROLE, cleanup=True)
    aws.control.clear_journal()
    assert run(executor, lambda: "mine") == "mine"
    from covalent_braket_plugin.results import wait_for_cleanups

    wait_for_cleanups()
    s3_calls = [
        e for e in aws.control.journal(service="s3") if e["accessKeyId"] == CLIENT_ACCESS_KEY
    ]
    assert s3_calls
    # The journal keeps the query, not the headers: the owner check is shown by the refusal
    # above; here, that every call of ours went through (none was refused for want of it).
    assert all(e["status"] < 400 for e in s3_calls), s3_calls


def test_a_transient_error_looking_up_the_bucket_is_not_an_invalid_setting(aws: Any) -> None:
    aws.control.faults(fail={"HeadBucket": 50})
    with pytest.raises(AwsError) as info:  # (a time limit of its own: a pre-flight of its own)
        run(hosted(braket_job_execution_role_name=ROLE, time_limit=4321), lambda: 1)
    assert not isinstance(info.value, InvalidSettingError)
    assert info.value.transient
    assert jobs(aws) == []


# ---------------------------------------------------------------------------- IAM
def test_a_role_with_a_path_is_used_by_its_real_arn(aws: Any) -> None:
    with_path = "arn:aws:iam::123456789012:role/service-role/AmazonBraketJobsExecutionRole-a1"
    provision(BUCKET, with_path, IMAGE, client=aws.control.client)
    executor = hosted(braket_job_execution_role_name="AmazonBraketJobsExecutionRole-a1")
    assert run(executor, lambda: "pathed") == "pathed"
    job = aws.braket.get_job(jobArn=executor._handle)
    assert job["roleArn"] == with_path


# ---------------------------------------------------------------------------- Regions
def test_a_qpu_in_another_region_runs_in_its_own_region(aws: Any) -> None:
    aws.control.add_devices([{"arn": RIGETTI, "name": "Ankaa-3", "qubitCount": 8}])
    west = "123456789012.dkr.ecr.us-west-1.amazonaws.com/covalent-braket:latest"
    provision(
        "amazon-braket-covalent-west",
        ROLE,
        west,
        client=lambda service: aws.control.client(service, region_name="us-west-1"),
    )
    executor = hosted(
        braket_job_execution_role_name=ROLE,
        region="us-east-1",
        quantum_device=RIGETTI,
        s3_bucket_name="amazon-braket-covalent-west",
        ecr_image_uri=west,
    )
    assert run(executor, lambda: os.environ["AWS_REGION"]) == "us-west-1"
    assert executor._handle.startswith("arn:aws:braket:us-west-1:123456789012:job/")
    assert [job["jobArn"] for job in jobs(aws, "us-west-1")] == [executor._handle]
    assert jobs(aws, "us-east-1") == []
    # Found in its own Region (elsewhere: ResourceNotFoundException); it has completed.
    assert asyncio.run(executor.cancel({}, executor._handle)) is False


@pytest.mark.parametrize(
    ("changes", "setting", "named"),
    [
        ({"region": "ap-south-1"}, "region", "us-east-1, us-west-1"),
        (
            {"quantum_device": RIGETTI},  # job in us-west-1; bucket and image in us-east-1
            "s3_bucket_name",
            "us-east-1",
        ),
        (
            {
                "quantum_device": RIGETTI,
                "s3_bucket_name": "amazon-braket-covalent-west",
            },  # image in us-east-1
            "ecr_image_uri",
            "us-west-1",
        ),
    ],
)
def test_each_region_mismatch_is_named_before_anything_is_created(
    aws: Any, changes: dict[str, Any], setting: str, named: str
) -> None:
    aws.control.add_devices([{"arn": RIGETTI, "name": "Ankaa-3", "qubitCount": 8}])
    provision(
        "amazon-braket-covalent-west",
        ROLE,
        "123456789012.dkr.ecr.us-west-1.amazonaws.com/covalent-braket:latest",
        client=lambda service: aws.control.client(service, region_name="us-west-1"),
    )
    aws.control.clear_journal()
    with pytest.raises(InvalidSettingError) as info:
        run(hosted(braket_job_execution_role_name=ROLE, **changes), lambda: 1)
    assert info.value.setting == setting
    assert named in str(info.value)
    assert jobs(aws) == [] and jobs(aws, "us-west-1") == []
    assert not [e for e in aws.control.journal() if e["operation"] in ("PutObject", "CreateJob")]


# ---------------------------------------------------------------------------- lag, errors
def test_the_lag_before_a_new_job_is_seen_is_survived(aws: Any) -> None:
    aws.settings(job_visibility_seconds=3)
    assert run(hosted(braket_job_execution_role_name=ROLE), lambda: "seen") == "seen"
    assert len(jobs(aws)) == 1


def test_one_jobs_error_does_not_fail_its_neighbours(aws: Any) -> None:
    def slow(value: int) -> int:
        import time as _time

        _time.sleep(4)
        return value

    async def scenario() -> list[Any]:
        executors = [hosted(braket_job_execution_role_name=ROLE, poll_freq=0.5) for _ in range(3)]
        tasks = [
            asyncio.create_task(
                executor.run(
                    slow, [i], {}, {"dispatch_id": "5e55-deny", "node_id": i, "results_dir": "/tmp"}
                )
            )
            for i, executor in enumerate(executors)
        ]
        while any(executor._handle is None for executor in executors):
            await asyncio.sleep(0.05)
        denied = executors[1]._handle
        aws.control.enforce_policy(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "*", "Resource": "*"},
                    {"Effect": "Deny", "Action": "braket:SearchJobs", "Resource": "*"},
                    {"Effect": "Deny", "Action": "braket:GetJob", "Resource": denied},
                ],
            }
        )
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert outcomes[0] == 0 and outcomes[2] == 2
    assert isinstance(outcomes[1], AwsError) and outcomes[1].code == "AccessDeniedException"


def test_expired_credentials_are_refreshed_and_the_job_followed_to_its_end(
    aws: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    iam = aws.control.client("iam")  # two keys of one user, as IAM issues them
    iam.create_user(UserName="lab")
    first, following = (iam.create_access_key(UserName="lab")["AccessKey"] for _ in range(2))
    profile = (
        "[lab]\naws_access_key_id = {AccessKeyId}\naws_secret_access_key = {SecretAccessKey}\n"
    )
    credentials = tmp_path / "credentials"
    credentials.write_text(profile.format(**first))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    executor = hosted(
        braket_job_execution_role_name=ROLE, credentials=str(credentials), profile="lab"
    )

    def slow() -> str:
        import time as _time

        _time.sleep(5)
        return "outlived"

    def expire_once_submitted() -> None:
        deadline = time.monotonic() + 60
        while executor._handle is None and time.monotonic() < deadline:
            time.sleep(0.05)
        aws.control.faults(expired_keys=[first["AccessKeyId"]])  # the session ends ...
        credentials.write_text(profile.format(**following))

    thread = threading.Thread(target=expire_once_submitted)
    thread.start()
    assert run(executor, slow) == "outlived"  # ... and a refreshed one follows the job
    thread.join()
    assert aws.control.faults()["injected"]["expired"] >= 1
    used = {e["accessKeyId"] for e in aws.control.journal(service="braket")}
    assert {first["AccessKeyId"], following["AccessKeyId"]} <= used


def test_a_throttled_create_job_leaves_one_job_and_its_inputs(aws: Any) -> None:
    # Carried out, its answer lost; then throttled past every retry of botocore's.
    aws.control.faults(lose={"CreateJob": 1}, throttle={"CreateJob": 8})
    assert run(hosted(braket_job_execution_role_name=ROLE, cleanup=False), lambda: "once") == "once"
    assert len(jobs(aws)) == 1
    assert any(key.endswith("runner.tar.gz") for key in keys(aws))


def test_a_lifecycle_put_sets_the_minimum_transition_size_as_s3_does(aws: Any) -> None:
    """S3 keeps a lifecycle configuration's ``TransitionDefaultMinimumObjectSize``: the one a
    PUT names, or its default when the PUT names none (so a PUT that drops it changes it)."""
    bucket = "amazon-braket-lifecycle-size"
    aws.s3.create_bucket(Bucket=bucket)
    rules = {"Rules": [{"ID": "a", "Status": "Enabled", "Filter": {"Prefix": "a/"},
                        "Expiration": {"Days": 3}}]}  # fmt: skip
    put = aws.s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration=rules,
        TransitionDefaultMinimumObjectSize="varies_by_storage_class",
    )
    assert put["TransitionDefaultMinimumObjectSize"] == "varies_by_storage_class"
    found = aws.s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert found["TransitionDefaultMinimumObjectSize"] == "varies_by_storage_class"
    aws.s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules)
    found = aws.s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert found["TransitionDefaultMinimumObjectSize"] == "all_storage_classes_128K"
