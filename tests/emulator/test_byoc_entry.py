"""A "bring your own container" job image's entry, run as Braket runs it, against the emulator.

In a BYOC image the SageMaker training toolkit runs ``python braket_container.py --name value
...`` (the hyperparameters as arguments) in ``/opt/ml/code``; the Dockerfile writes that script
to run :mod:`covalent_braket_plugin.job.container`. Here the same script (read from the
Dockerfile), or ``python -m covalent_braket_plugin.job.container``, runs with the script-mode
environment Braket gives a job: ``AMZN_BRAKET_*``, the hyperparameters file under ``/opt/ml``
read through the ``/opt/braket`` link, the ``/opt`` tree in a scratch directory. The job is the
executor's own: its input and runner archive uploaded by ``transfer.upload_task``, its
``CreateJob`` request made by ``job_request.create_job_request``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from covalent_braket_plugin import aws as aws_module
from covalent_braket_plugin import signing, transfer
from covalent_braket_plugin.config import BraketSettings
from covalent_braket_plugin.job.container import ROOT_VARIABLE
from covalent_braket_plugin.job.runner import RESULT_KEY, read_result_header
from covalent_braket_plugin.job_request import Submission, create_job_request
from covalent_braket_plugin.location import TaskLocation
from tests.conftest import BUCKET, IMAGE, ROLE
from tests.test_dockerfile import container_script

pytestmark = pytest.mark.timeout(120)

MODULE = [sys.executable, "-m", "covalent_braket_plugin.job.container"]


def submitted(payload: Any, node: str) -> tuple[TaskLocation, dict[str, Any]]:
    """Upload ``payload`` as the executor does; the ``CreateJob`` request it would send."""
    settings = BraketSettings.from_mapping({"s3_bucket_name": BUCKET, "ecr_image_uri": IMAGE})
    location = TaskLocation.new(BUCKET, f"byoc-{uuid.uuid4().hex[:8]}", node)
    upload = transfer.upload_task(settings, location, payload)
    submission = Submission(
        role_arn=ROLE,
        image_uri=IMAGE,
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
        digest=upload.sha256,
        client_token=upload.client_token,
        bucket_owner=aws_module.caller_account(settings)[0],
        result_key=signing.attempt_key(location.uri, location.job_name).hex(),
    )
    request = create_job_request(settings, location, submission)
    return location, request


def container_tree(root: Path, request: dict[str, Any]) -> dict[str, str]:
    """The job's ``/opt`` tree in ``root`` and the environment Braket gives its container."""
    config = root / "opt" / "ml" / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(request["hyperParameters"]))
    script = request["algorithmSpecification"]["scriptModeConfig"]
    return {
        **os.environ,  # the emulator's endpoint and credentials, set by the aws fixture
        ROOT_VARIABLE: str(root),
        "AMZN_BRAKET_JOB_NAME": request["jobName"],
        "AMZN_BRAKET_DEVICE_ARN": request["deviceConfig"]["device"],
        "AMZN_BRAKET_HP_FILE": str(root / "opt/braket/input/config/hyperparameters.json"),
        "AMZN_BRAKET_JOB_RESULTS_DIR": str(root / "opt/braket/model"),
        "AMZN_BRAKET_CHECKPOINT_DIR": str(root / "opt/jobs/checkpoints"),
        "AMZN_BRAKET_SCRIPT_S3_URI": script["s3Uri"],
        "AMZN_BRAKET_SCRIPT_ENTRY_POINT": script["entryPoint"],
        "AMZN_BRAKET_SCRIPT_COMPRESSION_TYPE": script["compressionType"],
        "PYTHONUNBUFFERED": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def toolkit_command(root: Path, request: dict[str, Any]) -> tuple[list[str], Path]:
    """What the training toolkit runs: ``$SAGEMAKER_PROGRAM`` in ``/opt/ml/code``, with the
    hyperparameters as arguments."""
    program, text = container_script()
    code = root / "opt" / "ml" / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / program).write_text(text)
    arguments = [
        part for name, value in request["hyperParameters"].items() for part in (f"--{name}", value)
    ]
    return [sys.executable, program, *arguments], code


def run_container(root: Path, request: dict[str, Any], how: str) -> subprocess.CompletedProcess:
    env = container_tree(root, request)
    if how == "toolkit":
        command, cwd = toolkit_command(root, request)
    else:
        command, cwd = MODULE, root
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=100)


