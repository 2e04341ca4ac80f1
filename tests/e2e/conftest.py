"""The session's Covalent server (``covalent start --no-cluster``), pointed at the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from covalent_braket_plugin.testing import CovalentServer, emulator_env, write_braket_config
from tests.e2e.helpers import CONFIGURED


@pytest.fixture(scope="session")
def server(emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CovalentServer]:
    home = tmp_path_factory.mktemp("covalent-server-home")
    write_braket_config(home, CONFIGURED)
    # The server log at INFO: the executor's progress lines are in it (tests/e2e/test_progress).
    instance = CovalentServer(env={**emulator_env(emulator.url), "LOGLEVEL": "INFO"}, home=home)
    instance.start()
    yield instance
    instance.stop()
