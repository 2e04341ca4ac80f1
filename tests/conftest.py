"""Shared fixtures: one emulator per test session, reset before each test that uses it.

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

from covalent_braket_plugin.sandbox import covalent_env, emulator_env

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
    """Clients on the emulator, and its URL."""

    url: str
    s3: Any
    braket: Any
    logs: Any
    emulator: Any

    def settings(self, **changes: Any) -> dict[str, Any]:
        import json
        import urllib.request

        request = urllib.request.Request(
            f"{self.url}/_emulator/settings", data=json.dumps(changes).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)


@pytest.fixture(scope="session")
def emulator() -> Iterator[Any]:
    from covalent_braket_plugin.emulator import BraketEmulator

    instance = BraketEmulator()
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def aws(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """Point this process at a freshly reset emulator with one bucket."""
    import json
    import urllib.request

    import boto3
    from botocore.config import Config

    from covalent_braket_plugin import aws as aws_module

    request = urllib.request.Request(f"{emulator.url}/_emulator/reset", data=b"", method="POST")
    urllib.request.urlopen(request, timeout=30).close()
    defaults = {"queue_seconds": 0.0, "max_concurrent_jobs": 32, "task_queue_seconds": 0.0}
    request = urllib.request.Request(
        f"{emulator.url}/_emulator/settings", data=json.dumps(defaults).encode(), method="POST"
    )
    urllib.request.urlopen(request, timeout=10).close()
    for key, value in emulator_env(emulator.url).items():
        monkeypatch.setenv(key, value)
    aws_module.reset_cache()
    session = boto3.session.Session()
    handle = Aws(
        url=emulator.url,
        s3=session.client("s3"),
        # Client-side validation off: the emulator's own rules are what is under test.
        braket=session.client("braket", config=Config(parameter_validation=False)),
        logs=session.client("logs"),
        emulator=emulator,
    )
    handle.s3.create_bucket(Bucket=BUCKET)
    yield handle
    aws_module.reset_cache()
