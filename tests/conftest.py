"""Shared fixtures, built on the package's own pytest plugin (``braket_emulator``).

Covalent is confined to a temporary HOME before anything imports it, so the tests never read
or write the user's covalent.conf or database.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from covalent_braket_plugin.pytest_plugin import EmulatorControl
from covalent_braket_plugin.testing import covalent_env, provision

_CLIENT_HOME = Path(tempfile.mkdtemp(prefix="covalent-braket-tests-"))
os.environ.update(covalent_env(_CLIENT_HOME))
for _name in [k for k in os.environ if k.startswith("AWS_")]:
    del os.environ[_name]  # nothing in the tests may reach a real AWS account

BUCKET = "covalent-braket-tests"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/covalent-braket:latest"
ROLE = "arn:aws:iam::123456789012:role/CovalentBraketJobsExecutionRole"
SV1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"


@dataclass
class Aws:
    """Clients on a freshly reset emulator that has one bucket."""

    control: EmulatorControl
    s3: Any
    braket: Any
    logs: Any
    emulator: Any

    @property
    def url(self) -> str:
        return self.control.url

    def settings(self, **changes: Any) -> dict[str, Any]:
        return self.control.settings(**changes)


@pytest.fixture(scope="session")
def emulator(braket_emulator_server: Any) -> Any:
    return braket_emulator_server


@pytest.fixture
def aws(braket_emulator: EmulatorControl, braket_emulator_server: Any) -> Iterator[Aws]:
    from botocore.config import Config

    handle = Aws(
        control=braket_emulator,
        s3=braket_emulator.client("s3"),
        # Client-side validation off: the emulator's own rules are what is under test.
        braket=braket_emulator.client("braket", config=Config(parameter_validation=False)),
        logs=braket_emulator.client("logs"),
        emulator=braket_emulator_server,
    )
    provision(BUCKET, ROLE, IMAGE, client=braket_emulator.client)
    yield handle
