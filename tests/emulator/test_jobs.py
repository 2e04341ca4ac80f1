"""The emulator's hybrid-jobs API, exercised over boto3 (the real wire protocol)."""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import BUCKET, IMAGE, ROLE, SV1

pytestmark = pytest.mark.timeout(120)


def upload_script(aws: Any, source: str, key: str | None = None) -> str:
    """Upload ``source`` as ``job.py`` in a gzip tarball; return its S3 URI."""
    data = source.encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as archive:
        info = tarfile.TarInfo("job.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    key = key or f"scripts/{uuid.uuid4().hex}.tar.gz"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=raw.getvalue())
    return f"s3://{BUCKET}/{key}"


def job_request(script_uri: str = f"s3://{BUCKET}/none.tar.gz", **changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "jobName": f"job-{uuid.uuid4().hex[:12]}",
        "roleArn": ROLE,
        "algorithmSpecification": {
            "scriptModeConfig": {
                "entryPoint": "job:main",
                "s3Uri": script_uri,
                "compressionType": "GZIP",
            },
            "containerImage": {"uri": IMAGE},
        },
        "deviceConfig": {"device": SV1},
        "instanceConfig": {"instanceType": "ml.m5.large", "volumeSizeInGb": 30},
        "outputDataConfig": {"s3Path": f"s3://{BUCKET}/jobs/out"},
        "stoppingCondition": {"maxRuntimeInSeconds": 300},
    }
    request.update(changes)
    return request


def wait_for(aws: Any, arn: str, states: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = aws.braket.get_job(jobArn=arn)
        if job["status"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {arn} did not reach {states}; last {job['status']}")


def error_of(call: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response
    return (
        error["Error"]["Code"],
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["Error"]["Message"],
    )


# ---------------------------------------------------------------------------- validation
_BAD = [
    ("name with underscore", {"jobName": "bad_name"}, "jobName"),
    ("name too long", {"jobName": "a" * 51}, "jobName"),
    ("name starting with dash", {"jobName": "-abc"}, "jobName"),
    (
        "instance type",
        {"instanceConfig": {"instanceType": "ml.m5.huge", "volumeSizeInGb": 30}},
        "instanceType",
    ),
    (
        "volume size",
        {"instanceConfig": {"instanceType": "ml.m5.large", "volumeSizeInGb": 0}},
        "volumeSizeInGb",
    ),
    (
        "instance count",
        {
            "instanceConfig": {
                "instanceType": "ml.m5.large",
                "volumeSizeInGb": 1,
                "instanceCount": 0,
            }
        },
        "instanceCount",
    ),
    ("runtime zero", {"stoppingCondition": {"maxRuntimeInSeconds": 0}}, "maxRuntimeInSeconds"),
    (
        "runtime too long",
        {"stoppingCondition": {"maxRuntimeInSeconds": 432_001}},
        "maxRuntimeInSeconds",
    ),
    ("role ARN", {"roleArn": "arn:aws:iam::12345:role/x"}, "roleArn"),
    (
        "image URI",
        {"algorithmSpecification": {"containerImage": {"uri": "docker.io/library/python:3.11"}}},
        "containerImage.uri",
    ),
    ("no algorithm", {"algorithmSpecification": {}}, "algorithmSpecification"),
    (
        "compression",
        {
            "algorithmSpecification": {
                "scriptModeConfig": {
                    "entryPoint": "a:b",
                    "s3Uri": "s3://b/k",
                    "compressionType": "BZIP2",
                }
            }
        },
        "compressionType",
    ),
    (
        "script URI",
        {
            "algorithmSpecification": {
                "scriptModeConfig": {"entryPoint": "a:b", "s3Uri": "/local/path"}
            }
        },
        "s3Uri",
    ),
    (
        "too many hyperparameters",
        {"hyperParameters": {f"k{i}": "v" for i in range(101)}},
        "hyperParameters",
    ),
    ("hyperparameter too long", {"hyperParameters": {"k": "v" * 2501}}, "hyperParameters"),
    (
        "too many channels",
        {
            "inputDataConfig": [
                {"channelName": f"c{i}", "dataSource": {"s3DataSource": {"s3Uri": "s3://b/k"}}}
                for i in range(21)
            ]
        },
        "inputDataConfig",
    ),
    ("output path", {"outputDataConfig": {"s3Path": "not-s3"}}, "outputDataConfig.s3Path"),
]


@pytest.mark.parametrize(("case", "changes", "field"), _BAD, ids=[case[0] for case in _BAD])
def test_create_job_rejects_what_braket_rejects(
    aws: Any, case: str, changes: dict, field: str
) -> None:
    code, status, message = error_of(lambda: aws.braket.create_job(**job_request(**changes)))
    assert (code, status) == ("ValidationException", 400)
    assert field in message
    assert aws.braket.search_jobs(filters=[])["jobs"] == []


def test_job_name_is_unique_per_account(aws: Any) -> None:
    request = job_request()
    aws.braket.create_job(**request)
    request["clientToken"] = str(uuid.uuid4())
    code, status, _ = error_of(lambda: aws.braket.create_job(**request))
    assert (code, status) == ("ConflictException", 409)


def test_jobs_are_kept_per_region_and_per_account(aws: Any) -> None:
    from botocore.config import Config

    west = aws.control.client("braket", region_name="us-west-2")
    north = aws.control.client("braket", region_name="eu-north-1")
    arn = west.create_job(**job_request(jobName="same-name"))["jobArn"]
    assert arn.startswith("arn:aws:braket:us-west-2:123456789012:job/")
    assert west.get_job(jobArn=arn)["jobName"] == "same-name"
    assert error_of(lambda: north.get_job(jobArn=arn))[:2] == ("ResourceNotFoundException", 404)
    assert north.search_jobs(filters=[])["jobs"] == []
    assert north.create_job(**job_request(jobName="same-name"))["jobArn"] != arn  # its own name

    # Another account (credentials of a role assumed there, as moto issues them): another world.
    credentials = aws.control.client("sts").assume_role(
        RoleArn="arn:aws:iam::210987654321:role/elsewhere", RoleSessionName="test"
    )["Credentials"]
    other = aws.control.client(
        "braket",
        region_name="us-west-2",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        config=Config(parameter_validation=False),
    )
    assert error_of(lambda: other.get_job(jobArn=arn))[:2] == ("ResourceNotFoundException", 404)
    mine = other.create_job(**job_request(jobName="same-name"))["jobArn"]
    assert mine.startswith("arn:aws:braket:us-west-2:210987654321:job/")


def test_client_token_makes_create_job_idempotent(aws: Any) -> None:
    request = job_request(clientToken=str(uuid.uuid4()))
    first = aws.braket.create_job(**request)["jobArn"]
    second = aws.braket.create_job(**request)["jobArn"]
    assert first == second
    assert len(aws.braket.search_jobs(filters=[])["jobs"]) == 1


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"jobName": 5}'])
def test_malformed_request_is_a_validation_error_not_a_crash(aws: Any, body: bytes) -> None:
    import urllib.error
    import urllib.request

    from covalent_braket_plugin.testing import signed_headers

    request = urllib.request.Request(
        f"{aws.url}/job",
        data=body,
        method="POST",
        headers=signed_headers("POST", f"{aws.url}/job", "braket", body=body),
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 400
    assert info.value.headers["x-amzn-ErrorType"] == "ValidationException"
    assert "message" in json.loads(info.value.read())


# ---------------------------------------------------------------------------- lifecycle
def test_completed_job_has_events_times_logs_and_results(aws: Any) -> None:
    script = upload_script(
        aws,
        "import os, pathlib\n"
        "def main():\n"
        "    print('hello from the job', os.environ['AMZN_BRAKET_JOB_NAME'])\n"
        "    results = os.environ['AMZN_BRAKET_JOB_RESULTS_DIR']\n"
        "    pathlib.Path(results, 'answer.txt').write_text('42')\n",
    )
    arn = aws.braket.create_job(**job_request(script))["jobArn"]
    job = wait_for(aws, arn, {"COMPLETED", "FAILED"})
    assert job["status"] == "COMPLETED", job.get("failureReason")
    events = [event["eventType"] for event in job["events"]]
    assert events[0] == "QUEUED_FOR_EXECUTION"
    assert events.index("RUNNING") < events.index("COMPLETED") == len(events) - 1
    assert job["startedAt"] <= job["endedAt"]
    assert job["billableDuration"] >= 0

    streams = aws.logs.describe_log_streams(
        logGroupName="/aws/braket/jobs", logStreamNamePrefix=f"{job['jobName']}/"
    )["logStreams"]
    assert len(streams) == 1
    messages = [
        event["message"]
        for event in aws.logs.get_log_events(
            logGroupName="/aws/braket/jobs", logStreamName=streams[0]["logStreamName"]
        )["events"]
    ]
    assert f"hello from the job {job['jobName']}" in messages

    body = aws.s3.get_object(Bucket=BUCKET, Key="jobs/out/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        assert archive.extractfile("answer.txt").read() == b"42"


def test_job_sees_the_container_contract(aws: Any) -> None:
    script = upload_script(
        aws,
        "import json, os, boto3\n"
        "def main():\n"
        "    names = [k for k in os.environ if k.startswith('AMZN_BRAKET_')]\n"
        "    hp = json.load(open(os.environ['AMZN_BRAKET_HP_FILE']))\n"
        "    env = {k: os.environ[k] for k in names}\n"
        "    env['hp'] = hp\n"
        "    env['endpoint'] = os.environ.get('AWS_ENDPOINT_URL')\n"
        "    boto3.client('s3').put_object(Bucket=os.environ['AMZN_BRAKET_OUT_S3_BUCKET'],\n"
        "        Key='contract.json', Body=json.dumps(env))\n",
    )
    request = job_request(script, hyperParameters={"shots": "100"})
    arn = aws.braket.create_job(**request)["jobArn"]
    assert wait_for(aws, arn, {"COMPLETED", "FAILED"})["status"] == "COMPLETED"
    seen = json.loads(aws.s3.get_object(Bucket=BUCKET, Key="contract.json")["Body"].read())
    assert seen["hp"] == {"shots": "100"}
    assert seen["endpoint"] == aws.url
    assert seen["AMZN_BRAKET_DEVICE_ARN"] == SV1
    assert seen["AMZN_BRAKET_JOB_NAME"] == request["jobName"]
    assert (
        seen["AMZN_BRAKET_TASK_RESULTS_S3_URI"] == f"s3://{BUCKET}/jobs/{request['jobName']}/tasks"
    )
    for name in (
        "AMZN_BRAKET_JOB_RESULTS_DIR",
        "AMZN_BRAKET_CHECKPOINT_DIR",
        "AMZN_BRAKET_INPUT_DIR",
        "AMZN_BRAKET_SCRIPT_S3_URI",
        "AMZN_BRAKET_SCRIPT_ENTRY_POINT",
        "AMZN_BRAKET_JOB_TOKEN",
    ):
        assert seen[name]


def test_failed_job_reports_the_algorithm_error(aws: Any) -> None:
    script = upload_script(aws, "def main():\n    raise ValueError('boom')\n")
    arn = aws.braket.create_job(**job_request(script))["jobArn"]
    job = wait_for(aws, arn, {"COMPLETED", "FAILED"})
    assert job["status"] == "FAILED"
    assert job["failureReason"] == "AlgorithmError: ValueError: boom, exit code: 1"
    assert job["events"][-1]["eventType"] == "FAILED"


def test_max_runtime_is_enforced_as_aws_stops_a_job(aws: Any, tmp_path: Any) -> None:
    """At maxRuntimeInSeconds the container's main process gets SIGTERM, which the training
    toolkit (process 1, no handler) neither dies of nor passes on: the job's code runs on
    until everything is killed ``stop_grace_seconds`` later (AWS: 120 s; 4 here)."""
    aws.settings(stop_grace_seconds=4)
    beats = tmp_path / "beats"
    script = upload_script(
        aws,
        "import time\n"
        "def main():\n"
        "    started = time.monotonic()\n"
        "    while True:\n"
        f"        open({str(beats)!r}, 'a').write(f'{{time.monotonic() - started:.2f}}\\n')\n"
        "        time.sleep(0.1)\n",
    )
    request = job_request(script, stoppingCondition={"maxRuntimeInSeconds": 2})
    arn = aws.braket.create_job(**request)["jobArn"]
    job = wait_for(aws, arn, {"COMPLETED", "FAILED"}, timeout=30)
    assert job["status"] == "FAILED"
    assert "maxRuntimeInSeconds=2" in job["failureReason"]
    assert job["events"][-1]["eventType"] == "MAX_RUNTIME_EXCEEDED"
    last = float(beats.read_text().split()[-1])
    # Killed at the limit, its code would stop before 2 s of its own (it starts after the
    # job's clock does); it beats on past that through the grace, and stops at the kill.
    assert 2.5 < last < 8, last
    time.sleep(0.5)
    assert float(beats.read_text().split()[-1]) == last  # nothing runs after the kill


def test_queued_then_running_then_cancelled_with_the_process_stopped(aws: Any) -> None:
    aws.settings(queue_seconds=1.5)
    script = upload_script(
        aws,
        "import os, time, pathlib\n"
        "def main():\n"
        "    checkpoints = os.environ['AMZN_BRAKET_CHECKPOINT_DIR']\n"
        "    pathlib.Path(checkpoints, 'pid').write_text(str(os.getpid()))\n"
        "    time.sleep(120)\n",
    )
    arn = aws.braket.create_job(**job_request(script))["jobArn"]
    assert (
        aws.braket.get_job(jobArn=arn, additionalAttributeNames=["QueueInfo"])["status"] == "QUEUED"
    )
    wait_for(aws, arn, {"RUNNING"})
    job_root = aws.emulator.work_dir / arn.rsplit("/", 1)[1]
    pid_file = job_root / "opt" / "jobs" / "checkpoints" / "pid"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (pid_file.exists() and pid_file.read_text()):
        time.sleep(0.1)  # (the file may be there a moment before its text)
    pid = int(pid_file.read_text())

    answer = aws.braket.cancel_job(jobArn=arn)
    assert answer["cancellationStatus"] == "CANCELLING"
    job = wait_for(aws, arn, {"CANCELLED"})
    assert job["events"][-1]["eventType"] == "CANCELLED"
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)


def test_a_job_killed_while_its_process_starts_fails_killed(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RUNNING comes before the process exists (as the container starts on Braket): a kill in
    between is not lost, it kills the process as soon as there is one."""
    import threading

    launcher = aws.emulator.runtime.launcher
    spawning, release = threading.Event(), threading.Event()
    spawn = launcher.spawn

    def slow_spawn(*args: Any, **kwargs: Any) -> Any:
        spawning.set()
        release.wait(30)
        return spawn(*args, **kwargs)

    monkeypatch.setattr(launcher, "spawn", slow_spawn)
    script = upload_script(aws, "import time\ndef main():\n    time.sleep(60)\n")
    arn = aws.braket.create_job(**job_request(script))["jobArn"]
    assert spawning.wait(30)
    assert aws.braket.get_job(jobArn=arn)["status"] == "RUNNING"
    aws.control.kill_job(arn)  # no process yet: not a 404
    release.set()
    job = wait_for(aws, arn, {"COMPLETED", "FAILED"}, timeout=30)
    assert job["status"] == "FAILED"
    assert "killed by signal 9" in job["failureReason"]


def test_cancel_while_queued(aws: Any) -> None:
    aws.settings(queue_seconds=30)
    arn = aws.braket.create_job(**job_request())["jobArn"]
    aws.braket.cancel_job(jobArn=arn)
    job = wait_for(aws, arn, {"CANCELLED"}, timeout=10)
    assert "startedAt" in job and "RUNNING" not in [e["eventType"] for e in job["events"]]


def test_cancel_of_a_finished_job_is_a_conflict(aws: Any) -> None:
    script = upload_script(aws, "def main():\n    pass\n")
    arn = aws.braket.create_job(**job_request(script))["jobArn"]
    wait_for(aws, arn, {"COMPLETED"})
    code, status, _ = error_of(lambda: aws.braket.cancel_job(jobArn=arn))
    assert (code, status) == ("ConflictException", 409)


def test_missing_job_is_not_found(aws: Any) -> None:
    arn = f"arn:aws:braket:us-east-1:123456789012:job/{uuid.uuid4()}"
    for call in (lambda: aws.braket.get_job(jobArn=arn), lambda: aws.braket.cancel_job(jobArn=arn)):
        code, status, _ = error_of(call)
        assert (code, status) == ("ResourceNotFoundException", 404)


def test_concurrency_limit_keeps_extra_jobs_queued(aws: Any) -> None:
    aws.settings(max_concurrent_jobs=1)
    script = upload_script(aws, "import time\ndef main():\n    time.sleep(3)\n")
    first = aws.braket.create_job(**job_request(script))["jobArn"]
    wait_for(aws, first, {"RUNNING"})
    second = aws.braket.create_job(**job_request(script))["jobArn"]
    time.sleep(1)
    assert aws.braket.get_job(jobArn=second)["status"] == "QUEUED"
    wait_for(aws, second, {"COMPLETED"})


# ---------------------------------------------------------------------------- search and tags
def test_search_jobs_filters_and_pages(aws: Any) -> None:
    arns = [aws.braket.create_job(**job_request())["jobArn"] for _ in range(5)]
    paginator = aws.braket.get_paginator("search_jobs")
    pages = list(paginator.paginate(filters=[], PaginationConfig={"PageSize": 2}))
    assert [len(page["jobs"]) for page in pages] == [2, 2, 1]
    assert {job["jobArn"] for page in pages for job in page["jobs"]} == set(arns)
    one = aws.braket.search_jobs(
        filters=[{"name": "jobArn", "operator": "EQUAL", "values": [arns[3]]}]
    )
    assert [job["jobArn"] for job in one["jobs"]] == [arns[3]]
    created = (
        aws.braket.get_job(jobArn=arns[2])["createdAt"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    )
    later = aws.braket.search_jobs(
        filters=[{"name": "createdAt", "operator": "GTE", "values": [created]}]
    )
    assert {job["jobArn"] for job in later["jobs"]} >= set(arns[2:])
    # The service filters on jobArn and createdAt only, with 1 to 10 values.
    for bad, named in (
        ({"name": "status", "operator": "EQUAL", "values": ["QUEUED"]}, "status"),
        ({"name": "jobArn", "operator": "EQUAL", "values": arns * 3}, "values"),
    ):
        code, _, message = error_of(lambda bad=bad: aws.braket.search_jobs(filters=[bad]))
        assert code == "ValidationException" and named in message


def test_tags_round_trip(aws: Any) -> None:
    arn = aws.braket.create_job(**job_request(tags={"a": "1"}))["jobArn"]
    aws.braket.tag_resource(resourceArn=arn, tags={"b": "2"})
    assert aws.braket.list_tags_for_resource(resourceArn=arn)["tags"] == {"a": "1", "b": "2"}
    aws.braket.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert aws.braket.list_tags_for_resource(resourceArn=arn)["tags"] == {"b": "2"}
    assert aws.braket.get_job(jobArn=arn)["tags"] == {"b": "2"}
