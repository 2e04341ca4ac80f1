"""Managed-image mode: with ``ecr_image_uri`` left empty, the job runs on Amazon's base jobs
image of its Region, which runs one Python. The executor reads that Python from the image's
full tag, refuses a mismatch before anything is created, ships a ``requirements.txt`` that
pins cloudpickle to the server's version by its hashes (the electron travels unwrapped from
Covalent's wrapper, so the job needs no covalent), the ``requirements`` setting's packages in a
file of their own, and the runner checks the pins before it unpickles: the container ignores
pip's exit status.
"""

from __future__ import annotations

import io
import sys
import tarfile
from importlib import metadata
from typing import Any

import pytest

from covalent_braket_plugin import aws as aws_module
from covalent_braket_plugin import images
from covalent_braket_plugin.braket import BraketJobError
from covalent_braket_plugin.config import InvalidSettingError
from covalent_braket_plugin.job import runner
from covalent_braket_plugin.service import managed_image_uri
from tests.conftest import BUCKET
from tests.test_braket import hosted, keys, run

pytestmark = pytest.mark.timeout(120)

PYTHON = "{}.{}".format(*sys.version_info[:2])
OTHER_PYTHON = "3.12" if PYTHON != "3.12" else "3.11"
MANAGED = managed_image_uri("amazon-braket-base-jobs", "us-east-1")


@pytest.fixture(autouse=True)
def _fresh_image_knowledge() -> Any:
    aws_module.reset_cache()  # what an earlier test learnt of the managed image's Python
    yield
    aws_module.reset_cache()


def job_archive(aws: Any) -> dict[str, bytes]:
    """The members of the only job's script archive."""
    (job,) = aws.braket.search_jobs(filters=[])["jobs"]
    described = aws.braket.get_job(jobArn=job["jobArn"])
    uri = described["algorithmSpecification"]["scriptModeConfig"]["s3Uri"]
    bucket, key = uri[len("s3://") :].split("/", 1)
    body = aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        return {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
        }


def only_job(aws: Any) -> dict[str, Any]:
    (job,) = aws.braket.search_jobs(filters=[])["jobs"]
    return aws.braket.get_job(jobArn=job["jobArn"])


def test_an_electron_runs_on_the_managed_image_with_the_servers_versions_pinned(
    aws: Any,
) -> None:
    aws.settings(managed_image_python=PYTHON)
    executor = hosted(ecr_image_uri="", requirements=["packaging>=20"], cleanup=False)
    assert run(executor, lambda x: x * 7, 6) == 42

    job = only_job(aws)
    assert job["algorithmSpecification"]["containerImage"]["uri"] == MANAGED
    version = metadata.version("cloudpickle")
    assert job["hyperParameters"][runner.HP_REQUIRED] == f"cloudpickle=={version}"
    archive = job_archive(aws)
    (mode, pinned) = archive["requirements.txt"].decode().splitlines()
    assert mode == "--require-hashes"
    wheel, sdist = images.CLOUDPICKLE_SHA256[version]
    assert pinned == f"cloudpickle=={version} --hash=sha256:{wheel} --hash=sha256:{sdist}"
    assert archive[runner.USER_REQUIREMENTS_FILE].decode().splitlines() == ["packaging>=20"]


def test_a_python_mismatch_is_refused_with_nothing_created(aws: Any) -> None:
    aws.settings(managed_image_python=OTHER_PYTHON)
    with pytest.raises(InvalidSettingError) as info:
        run(hosted(ecr_image_uri=""), lambda: 1)
    message = str(info.value)
    assert "ecr_image_uri" in message
    assert f"Python {OTHER_PYTHON}" in message and f"Python {PYTHON}" in message
    assert "PYTHON_VERSION" in message  # the other way out: build our image for this Python
    assert keys(aws) == []
    assert aws.braket.search_jobs(filters=[])["jobs"] == []


def test_a_requirements_file_is_shipped_as_the_job_installs_it(aws: Any, tmp_path: Any) -> None:
    aws.settings(managed_image_python=PYTHON)
    listed = tmp_path / "requirements.txt"
    listed.write_text("# for the electron\npackaging\n\nboto3>=1\n")
    assert (
        run(hosted(ecr_image_uri="", requirements=str(listed), cleanup=False), lambda: "ok") == "ok"
    )
    lines = job_archive(aws)[runner.USER_REQUIREMENTS_FILE].decode().splitlines()
    assert lines == ["# for the electron", "packaging", "boto3>=1"]


