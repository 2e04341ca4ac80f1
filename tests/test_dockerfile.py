"""The job image's Dockerfile, read with Docker's own parser (the ``dockerfile`` package wraps
BuildKit's): it parses, its build arguments have defaults that fit the package, every Python
the package supports gets the right base (Amazon's base jobs image for 3.12, a
``python:<version>-slim`` "bring your own container" image otherwise), what it copies is in
the project, and a BYOC image starts our container script as the training toolkit expects."""

from __future__ import annotations

import importlib
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import dockerfile
import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from covalent_braket_plugin.service import MANAGED_IMAGE_REGISTRY

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
#: Amazon's base jobs image, as its developer guide names it.
AMAZON_BASE_JOBS_IMAGE = (
    f"{MANAGED_IMAGE_REGISTRY}.dkr.ecr.us-west-2.amazonaws.com/amazon-braket-base-jobs:latest"
)
#: Where the SageMaker training toolkit looks for ``$SAGEMAKER_PROGRAM``.
CODE_DIR = "/opt/ml/code"
#: The Python Amazon's managed images run.
AMAZON_PYTHON = "3.12"


def commands() -> tuple[Any, ...]:
    return dockerfile.parse_file(str(DOCKERFILE))


def global_args() -> dict[str, str | None]:
    """The ARGs before the first FROM (those FROM lines may use): name -> default."""
    found: dict[str, str | None] = {}
    for command in commands():
        if command.cmd == "FROM":
            break
        if command.cmd == "ARG":
            name, _, default = command.value[0].partition("=")
            found[name] = default if "=" in command.value[0] else None
    return found


def all_args() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for command in commands():
        if command.cmd == "ARG":
            name, _, default = command.value[0].partition("=")
            found.setdefault(name, default if "=" in command.value[0] else None)
    return found


def substitute(text: str, values: dict[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` as Docker expands them (an unknown name is empty)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), ""), text)


def stages() -> list[dict[str, Any]]:
    """Each build stage: its FROM (unexpanded), its name (or None) and its instructions."""
    found: list[dict[str, Any]] = []
    for command in commands():
        if command.cmd == "FROM":
            words = command.value
            name = words[2].lower() if len(words) == 3 and words[1].upper() == "AS" else None
            found.append({"from": words[0], "name": name, "commands": []})
        elif found:
            found[-1]["commands"].append(command)
    return found


def stage(name: str) -> dict[str, Any]:
    return next(s for s in stages() if s["name"] == name)


def base_image(**build_args: str) -> tuple[str, list[str]]:
    """The image the final stage is built on with ``build_args``, and the stages in between,
    found as BuildKit finds them: FROM is expanded with the global ARGs, and a name that is an
    earlier stage's is that stage."""
    values: dict[str, str] = {}
    for name, default in global_args().items():  # a default may use the ARGs before it
        values[name] = build_args.get(name, substitute(default or "", values))
    named = {s["name"]: substitute(s["from"], values) for s in stages() if s["name"]}
    image = substitute(stages()[-1]["from"], values)
    through: list[str] = []
    while image.lower() in named:
        through.append(image.lower())
        image = named[image.lower()]
    return image, through


def supported_pythons() -> list[str]:
    allowed = SpecifierSet(metadata.metadata("covalent-braket-plugin")["Requires-Python"])
    return [f"3.{minor}" for minor in range(6, 30) if f"3.{minor}.0" in allowed]


def requirement(name: str) -> Requirement:
    for line in metadata.requires("covalent-braket-plugin") or []:
        found = Requirement(line)
        if found.name == name and found.marker is None:
            return found
    raise AssertionError(f"covalent-braket-plugin does not require {name}")


def container_script() -> tuple[str, str]:
    """The BYOC image's ``$SAGEMAKER_PROGRAM``: its file name and the text written to it."""
    byoc = stage("byoc")
    program = None
    for command in byoc["commands"]:
        if command.cmd == "ENV" and "SAGEMAKER_PROGRAM" in command.value:
            words = list(command.value)
            program = words[words.index("SAGEMAKER_PROGRAM") + 1]
    assert program, "the BYOC stage sets no SAGEMAKER_PROGRAM"
    for command in byoc["commands"]:
        written = re.search(
            rf'echo "([^"$`\\]*)"\s*>\s*{re.escape(CODE_DIR)}/{re.escape(program)}\b',
            " ".join(command.value),
        )
        if command.cmd == "RUN" and written:
            return program, written.group(1) + "\n"
    raise AssertionError(f"the BYOC stage writes no {CODE_DIR}/{program}")


