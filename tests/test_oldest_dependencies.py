"""The oldest boto3 and botocore that pyproject.toml allows run a task."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from covalent_braket_plugin.testing import emulator_env
from tests.conftest import BUCKET, IMAGE, ROLE

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parent.parent

TASK = """
import asyncio, io, sys
import boto3, botocore
assert (boto3.__version__, botocore.__version__) == (sys.argv[1], sys.argv[2]), botocore.__version__
from covalent_braket_plugin.braket import BraketExecutor

class Hosted(BraketExecutor):
    async def get_cancel_requested(self): return False
    async def get_version_info(self): return {}
    async def set_job_handle(self, handle): pass

executor = Hosted(s3_bucket_name=sys.argv[3], ecr_image_uri=sys.argv[4],
                  braket_job_execution_role_name=sys.argv[5], poll_freq=0.3)
executor._task_stdout, executor._task_stderr = io.StringIO(), io.StringIO()
metadata = {"dispatch_id": "oldest-botocore", "node_id": 0, "results_dir": "/tmp"}
print("RESULT", asyncio.run(executor.run(lambda x: x * 2, [21], {}, metadata)))
"""


def floor(package: str) -> str:
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(rf'"{package}>=([\d.]+)', text).group(1)


def test_the_oldest_allowed_boto3_and_botocore_run_a_task(aws: Any, tmp_path: Path) -> None:
    boto3_floor, botocore_floor = floor("boto3"), floor("botocore")
    target = tmp_path / "oldest"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(target),
            f"boto3=={boto3_floor}",
            f"botocore=={botocore_floor}",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        **emulator_env(aws.url),
        "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)]),
    }
    done = subprocess.run(
        [sys.executable, "-c", TASK, boto3_floor, botocore_floor, BUCKET, IMAGE, ROLE],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "RESULT 42" in done.stdout