def test_own_image_ships_only_the_users_requirements(aws: Any) -> None:
    assert run(hosted(requirements=["packaging"], cleanup=False), lambda: "ok") == "ok"
    archive = job_archive(aws)
    assert "requirements.txt" not in archive
    assert archive[runner.USER_REQUIREMENTS_FILE] == b"packaging\n"
    assert runner.HP_REQUIRED not in only_job(aws)["hyperParameters"]


def test_own_image_without_requirements_ships_none(aws: Any) -> None:
    assert run(hosted(cleanup=False), lambda: "ok") == "ok"
    assert "requirements.txt" not in job_archive(aws)


@pytest.mark.parametrize(
    ("requirement", "named"),
    [
        ("surely-not-a-package-here==1.0", "surely-not-a-package-here (wanted ==1.0, found none"),
        (
            "cloudpickle==0.0.1",
            f"cloudpickle (wanted ==0.0.1, found {metadata.version('cloudpickle')})",
        ),
    ],
)
def test_a_missing_or_wrong_package_is_named_and_the_electron_never_runs(
    aws: Any, requirement: str, named: str
) -> None:
    aws.settings(managed_image_python=PYTHON)
    ran = []

    def electron() -> str:
        ran.append(1)
        return "ran"

    with pytest.raises(BraketJobError) as info:
        run(hosted(ecr_image_uri="", requirements=[requirement]), electron)
    assert named in str(info.value)
    log = "".join(
        event["message"]
        for stream in aws.logs.describe_log_streams(logGroupName="/aws/braket/jobs")["logStreams"]
        for event in aws.logs.get_log_events(
            logGroupName="/aws/braket/jobs", logStreamName=stream["logStreamName"]
        )["events"]
    )
    assert "No matching distribution found for " + requirement in log  # pip's line, ignored


def test_the_runner_checks_the_executors_pins() -> None:
    found = metadata.version("cloudpickle")
    runner._check_requirements(f"cloudpickle=={found}", "")
    with pytest.raises(
        runner.RunnerSetupError, match=rf"cloudpickle \(wanted ==0\.1, found {found}\)"
    ):
        runner._check_requirements("cloudpickle==0.1", "")
    with pytest.raises(runner.RunnerSetupError, match=r"covalent-nowhere \(wanted ==1"):
        runner._check_requirements("covalent-nowhere==1", "")
    # what cannot be a package name is pip's business, not the runner's
    runner._check_requirements("", "-r other.txt\n./local\nhttps://x/y.whl\n# note\n")
    runner._check_requirements("", 'packaging ; python_version >= "3"\n')


def test_requirements_setting_is_validated() -> None:
    with pytest.raises(InvalidSettingError, match="requirements"):
        hosted(requirements=42)
    with pytest.raises(InvalidSettingError, match="requirements"):
        hosted(requirements=["ok", ""])
    _ = BUCKET


def test_a_requirement_from_another_index_draws_a_warning(
    aws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An index other than PyPI chooses the code the job runs (and an extra one can shadow a
    PyPI package by name): the server log says so, once."""
    from covalent_braket_plugin.covalent_loader import server_log

    settings = hosted(
        requirements=["--extra-index-url https://packages.example/simple", "packaging"]
    ).settings()
    with caplog.at_level("WARNING", logger=server_log.name):
        image = images.prepare(settings, PYTHON)
        images.prepare(settings, PYTHON)
    assert "--extra-index-url https://packages.example/simple" in image.user_requirements
    warned = [r.getMessage() for r in caplog.records if "another package index" in r.getMessage()]
    assert len(warned) == 1 and "--extra-index-url" in warned[0], warned
    caplog.clear()
    with caplog.at_level("WARNING", logger=server_log.name):
        images.prepare(hosted(requirements=["packaging==24.1"]).settings(), PYTHON)
    assert not [r for r in caplog.records if "another package index" in r.getMessage()]