def test_the_dockerfile_parses_with_dockers_own_parser() -> None:
    parsed = commands()
    assert parsed and parsed[0].cmd in ("ARG", "FROM")
    known = {"ARG", "FROM", "ENV", "RUN", "COPY", "LABEL", "WORKDIR", "ENTRYPOINT", "CMD"}
    assert {command.cmd for command in parsed} <= known
    for named in (s["name"] for s in stages() if s["name"]):
        assert re.fullmatch(r"[a-z][a-z0-9\-_.]*", named), named  # BuildKit's stage-name rule


def test_the_build_arguments_have_defaults_that_fit_the_package() -> None:
    defaults = all_args()
    for name in (
        "PYTHON_VERSION",
        "BRAKET_BASE_IMAGE",
        "BASE",
        "COVALENT_VERSION",
        "CLOUDPICKLE_VERSION",
        "SAGEMAKER_TRAINING_VERSION",
    ):
        assert defaults.get(name), f"build argument {name} has no default"
    assert "PYTHON_VERSION" in global_args() and "BRAKET_BASE_IMAGE" in global_args()
    assert defaults["PYTHON_VERSION"] == AMAZON_PYTHON
    assert defaults["BRAKET_BASE_IMAGE"] == AMAZON_BASE_JOBS_IMAGE
    assert requirement("covalent").specifier.contains(defaults["COVALENT_VERSION"])
    assert requirement("cloudpickle").specifier.contains(defaults["CLOUDPICKLE_VERSION"])


def test_the_build_arguments_choose_what_is_installed() -> None:
    final = " ".join(" ".join(c.value) for c in stages()[-1]["commands"] if c.cmd == "RUN")
    assert '"covalent==${COVALENT_VERSION}"' in final
    assert '"cloudpickle==${CLOUDPICKLE_VERSION}"' in final
    assert "/tmp/covalent-braket-plugin" in final  # the plugin, from the build context
    byoc = " ".join(" ".join(c.value) for c in stage("byoc")["commands"] if c.cmd == "RUN")
    assert '"sagemaker-training==${SAGEMAKER_TRAINING_VERSION}"' in byoc


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12", "3.13"])
def test_each_supported_python_is_built_on_the_right_base(python: str) -> None:
    assert python in supported_pythons()
    image, through = base_image(PYTHON_VERSION=python)
    if python == AMAZON_PYTHON:
        assert (image, through) == (AMAZON_BASE_JOBS_IMAGE, [f"python-{python}"])
    else:
        assert (image, through) == (f"python:{python}-slim", [f"python-{python}", "byoc"])


def test_every_supported_python_has_a_base_and_the_default_is_amazons() -> None:
    assert {"3.10", "3.11", "3.12", "3.13"} <= set(supported_pythons())
    for python in supported_pythons():
        image, _ = base_image(PYTHON_VERSION=python)
        assert image in (AMAZON_BASE_JOBS_IMAGE, f"python:{python}-slim"), python
    assert base_image() == (AMAZON_BASE_JOBS_IMAGE, ["python-3.12"])
    # BASE=byoc: the BYOC image on any Python, 3.12 included.
    for python in supported_pythons():
        byoc = base_image(PYTHON_VERSION=python, BASE="byoc")
        assert byoc == (f"python:{python}-slim", ["byoc"]), python
    # A Python the package does not support names no stage: the build stops there.
    names = {s["name"] for s in stages()}
    assert not {f"python-{v}" for v in ("3.9", "3.14")} & names


