"""A new user's path on Braket-in-a-box, as the README tells it: ``covalent-braket setup``,
the section it prints pasted into covalent.conf, their own workflow through a real Covalent
server, then ``covalent-braket doctor``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import covalent as ct
import pytest

from covalent_braket_plugin.testing import CovalentServer, covalent_env, emulator_env
from tests.e2e.helpers import diagnose, jobs_of, run

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CLI = [sys.executable, "-m", "covalent_braket_plugin.cli"]


@ct.electron(executor="braket")  # everything from covalent.conf, as setup printed it
def energy(theta: float) -> float:
    import math

    return round(math.cos(theta), 6)


@ct.lattice
def scan(thetas: list) -> list:
    return [energy(theta) for theta in thetas]


def command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_setup_then_a_workflow_then_doctor_on_a_fresh_emulator(aws: Any, tmp_path: Path) -> None:
    aws.control.reset()  # nothing but what setup makes: no bucket, no role, no image
    home = tmp_path / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        **covalent_env(home),
        **emulator_env(aws.url),
    }

    made = command(env, "setup")
    assert made.returncode == 0, made.stderr
    assert "created" in made.stdout
    section = made.stdout[made.stdout.index("[executors.braket]") :]
    settings = {
        key.strip(): json.loads(value)
        for key, value in (line.split("=", 1) for line in section.splitlines()[1:] if "=" in line)
    }
    assert settings["s3_bucket_name"] == "amazon-braket-covalent-us-east-1-123456789012"
    conf = home / ".config" / "covalent" / "covalent.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    # Pasted as printed; a shorter poll than the default 30 s, as a user in a hurry would.
    conf.write_text('[dispatcher]\naddress = "127.0.0.1"\n\n' + section + "\npoll_freq = 1\n")

    again = command(env, "setup")
    assert again.returncode == 0 and "nothing was created or changed" in again.stdout

    with CovalentServer(env=emulator_env(aws.url), home=home) as server:
        result = run(server, scan, [0.0, 0.5])
    assert str(result.status) == "COMPLETED", diagnose(result)
    assert result.result == [1.0, round(math.cos(0.5), 6)]
    jobs = jobs_of(aws, result.dispatch_id)
    assert len(jobs) == 2 and {job["status"] for job in jobs} == {"COMPLETED"}
    job = aws.braket.get_job(jobArn=jobs[0]["jobArn"])
    assert job["outputDataConfig"]["s3Path"].startswith(f"s3://{settings['s3_bucket_name']}/")
    assert job["roleArn"].endswith(":role/CovalentBraketJobsExecutionRole")

    checked = command(env, "doctor", "--json")
    verdicts = {check["name"]: check["status"] for check in json.loads(checked.stdout)}
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The emulator's placeholder image has no Python in its tag: the job checks it instead.
    assert verdicts.pop("image python") == "unknown"
    assert set(verdicts.values()) == {"ok"}, checked.stdout
    assert {
        "covalent.conf",
        "bucket",
        "job role trust",
        "job role permissions",
        "permissions",
    } <= set(verdicts)
    assert {"image", "device", "bucket encryption", "bucket access"} <= set(verdicts)
