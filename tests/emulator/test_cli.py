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


def test_the_printed_exports_reach_the_emulator_its_sdk_endpoint_and_its_price_list() -> None:
    """What the command prints is all a shell needs: the endpoint (for boto3 and, as
    ``BRAKET_ENDPOINT``, the Braket SDK), the credentials and token, and the price list the
    emulator serves (``BRAKET_PRICE_OFFERS_URL``, which the SDK's ``Tracker`` and the
    executor's estimates read instead of Amazon's online one)."""
    import shlex

    process = subprocess.Popen(
        [sys.executable, "-m", "covalent_braket_plugin.cli", "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip().rsplit(" ", 1)[1]
        words = shlex.split(process.stdout.readline())
        assert words[0] == "export"
        exported = dict(word.split("=", 1) for word in words[1:])
        assert exported["AWS_ENDPOINT_URL"] == exported["BRAKET_ENDPOINT"] == url
        prices = exported["BRAKET_PRICE_OFFERS_URL"]
        assert prices.startswith(url)
        with urllib.request.urlopen(prices, timeout=10) as response:
            lines = response.read().decode().splitlines()
        assert "PricePerUnit" in lines[5] and len(lines) > 6  # five lines of metadata, a header
        assert exported["BRAKET_EMULATOR_TOKEN"] and exported["AWS_ACCESS_KEY_ID"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_help_reads_as_text_and_setup_print_says_it_wrote_nothing(
    aws: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from covalent_braket_plugin import cli

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    helped = capsys.readouterr().out
    assert "``" not in helped and "Braket-in-a-box" in helped
    assert cli.main(["setup", "--print"]) == 0
    said = capsys.readouterr().out
    assert "Nothing was written to" in said and "do not add a second" in said
    assert "[executors.braket]" in said
