"""``covalent-braket demo``: the README's main command."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import psutil
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _session_members(sid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def test_demo_prints_the_result_and_leaves_nothing_behind() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COVALENT_"))}
    demo = subprocess.Popen(
        [sys.executable, "-m", "covalent_braket_plugin.cli", "demo", "--poll-freq", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    output, _ = demo.communicate(timeout=280)
    assert demo.returncode == 0, output
    # <Z> after H: 0, shown to 12 places, the simulator's exact value beside it if not 0.0
    assert re.search(r"^Result: 0\.0( \(exactly -?\d\.\d+e-1\d\))?$", output, re.M), output
    assert re.search(r"Braket job: arn:aws:braket:us-east-1:\d{12}:job/", output), output
    assert re.search(
        r"Time taken: \d+\.\d s \(the workflow, from dispatch to result: \d+\.\d s\)", output
    ), output
    assert re.search(r"job cov-\S+ (RUNNING|COMPLETED)", output), output

    ports = [int(port) for port in re.findall(r"on http://127\.0\.0\.1:(\d+)", output)]
    assert len(ports) == 2, output  # the emulator's and the Covalent server's
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
    assert _session_members(demo.pid) == []
