"""Shared fixtures, built on the package's own pytest plugin (``braket_emulator``).

Covalent is confined to a temporary HOME before anything imports it, so the tests never read
or write the user's covalent.conf or database.
"""

from __future__ import annotations

import ipaddress
import os
import socket
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
# Nor any other address: the price list too comes from the emulator, never from Amazon.
os.environ["BRAKET_PRICE_OFFERS_URL"] = "http://127.0.0.1:9/no-price-list-outside-the-emulator"
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _loopback(address: Any) -> None:
    """Refuse a connection from the test process to anything but this machine's loopback."""
    if isinstance(address, tuple) and address:
        try:
            ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
        except ValueError:
            return  # a host name: the connection to its resolved address is checked
        if not ip.is_loopback:
            raise ConnectionRefusedError(f"tests connect only to loopback, not {address[0]}")


def _connect_loopback(self: socket.socket, address: Any) -> None:
    _loopback(address)
    return _connect(self, address)


def _connect_ex_loopback(self: socket.socket, address: Any) -> int:
    _loopback(address)
    return _connect_ex(self, address)


socket.socket.connect = _connect_loopback  # type: ignore[method-assign]
socket.socket.connect_ex = _connect_ex_loopback  # type: ignore[method-assign]

BUCKET = "amazon-braket-covalent-tests"
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
    from covalent_braket_plugin.usage import wait_for_accounts

    wait_for_accounts()  # no usage.json of this test lands in the next test's bucket
