"""A job runs in the environment of its image: Braket-in-a-box runs a script-mode job on an
image registered with an environment (``image_environments``) in that environment only, so a
package the image lacks fails the electron as on AWS, and the job's ``requirements.txt`` is
installed with pip for real, in the job's run time. The BYOC image's environment is built
from the Dockerfile's own requirements file (``job-image-requirements.txt``) on this Python.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from covalent._shared_files.exceptions import TaskRuntimeError

from covalent_braket_plugin import aws as aws_module
from covalent_braket_plugin.braket import BraketJobError
from covalent_braket_plugin.emulator.runtime import environments
from covalent_braket_plugin.service import managed_image_uri
from tests.conftest import IMAGE
from tests.test_braket import hosted, run

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job cannot import the tests
pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "{}.{}".format(*sys.version_info[:2])
MANAGED = managed_image_uri("amazon-braket-base-jobs", "us-east-1")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("image-environments")


@pytest.fixture(scope="module")
def small_image(cache_dir: Path) -> dict[str, Any]:
    """An image with only what the job runner needs: boto3 and the server's cloudpickle."""
    requirements = cache_dir / "small-requirements.txt"
    requirements.write_text(f"boto3\ncloudpickle=={metadata.version('cloudpickle')}\n")
    spec = {"python": sys.executable, "requirements": [str(requirements)]}
    environments.python_of(environments.check_spec(IMAGE, spec), cache_dir)  # built once
    return spec


@pytest.fixture(scope="module")
def byoc_image(cache_dir: Path) -> dict[str, Any]:
    """The BYOC image's Python packages: the Dockerfile's quantum stack, and cloudpickle."""
    extra = cache_dir / "byoc-extra.txt"
    extra.write_text(f"cloudpickle=={metadata.version('cloudpickle')}\n")
    files = [str(ROOT / "job-image-requirements.txt"), str(extra)]
    spec = {"python": sys.executable, "requirements": files}
    environments.python_of(environments.check_spec(IMAGE, spec), cache_dir)
    return spec


def job_log(aws: Any) -> str:
    return "".join(
        event["message"] + "\n"
        for stream in aws.logs.describe_log_streams(logGroupName="/aws/braket/jobs")["logStreams"]
        for event in aws.logs.get_log_events(
            logGroupName="/aws/braket/jobs", logStreamName=stream["logStreamName"]
        )["events"]
    )


def first_line(aws: Any) -> str:
    return next(line for line in job_log(aws).splitlines() if line.strip())


def in_the_image(cache_dir: Path, aws: Any, image: str, spec: dict[str, Any]) -> None:
    aws.settings(environments_cache_dir=str(cache_dir))
    aws.control.image_environment(
        image,
        python=spec.get("python"),
        **{key: value for key, value in spec.items() if key != "python"},
    )


def where_am_i() -> str:
    return sys.prefix


def imports_moto() -> str:
    import moto  # in Braket-in-a-box's environment, never in a job image's

    return moto.__version__


def test_a_job_on_a_registered_image_runs_in_its_environment_only(
    aws: Any, cache_dir: Path, small_image: dict[str, Any]
) -> None:
    in_the_image(cache_dir, aws, IMAGE, small_image)
    prefix = run(hosted(), where_am_i)
    assert prefix != sys.prefix and prefix.endswith("environment")  # the job's own layer
    assert first_line(aws) == f"(emulator) running in the environment of image {IMAGE}"

    with pytest.raises(TaskRuntimeError, match="No module named 'moto'"):
        run(hosted(), imports_moto)


def test_an_image_without_an_environment_runs_in_the_emulators_and_says_so(aws: Any) -> None:
    assert run(hosted(), where_am_i) == sys.prefix
    assert "has no registered environment" in first_line(aws)
    assert "checked, not installed" in first_line(aws)


def test_the_command_line_and_the_fixture_register_environments(aws: Any, tmp_path: Path) -> None:
    import argparse

    from covalent_braket_plugin.cli.emulator_command import _settings, add_command

    parser = argparse.ArgumentParser()
    add_command(parser.add_subparsers())
    args = parser.parse_args(
        ["emulator", "--image-environment", f"{IMAGE}={tmp_path}",
         "--image-environment", "other:1=a.txt,b.txt"]
    )  # fmt: skip
    assert _settings(args).image_environments == {
        IMAGE: {"venv": str(tmp_path)},
        "other:1": {"python": sys.executable, "requirements": ["a.txt", "b.txt"]},
    }
    aws.control.image_environment(IMAGE, requirements=tmp_path / "r.txt")
    aws.control.image_environment("other:1", venv=tmp_path)
    assert aws.settings()["image_environments"] == {
        IMAGE: {"python": sys.executable, "requirements": [str(tmp_path / "r.txt")]},
        "other:1": {"venv": str(tmp_path)},
    }


def test_a_bad_registration_is_refused_naming_the_image(aws: Any) -> None:
    with pytest.raises(Exception, match=r"image_environments\['x'\] must be"):
        aws.settings(image_environments={"x": {"conda": "base"}})


