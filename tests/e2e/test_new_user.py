"""A new user's path on Braket-in-a-box, as the README tells it, with no hand edits: Covalent
has written its covalent.conf (the plugin's defaults in ``[executors.braket]``); ``covalent-braket
setup`` (or, separately, ``covalent-braket emulator --provision``) makes the resources and
writes the settings into that section; ``doctor`` passes; the user's own workflow runs through
a real Covalent server; ``jobs`` shows what it cost."""

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


def covalent_writes_its_conf(env: dict[str, str]) -> Path:
    """What installing the plugin and running covalent once leaves: covalent.conf with the
    plugin's defaults in ``[executors.braket]``."""
    code = (
        "import covalent.executor; from covalent._shared_files.config import get_config; "
        "get_config()"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    conf = Path(env["COVALENT_CONFIG_DIR"]) / "covalent.conf"
    assert "[executors.braket]" in conf.read_text()
    return conf


def braket_section(conf: Path) -> dict[str, Any]:
    import toml

    return toml.loads(conf.read_text())["executors"]["braket"]  # one section: it parses


def doctor_passes(env: dict[str, str]) -> None:
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
        "image",
        "device",
        "bucket encryption",
        "bucket access",
    } <= set(verdicts)


def workflow_and_its_cost(braket: Any, env: dict[str, str], home: Path, server_env: dict) -> None:
    """The user's own workflow through a real Covalent server, then ``jobs`` with a cost."""
    with CovalentServer(env=server_env, home=home) as server:
        result = run(server, scan, [0.0, 0.5])
        assert str(result.status) == "COMPLETED", diagnose(result)
        assert result.result == [1.0, round(math.cos(0.5), 6)]
        listed = command(env, "jobs", result.dispatch_id)
    jobs = jobs_of(None, result.dispatch_id, braket=braket)
    assert len(jobs) == 2 and {job["status"] for job in jobs} == {"COMPLETED"}
    settings = braket_section(Path(env["COVALENT_CONFIG_DIR"]) / "covalent.conf")
    job = braket.get_job(jobArn=jobs[0]["jobArn"])
    assert job["outputDataConfig"]["s3Path"].startswith(f"s3://{settings['s3_bucket_name']}/")
    assert job["roleArn"].endswith(":role/CovalentBraketJobsExecutionRole")
    assert listed.returncode == 0, listed.stderr
    assert "Estimated total: USD" in listed.stdout and "2 of 2 jobs" in listed.stdout, listed.stdout


def test_setup_then_doctor_then_a_workflow_then_its_cost_with_no_hand_edits(
    aws: Any, tmp_path: Path
) -> None:
    aws.control.reset()  # nothing but what setup makes: no bucket, no role, no image
    home = tmp_path / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BRAKET_"))},
        **covalent_env(home),
        **emulator_env(aws.url),
    }
    conf = covalent_writes_its_conf(env)

    made = command(env, "setup")
    assert made.returncode == 0, made.stderr
    assert "created" in made.stdout and f"Wrote the settings into [executors.braket] of {conf}" in (
        made.stdout
    )
    settings = braket_section(conf)
    assert settings["s3_bucket_name"] == "amazon-braket-covalent-us-east-1-123456789012"
    assert settings["poll_freq"] == 30  # Covalent's defaults for the rest are kept

    again = command(env, "setup")
    assert again.returncode == 0 and "nothing was created or changed" in again.stdout
    assert "already has these settings" in again.stdout

    doctor_passes(env)
    workflow_and_its_cost(aws.braket, env, home, emulator_env(aws.url))


def test_emulator_provision_then_doctor_then_a_workflow_with_no_hand_edits(
    tmp_path: Path,
) -> None:
    """The standalone emulator's ``--provision``, as a newcomer starts it, and its exports."""
    import shlex

    home = tmp_path / "home"
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BRAKET_"))},
        **covalent_env(home),
    }
    conf = covalent_writes_its_conf(base)
    process = subprocess.Popen(
        [*CLI, "emulator", "--port", "0", "--provision"],
        env=base,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        while not lines or not lines[-1].startswith("Start the Covalent server"):
            lines.append(process.stdout.readline())  # type: ignore[union-attr]
            assert lines[-1], "".join(lines)
        printed = "".join(lines)
        exported = next(line for line in lines if line.strip().startswith("export "))
        exports = dict(pair.split("=", 1) for pair in shlex.split(exported)[1:])
        env = {**base, **exports}
        assert f"Wrote the settings into [executors.braket] of {conf}" in printed, printed
        assert braket_section(conf)["s3_bucket_name"] == (
            "amazon-braket-covalent-us-east-1-123456789012"
        )
        doctor_passes(env)
        import boto3

        braket = boto3.client(
            "braket",
            endpoint_url=exports["AWS_ENDPOINT_URL"],
            region_name=exports["AWS_DEFAULT_REGION"],
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
        )
        workflow_and_its_cost(braket, env, home, exports)
    finally:
        process.terminate()
        process.wait(timeout=30)
