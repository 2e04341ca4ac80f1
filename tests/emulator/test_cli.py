"""The emulator as a command: prints its URL, serves, stops on SIGINT/SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("command", "stop"),
    [
        (["-m", "covalent_braket_plugin.emulator"], signal.SIGTERM),
        (["-m", "covalent_braket_plugin.cli", "emulator"], signal.SIGINT),
    ],
)
def test_emulator_command_serves_on_loopback_until_signalled(command: list[str], stop: int) -> None:
    process = subprocess.Popen(
        [sys.executable, *command, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline().strip()
        assert first.startswith("Braket emulator listening on http://127.0.0.1:"), first
        url = first.rsplit(" ", 1)[1]
        with urllib.request.urlopen(f"{url}/_emulator/health", timeout=10) as response:
            assert json.load(response)["status"] == "ok"
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0
        assert "Braket emulator stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