def test_an_environment_that_cannot_be_built_fails_the_job_before_it_runs(
    aws: Any, tmp_path: Path
) -> None:
    in_the_image(tmp_path, aws, IMAGE, {"requirements": [str(tmp_path / "missing.txt")]})
    with pytest.raises(BraketJobError, match=r"CannotStartContainerError.*missing\.txt"):
        run(hosted(), where_am_i)


def uses_idna() -> str:
    import idna  # nothing the runner needs depends on it

    return idna.__version__


def test_requirements_are_installed_for_real_in_the_jobs_run_time(
    aws: Any, cache_dir: Path, small_image: dict[str, Any]
) -> None:
    aws_module.reset_cache()
    aws.settings(managed_image_python=PYTHON)
    in_the_image(cache_dir, aws, MANAGED, small_image)
    executor = hosted(ecr_image_uri="", requirements=["idna==3.10"])
    assert run(executor, uses_idna) == "3.10"
    log = job_log(aws)
    assert "Successfully installed idna-3.10" in log  # pip's own line, in the job's log
    assert f"Requirement already satisfied: cloudpickle=={metadata.version('cloudpickle')}" in log

    # the install was the job's: the image's environment is as it was built
    with pytest.raises(TaskRuntimeError, match="No module named 'idna'"):
        run(hosted(ecr_image_uri=""), uses_idna)


def test_an_unreachable_package_index_fails_the_install_and_names_the_package(
    aws: Any, cache_dir: Path, small_image: dict[str, Any]
) -> None:
    aws_module.reset_cache()
    aws.settings(managed_image_python=PYTHON, package_index="http://127.0.0.1:9/simple/")
    in_the_image(cache_dir, aws, MANAGED, small_image)
    with pytest.raises(BraketJobError, match="idna"):
        run(hosted(ecr_image_uri="", requirements=["idna==3.10"]), uses_idna)
    assert "No matching distribution found for idna==3.10" in job_log(aws)


def bell_on_sv1() -> dict[str, Any]:
    from importlib import metadata

    import pennylane as qml
    from braket.aws import AwsDevice
    from braket.circuits import Circuit

    device = AwsDevice("arn:aws:braket:::device/quantum-simulator/amazon/sv1")
    counts = device.run(Circuit().h(0).cnot(0, 1), shots=200).result().measurement_counts
    wires = qml.device("default.qubit", wires=1)
    names = ("amazon-braket-sdk", "amazon-braket-pennylane-plugin", "pennylane", "numpy")
    return {
        "outcomes": sorted(counts),
        "shots": sum(counts.values()),
        "versions": {name: metadata.version(name) for name in names},
        "pennylane_device": wires.name,
    }


def pins() -> dict[str, str]:
    """What job-image-requirements.txt pins on this Python."""
    from packaging.requirements import Requirement

    found = {}
    for line in (ROOT / "job-image-requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate():
                found[requirement.name] = str(requirement.specifier).removeprefix("==")
    return found


def imports_qiskit() -> str:
    import qiskit  # not in the BYOC image's requirements

    return qiskit.__version__


def test_the_byoc_image_runs_a_circuit_on_sv1_and_lacks_what_it_does_not_install(
    aws: Any, cache_dir: Path, byoc_image: dict[str, Any]
) -> None:
    in_the_image(cache_dir, aws, IMAGE, byoc_image)
    found = run(hosted(), bell_on_sv1)
    assert found["outcomes"] == ["00", "11"] and found["shots"] == 200
    wanted = pins()
    assert found["versions"] == {name: wanted[name] for name in found["versions"]}
    assert found["pennylane_device"]

    with pytest.raises(TaskRuntimeError, match="No module named 'qiskit'"):
        run(hosted(), imports_qiskit)


def index_manifest(*platforms: tuple[str, str]) -> str:
    """An OCI image index, as ``docker buildx`` pushes one (with its attestation entry)."""
    import json

    entries = [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + f"{i:064x}",
            "size": 1000,
            "platform": {"os": system, "architecture": arch},
        }
        for i, (system, arch) in enumerate(platforms, start=1)
    ]
    entries.append(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + "f" * 64,
            "size": 500,
            "platform": {"os": "unknown", "architecture": "unknown"},
        }
    )
    return json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": entries}
    )  # fmt: skip


@pytest.mark.parametrize(
    ("tag", "platforms", "refused"),
    [
        ("arm", [("linux", "arm64")], True),
        ("multi", [("linux", "arm64"), ("linux", "amd64")], False),
    ],
)
def test_an_image_without_linux_amd64_fails_as_on_aws(
    aws: Any, tag: str, platforms: list[tuple[str, str]], refused: bool
) -> None:
    ecr = aws.control.client("ecr")
    ecr.put_image(
        repositoryName="covalent-braket", imageManifest=index_manifest(*platforms), imageTag=tag
    )
    image = IMAGE.rsplit(":", 1)[0] + f":{tag}"
    if not refused:
        assert run(hosted(ecr_image_uri=image), where_am_i)
        return
    with pytest.raises(BraketJobError, match="exec format error") as info:
        run(hosted(ecr_image_uri=image), where_am_i)
    assert "linux/arm64" in str(info.value) and "unknown" not in str(info.value)
