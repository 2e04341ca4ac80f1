"""Emulated jobs started by the warm launcher: the same container contract as a fresh process,
each job in its own environment and directory, and the launcher visible in the health
endpoint and the journal. (The launcher on its own: ``test_launcher.py``.)"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.conftest import BUCKET
from tests.emulator.test_jobs import job_request, upload_script, wait_for

pytestmark = pytest.mark.timeout(180)

REPORTER = (
    "import json, os, sys, boto3\n"
    "def main():\n"
    "    hp = json.load(open(os.environ['AMZN_BRAKET_HP_FILE']))\n"
    "    seen = {'cwd': os.getcwd(), 'mark': os.environ.get('JOB_MARK'),\n"
    "            'hp': hp, 'name': os.environ['AMZN_BRAKET_JOB_NAME'],\n"
    "            'warm': 'covalent' in sys.modules, 'pid': os.getpid()}\n"
    "    os.environ['JOB_MARK'] = hp['mark']  # must not reach the next job\n"
    "    boto3.client('s3').put_object(Bucket=os.environ['AMZN_BRAKET_OUT_S3_BUCKET'],\n"
    "        Key='seen/' + hp['mark'] + '.json', Body=json.dumps(seen))\n"
)


def seen(aws: Any, mark: str) -> dict[str, Any]:
    return json.loads(aws.s3.get_object(Bucket=BUCKET, Key=f"seen/{mark}.json")["Body"].read())


def test_jobs_are_forked_warm_each_in_its_own_environment_and_directory(aws: Any) -> None:
    script = upload_script(aws, REPORTER)
    arns = [
        aws.braket.create_job(**job_request(script, hyperParameters={"mark": f"m{i}"}))["jobArn"]
        for i in range(4)
    ]
    for arn in arns:
        job = wait_for(aws, arn, {"COMPLETED", "FAILED"})
        assert job["status"] == "COMPLETED", job.get("failureReason")
    reports = [seen(aws, f"m{i}") for i in range(4)]
    assert all(report["warm"] for report in reports)  # covalent was already imported
    assert all(report["mark"] is None for report in reports)
    assert len({report["cwd"] for report in reports}) == 4
    assert len({report["pid"] for report in reports}) == 4
    assert [report["hp"]["mark"] for report in reports] == ["m0", "m1", "m2", "m3"]

    launcher = aws.control.health()["launcher"]
    assert launcher["alive"] and launcher["jobs_forked"] >= 4
    assert "covalent" in launcher["preloaded"]
    forks = aws.control.events("launcher")
    assert sum(e["event"] == "fork" for e in forks) >= 4


def test_with_the_warm_launcher_off_jobs_start_as_fresh_processes(aws: Any) -> None:
    aws.settings(warm_launcher=False)
    before = aws.control.health()["launcher"]["jobs_forked"]
    script = upload_script(aws, REPORTER)
    arn = aws.braket.create_job(**job_request(script, hyperParameters={"mark": "cold"}))["jobArn"]
    assert wait_for(aws, arn, {"COMPLETED", "FAILED"})["status"] == "COMPLETED"
    assert seen(aws, "cold")["warm"] is False
    assert aws.control.health()["launcher"]["jobs_forked"] == before


def test_a_job_killed_mid_run_fails_and_the_next_one_still_runs_warm(aws: Any) -> None:
    sleeper = upload_script(aws, "import time\ndef main():\n    time.sleep(60)\n")
    arn = aws.braket.create_job(**job_request(sleeper))["jobArn"]
    wait_for(aws, arn, {"RUNNING"})
    deadline = time.monotonic() + 30
    while True:  # RUNNING is reported just before the process is up
        try:
            aws.control.kill_job(arn)
            break
        except ValueError:  # no process to kill yet
            assert time.monotonic() < deadline
            time.sleep(0.1)
    job = wait_for(aws, arn, {"FAILED", "COMPLETED"})
    assert job["status"] == "FAILED" and "signal 9" in job["failureReason"]
    script = upload_script(aws, REPORTER)
    after = aws.braket.create_job(**job_request(script, hyperParameters={"mark": "after"}))
    assert wait_for(aws, after["jobArn"], {"COMPLETED", "FAILED"})["status"] == "COMPLETED"
    assert seen(aws, "after")["warm"] is True