def result(aws: Any, location: TaskLocation) -> dict[str, Any]:
    body = aws.s3.get_object(Bucket=BUCKET, Key=location.key(RESULT_KEY))["Body"]
    read_result_header(body)  # the runner's authenticated header, then the pickle
    return cloudpickle.loads(body.read())


@pytest.mark.parametrize("how", ["toolkit", "module"])
def test_the_entry_runs_an_electron_from_the_executors_archive(
    aws: Any, tmp_path: Path, how: str
) -> None:
    def electron(x: int, y: int, scale: float = 1.0) -> dict[str, Any]:
        import multiprocessing
        import os

        print("electron says hello")
        child = multiprocessing.parent_process() is not None
        return {"sum": (x + y) * scale, "child": child, "cwd": os.getcwd()}

    location, request = submitted((electron, [2, 3], {"scale": 2.0}), node=how)
    done = run_container(tmp_path, request, how)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in ("Beginning Setup", "Running Code As Process", "Code Run Finished"):
        assert line in done.stdout
    assert "electron says hello" in done.stdout
    assert not (tmp_path / "opt/ml/output/failure").exists()
    assert (tmp_path / "opt/braket").resolve() == (tmp_path / "opt/ml").resolve()

    outcome = result(aws, location)
    assert outcome["ok"] is True, outcome
    assert outcome["result"]["sum"] == 10.0
    assert outcome["result"]["child"] is True  # in the container's child process
    extracted = tmp_path / "opt/ml/code/customer_code/extracted"
    assert Path(outcome["result"]["cwd"]).resolve() == extracted.resolve()
    assert outcome["stdout"] == "electron says hello\n"
    assert outcome["job_name"] == request["jobName"]


def test_an_electron_that_raises_fails_the_container_with_the_reason(
    aws: Any, tmp_path: Path
) -> None:
    def electron() -> None:
        raise ValueError("boom")

    location, request = submitted((electron, [], {}), node="fails")
    done = run_container(tmp_path, request, "module")
    assert done.returncode == 1
    assert "Code Run Finished" in done.stdout
    failure = (tmp_path / "opt/ml/output/failure").read_text()
    assert failure == "CovalentTaskError: the electron raised ValueError: boom"
    outcome = result(aws, location)
    assert (outcome["ok"], outcome["exception_type"], outcome["exception"]) == (
        False,
        "ValueError",
        "boom",
    )


def test_a_setup_failure_is_written_to_the_failure_file_and_exits_0(
    aws: Any, tmp_path: Path
) -> None:
    request = {
        "jobName": "byoc-missing",
        "deviceConfig": {"device": "local:none/none"},
        "hyperParameters": {},
        "algorithmSpecification": {
            "scriptModeConfig": {
                "s3Uri": f"s3://{BUCKET}/missing/source.tar.gz",
                "entryPoint": "job:main",
                "compressionType": "GZIP",
            }
        },
    }
    done = run_container(tmp_path, request, "module")
    assert done.returncode == 0
    failure = (tmp_path / "opt/ml/output/failure").read_text()
    assert failure.startswith("Unable to download code.\nException: ")
    assert "Running Code As Process" not in done.stdout


def test_a_real_image_installs_requirements_with_pip_and_goes_on(aws: Any, tmp_path: Path) -> None:
    members = {
        "job.py": "def main():\n    print('ran after pip')\n",
        "requirements.txt": "pytest>=1\n",
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as archive:
        for name, text in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            archive.addfile(info, io.BytesIO(text.encode()))
    key = f"scripts/{uuid.uuid4().hex}/source.tar.gz"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=raw.getvalue())
    request = {
        "jobName": "byoc-requirements",
        "deviceConfig": {"device": "local:none/none"},
        "hyperParameters": {},
        "algorithmSpecification": {
            "scriptModeConfig": {
                "s3Uri": f"s3://{BUCKET}/{key}",
                "entryPoint": "job:main",
                "compressionType": "GZIP",
            }
        },
    }
    done = run_container(tmp_path, request, "module")
    assert done.returncode == 0, done.stdout + done.stderr
    log = done.stdout
    assert "Checking for Additional Requirements" in log
    assert "Requirement already satisfied: pytest>=1" in log  # said by pip itself
    assert "Additional Requirements Check Finished" in log and "ran after pip" in log
