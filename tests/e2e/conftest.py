"""The session's Covalent server (``covalent start --no-cluster``), pointed at the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from covalent_braket_plugin.testing import CovalentServer
from tests.e2e.helpers import configured_server


@pytest.fixture(scope="session")
def server(emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CovalentServer]:
    home = tmp_path_factory.mktemp("covalent-server-home")
    # The server log at INFO: the executor's progress lines are in it (tests/e2e/test_progress).
    instance = configured_server(emulator, home, LOGLEVEL="INFO")
    instance.start()
    yield instance
    instance.stop()
