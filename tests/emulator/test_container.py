"""Jobs run as Amazon's job container runs them: the archive read by its name, requirements
honoured without touching the emulator's environment, the entry point in a child process, the
container's own log lines, input channels under their names, outputs only of a completed job,
queue information whenever asked for, and nothing written outside the job's directory."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET
from tests.emulator.test_jobs import job_request, wait_for

pytestmark = pytest.mark.timeout(180)

COMPLETED_OR_FAILED = {"COMPLETED", "FAILED"}


def tarball(members: dict[str, str]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as archive:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def upload(aws: Any, data: bytes, name: str) -> str:
    key = f"scripts/{uuid.uuid4().hex}/{name}"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    return f"s3://{BUCKET}/{key}"


def run_job(aws: Any, script_uri: str, entry_point: str = "job:main", **changes: Any) -> dict:
    request = job_request(script_uri, **changes)
    request["algorithmSpecification"]["scriptModeConfig"]["entryPoint"] = entry_point
    arn = aws.braket.create_job(**request)["jobArn"]
    return wait_for(aws, arn, COMPLETED_OR_FAILED, timeout=120)


def log_of(aws: Any, job: dict) -> str:
    streams = aws.logs.describe_log_streams(
        logGroupName="/aws/braket/jobs", logStreamNamePrefix=f"{job['jobName']}/"
    )["logStreams"]
    return "\n".join(
        event["message"]
        for stream in streams
        for event in aws.logs.get_log_events(
            logGroupName="/aws/braket/jobs", logStreamName=stream["logStreamName"]
        )["events"]
    )


def output_keys(aws: Any) -> list[str]:
    listed = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix="jobs/out/").get("Contents", [])
    return [item["Key"] for item in listed]


def test_a_completed_job_logs_as_the_container_does_and_runs_in_a_child_process(aws: Any) -> None:
    script = (
        "import json, multiprocessing, os\n"
        "def main():\n"
        "    print('job says hello')\n"
        "    here = {'child': multiprocessing.parent_process() is not None, 'cwd': os.getcwd()}\n"
        "    open(os.path.join(os.environ['AMZN_BRAKET_JOB_RESULTS_DIR'], 'where.json'), 'w')"
        ".write(json.dumps(here))\n"
    )
    job = run_job(aws, upload(aws, tarball({"job.py": script}), "source.tar.gz"))
    assert job["status"] == "COMPLETED", job.get("failureReason")
    log = log_of(aws, job)
    for line in (
        '"user_entry_point": "braket_container.py"',
        "Invoking script with the following command:",
        "braket_container.py",
        "Running Code As Process",
        "job says hello",
        "Code Run Finished",
        "Reporting training SUCCESS",
    ):
        assert line in log
    body = aws.s3.get_object(Bucket=BUCKET, Key="jobs/out/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        where = json.loads(archive.extractfile("where.json").read())
    assert where["child"] is True
    assert where["cwd"].endswith("customer_code/extracted")


def test_a_module_entry_point_runs_as_python_dash_m(aws: Any) -> None:
    script = "import os\nif __name__ == '__main__':\n    print('run as main', __name__)\n"
    job = run_job(aws, upload(aws, tarball({"job.py": script}), "source.tar.gz"), "job")
    assert job["status"] == "COMPLETED", job.get("failureReason")
    assert "run as main __main__" in log_of(aws, job)


def test_a_failed_job_uploads_no_results_and_its_failure_file_is_the_reason(aws: Any) -> None:
    script = "def main():\n    print('about to fail')\n    open('fake_file')\n"
    job = run_job(aws, upload(aws, tarball({"job.py": script}), "source.tar.gz"))
    assert job["status"] == "FAILED"
    assert job["failureReason"] == (
        "AlgorithmError: FileNotFoundError: [Errno 2] No such file or directory: 'fake_file', "
        "exit code: 1"
    )
    assert output_keys(aws) == []  # no model.tar.gz
    log = log_of(aws, job)
    assert "Code Run Finished" in log and "Reporting training FAILURE" in log


def test_a_setup_failure_exits_0_and_still_fails_the_job(aws: Any) -> None:
    job = run_job(aws, f"s3://{BUCKET}/scripts/missing/source.tar.gz")
    assert job["status"] == "FAILED"
    assert job["failureReason"].startswith("AlgorithmError: Unable to download code.")
    assert job["failureReason"].endswith("exit code: 0")


def test_the_archive_format_is_read_from_its_name(aws: Any) -> None:
    script = "def main():\n    print('from a zip')\n"
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("job.py", script)
    job = run_job(aws, upload(aws, raw.getvalue(), "source.zip"))  # compressionType GZIP
    assert job["status"] == "COMPLETED", job.get("failureReason")
    assert "from a zip" in log_of(aws, job)

    misnamed = run_job(aws, upload(aws, tarball({"job.py": script}), "runner.gz"))
    assert misnamed["status"] == "FAILED"  # as on AWS: ".gz" is not a tar archive's name
    assert "Got an exception while trying to unpack archive" in misnamed["failureReason"]


def test_requirements_are_honoured_without_touching_the_emulators_environment(aws: Any) -> None:
    from importlib import metadata

    missing = "surely-not-a-package-" + uuid.uuid4().hex[:8]
    members = {
        "job.py": "def main():\n    print('ran anyway')\n",
        "requirements.txt": f"pytest>=1\n{missing}==1.0\n",
        "sub/requirements.txt": "# only a comment\n",
    }
    job = run_job(aws, upload(aws, tarball(members), "source.tar.gz"))
    assert job["status"] == "COMPLETED", job.get("failureReason")  # pip's status is ignored
    log = log_of(aws, job)
    assert "Checking for Additional Requirements" in log
    assert "Requirement already satisfied: pytest>=1" in log
    assert f"ERROR: No matching distribution found for {missing}==1.0" in log
    assert "Additional Requirements Check Finished" in log and "ran anyway" in log
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version(missing)


def test_input_channels_keep_their_file_names(aws: Any) -> None:
    for key in ("data/single.csv", "data/dir/a.txt", "data/dir/sub/b.txt", "data/multi.csv"):
        aws.s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    aws.s3.put_object(Bucket=BUCKET, Key="data/multi/x.txt", Body=b"x")
    script = (
        "import json, os\n"
        "def main():\n"
        "    root = os.environ['AMZN_BRAKET_INPUT_DIR']\n"
        "    found = sorted(os.path.relpath(os.path.join(d, f), root)\n"
        "                   for d, _, files in os.walk(root) for f in files)\n"
        "    print('FOUND', json.dumps(found))\n"
    )
    channels = [
        {"channelName": name, "dataSource": {"s3DataSource": {"s3Uri": f"s3://{BUCKET}/{path}"}}}
        for name, path in (
            ("file", "data/single.csv"),
            ("dir", "data/dir/"),
            ("multi", "data/multi"),
        )
    ]
    job = run_job(
        aws, upload(aws, tarball({"job.py": script}), "source.tar.gz"), inputDataConfig=channels
    )
    assert job["status"] == "COMPLETED", job.get("failureReason")
    found = json.loads(log_of(aws, job).split("FOUND ", 1)[1].splitlines()[0])
    assert found == [
        "dir/a.txt",
        "dir/sub/b.txt",
        "file/single.csv",
        "multi/multi.csv",
        "multi/multi/x.txt",
    ]


def test_nothing_lands_outside_the_jobs_directory(aws: Any) -> None:
    outside = Path(aws.emulator.work_dir)
    aws.s3.put_object(Bucket=BUCKET, Key="chan/../../../../escaped-input.txt", Body=b"x")
    aws.s3.put_object(Bucket=BUCKET, Key="chan/inside.txt", Body=b"y")
    listed = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix="chan/")["Contents"]
    assert "chan/../../../../escaped-input.txt" in [item["Key"] for item in listed]
    channels = [
        {"channelName": "c", "dataSource": {"s3DataSource": {"s3Uri": f"s3://{BUCKET}/chan/"}}}
    ]
    script = (
        "import os\ndef main():\n"
        "    print('STAGED', sorted(os.listdir(os.environ['AMZN_BRAKET_INPUT_DIR'] + '/c')))\n"
    )
    job = run_job(
        aws, upload(aws, tarball({"job.py": script}), "source.tar.gz"), inputDataConfig=channels
    )
    assert job["status"] == "COMPLETED", job.get("failureReason")
    assert "STAGED ['inside.txt']" in log_of(aws, job)

    hostile = tarball({"job.py": "def main():\n    pass\n", "../../../escaped-member.txt": "x"})
    job = run_job(aws, upload(aws, hostile, "source.tar.gz"))
    assert job["status"] == "FAILED"
    assert "Got an exception while trying to unpack archive" in job["failureReason"]
    # Anywhere under the emulator's directory, or beside it and its parent: where the keys'
    # and member's ../ would take them from a job's directory.
    assert not list(outside.rglob("escaped-*"))
    for beside in (outside.parent, outside.parent.parent):
        assert not list(beside.glob("escaped-*")), beside


def test_queue_information_is_given_whenever_it_is_asked_for(aws: Any) -> None:
    aws.settings(queue_seconds=30, max_concurrent_jobs=1)
    script = upload(aws, tarball({"job.py": "def main():\n    pass\n"}), "source.tar.gz")
    arns = [aws.braket.create_job(**job_request(script))["jobArn"] for _ in range(3)]
    infos = [
        aws.braket.get_job(jobArn=arn, additionalAttributeNames=["QueueInfo"])["queueInfo"]
        for arn in arns
    ]
    assert [info["position"] for info in infos] == ["1", "2", "3"]
    assert {info["queue"] for info in infos} == {"JOBS_QUEUE"}
    assert "queueInfo" not in aws.braket.get_job(jobArn=arns[0])
    for arn in arns:
        aws.braket.cancel_job(jobArn=arn)
    info = aws.braket.get_job(jobArn=arns[0], additionalAttributeNames=["QueueInfo"])["queueInfo"]
    assert info["position"] == "None"
    assert "does not show queue position" in info["message"]