def test_every_path_the_dockerfile_copies_is_in_the_project() -> None:
    copied = [c for c in commands() if c.cmd in ("COPY", "ADD")]
    assert copied
    for command in copied:
        assert not any(flag.startswith("--from") for flag in command.flags)
        for source in command.value[:-1]:
            assert (ROOT / source).exists(), f"{command.original}: {source} is not in the project"
    installed = ROOT / "covalent_braket_plugin" / "job" / "container.py"
    assert installed.exists()


def test_a_byoc_image_starts_our_container_script_as_the_toolkit_expects() -> None:
    program, text = container_script()
    assert program == "braket_container.py"  # the name Amazon's image runs, in its log lines
    module = re.fullmatch(r"from ([\w.]+) import main; main\(\)\n", text)
    assert module, text
    assert module.group(1) == "covalent_braket_plugin.job.container"
    assert callable(importlib.import_module(module.group(1)).main)
    compile(text, program, "exec")
    # Amazon's own image keeps its own script: nothing of ours is set in its stage.
    amazon = stage(f"python-{AMAZON_PYTHON}")
    assert not amazon["commands"]


IMAGE_REQUIREMENTS = ROOT / "job-image-requirements.txt"
#: What a Braket user's electron imports, which Amazon's base jobs image ships.
QUANTUM_STACK = {
    "amazon-braket-sdk",
    "amazon-braket-pennylane-plugin",
    "pennylane",
    "numpy",
    "scipy",
}


def image_requirements() -> list[Requirement]:
    lines = IMAGE_REQUIREMENTS.read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def test_every_stage_is_built_for_the_instances_braket_runs_on() -> None:
    """Every Braket instance type is x86_64: an image built on an Apple-silicon Mac would be
    arm64 and fail every job, unless each base is pinned to linux/amd64."""
    for command in commands():
        if command.cmd == "FROM" and command.value[0].lower() not in {
            s["name"] for s in stages() if s["name"]
        } | {"${base}"}:
            assert "--platform=linux/amd64" in command.flags, command.original


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.13"])
def test_the_byoc_image_installs_the_quantum_stack_for_its_python(python: str) -> None:
    """The BYOC stage installs the requirements file; for each Python it names exactly one
    pinned version of every package of the quantum stack, with the file's stated source."""
    byoc = stage("byoc")["commands"]
    copied = [c for c in byoc if c.cmd == "COPY" and c.value[0] == IMAGE_REQUIREMENTS.name]
    assert copied, "the BYOC stage does not copy the requirements file"
    installs = " ".join(" ".join(c.value) for c in byoc if c.cmd == "RUN")
    assert f"pip install --no-cache-dir -r {copied[0].value[-1]}" in installs
    environment = {"python_version": python, "sys_platform": "linux", "platform_machine": "x86_64"}
    chosen: dict[str, list[str]] = {}
    for found in image_requirements():
        if found.marker is None or found.marker.evaluate(environment):
            (pin,) = found.specifier
            assert pin.operator == "==", found
            chosen.setdefault(found.name, []).append(pin.version)
    assert set(chosen) >= QUANTUM_STACK
    assert all(len(versions) == 1 for versions in chosen.values()), chosen
    assert "amazon-braket-containers" in IMAGE_REQUIREMENTS.read_text()  # the stated source


def test_the_quantum_stack_is_amazons_where_the_python_allows() -> None:
    """On Python 3.11+ the BYOC image has the versions of Amazon's image (scipy aside, whose
    1.18 needs 3.12), so an electron behaves the same on both."""
    amazons = {
        "amazon-braket-sdk": "1.125.0",
        "amazon-braket-pennylane-plugin": "1.35.1",
        "pennylane": "0.45.1",
        "numpy": "2.2.6",
        "scipy": "1.18.0",
    }
    environment = {"python_version": "3.13", "sys_platform": "linux", "platform_machine": "x86_64"}
    for found in image_requirements():
        if found.name in amazons and (found.marker is None or found.marker.evaluate(environment)):
            assert str(found.specifier) == f"=={amazons[found.name]}", found
