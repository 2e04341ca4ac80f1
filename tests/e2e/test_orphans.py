"""A Covalent server that crashes leaves its running job to no one; the tools find it.

Covalent 0.240 resumes nothing when a server starts again, and a new dispatch makes new jobs,
so a job whose server stopped or crashed runs on, billed. Each server process lists the jobs it
follows on its board in ``cache_dir``; ``covalent-braket jobs --orphans`` lists the plugin's
running jobs no live server follows, ``covalent-braket cancel --orphans`` stops them, and
``covalent-braket doctor`` warns while any run. Shown with a real Covalent server, crashed
(SIGKILL) under a running job and started again.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import cloudpickle
import covalent as ct
import psutil
import pytest

from covalent_braket_plugin.testing import CovalentServer
from tests.e2e.helpers import configured_server, executor, jobs_of

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


@ct.electron(executor=executor(pack=False))
def long_running() -> int:
    import time

    time.sleep(300)
    return 1


@ct.lattice
def one_long_electron() -> int:
    return long_running()


def tool(server: CovalentServer, *argv: str) -> subprocess.CompletedProcess[str]:
    """A ``covalent-braket`` command, as the server's user runs it (its covalent.conf)."""
    command = [sys.executable, "-m", "covalent_braket_plugin.cli", *argv]
    return subprocess.run(command, env=server.env, capture_output=True, text=True, timeout=120)


def crash(server: CovalentServer) -> None:
    """SIGKILL the server and everything it started: no shutdown, no cancel."""
    pid = server._pid()
    assert pid
    parent = psutil.Process(pid)
    for process in [*parent.children(recursive=True), parent]:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs([parent], timeout=10)


def running_job(aws: Any, dispatch_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = [job for job in jobs_of(aws, dispatch_id) if job["status"] == "RUNNING"]
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no job of {dispatch_id} ran")


def test_a_crashed_servers_job_is_listed_warned_of_and_cancelled(
    aws: Any, emulator: Any, tmp_path: Any
) -> None:
    home = tmp_path / "home"
    first = configured_server(emulator, home)
    first.start()
    try:
        dispatch_id = ct.dispatch(one_long_electron, dispatcher_addr=first.address)()
        job = running_job(aws, dispatch_id)
        listed = tool(first, "jobs", "--orphans")
        assert job["jobName"] not in listed.stdout, listed  # its server follows it
        crash(first)

        listed = tool(first, "jobs", "--orphans")
        assert listed.returncode == 0, listed.stderr
        assert job["jobName"] in listed.stdout and dispatch_id in listed.stdout, listed.stdout
        assert "covalent-braket cancel --orphans" in listed.stdout

        again = configured_server(emulator, home, port=first.port)  # started again
        again.start()
        try:
            assert job["jobName"] in tool(again, "jobs", "--orphans").stdout  # resumes nothing
            doctor = tool(again, "doctor")
            warned = [line for line in doctor.stdout.splitlines() if "orphaned jobs" in line]
            assert warned and warned[0].startswith("warning") and job["jobName"] in warned[0]

            cancelled = tool(again, "cancel", "--orphans")
            assert cancelled.returncode == 0 and job["jobArn"] in cancelled.stdout, cancelled
            status = aws.braket.get_job(jobArn=job["jobArn"])["status"]
            assert status in ("CANCELLING", "CANCELLED")
            assert job["jobName"] not in tool(again, "jobs", "--orphans").stdout
        finally:
            again.stop()
    finally:
        first.stop()
        for found in jobs_of(aws, dispatch_id):
            if found["status"] in ("QUEUED", "RUNNING"):
                aws.braket.cancel_job(jobArn=found["jobArn"])


@ct.lattice
def two_long_electrons() -> list[int]:
    return [long_running(), long_running()]


def test_a_gracefully_stopped_servers_jobs_are_cancelled_or_listed(
    aws: Any, emulator: Any, tmp_path: Any
) -> None:
    """``covalent stop`` cancels its running dispatches without waiting (the cancel races the
    shutdown), so a job may be stopped or left running: each is one or the other, and every
    one left running is listed by ``jobs --orphans`` and stopped by ``cancel --orphans``."""
    home = tmp_path / "home"
    server = configured_server(emulator, home)
    server.start()
    try:
        dispatch_id = ct.dispatch(two_long_electrons, dispatcher_addr=server.address)()
        deadline = time.monotonic() + 120
        while len([j for j in jobs_of(aws, dispatch_id) if j["status"] == "RUNNING"]) < 2:
            assert time.monotonic() < deadline, jobs_of(aws, dispatch_id)
            time.sleep(0.5)
    finally:
        server.stop()  # graceful: covalent stop
    jobs = jobs_of(aws, dispatch_id)
    listed = tool(server, "jobs", "--orphans").stdout
    for job in jobs:
        stopped = job["status"] in ("CANCELLING", "CANCELLED")
        assert stopped or job["jobName"] in listed, (job, listed)
    cancelled = tool(server, "cancel", "--orphans")
    assert cancelled.returncode == 0, cancelled.stderr
    left = [job["jobName"] for job in jobs_of(aws, dispatch_id) if job["status"] == "RUNNING"]
    assert not left and not [
        j for j in jobs if j["jobName"] in tool(server, "jobs", "--orphans").stdout
    ]
