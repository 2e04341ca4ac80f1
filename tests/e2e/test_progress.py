"""Through a real Covalent server: the server log tells each state change of the electron's
job, with its place in the queue while it waits, and what the job cost."""

from __future__ import annotations

import re
import sys
import time
from typing import Any

import cloudpickle
import covalent as ct
import pytest

from covalent_braket_plugin.testing import CovalentServer
from tests.e2e.helpers import diagnose, executor, jobs_of, run

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@ct.electron(executor=executor())
def queued_work(label: str) -> str:
    import time as _time

    _time.sleep(2.0)  # running for several polls (0.5 s) too
    return f"{label} done"


@ct.lattice
def queued_workflow(label: str) -> str:
    return queued_work(label)


def test_the_server_log_has_the_state_lines_in_order_with_the_queue_position(
    aws: Any, server: CovalentServer
) -> None:
    aws.settings(queue_seconds=3)  # the job waits in the queue for several polls (0.5 s)
    result = run(server, queued_workflow, "progress")
    assert str(result.status) == "COMPLETED", diagnose(result)
    [job] = jobs_of(aws, result.dispatch_id)
    name = job["jobName"]
    deadline = time.monotonic() + 30  # the cost line comes once the result was delivered
    while time.monotonic() < deadline:
        mine = [line for line in server.log().splitlines() if f"Braket job {name} " in line]
        if any("estimated cost" in line for line in mine):
            break
        time.sleep(0.2)
    states = [line for line in mine if "after submission" in line]
    said = [re.search(r"\) ([A-Z]+)", line).group(1) for line in states]
    assert said == ["QUEUED", "RUNNING", "COMPLETED"], "\n".join(mine)
    assert "QUEUED in JOBS_QUEUE at position 1" in states[0]
    for line in states:
        assert f"(dispatch {result.dispatch_id}, node 0)" in line and "[INFO]" in line
        assert "console.aws.amazon.com/braket/home?region=us-east-1#/jobs/arn%3Aaws%3A" in line
    [cost] = [line for line in mine if "estimated cost USD" in line]
    assert "COMPLETED: used ml.m5.large for" in cost
