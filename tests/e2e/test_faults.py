"""Through a real Covalent server: fifty electrons while the emulator throttles and loses calls,
and an electron stopped at its time limit."""

from __future__ import annotations

import sys
import time
from typing import Any

import cloudpickle
import covalent as ct
import pytest

from tests.e2e.helpers import diagnose, executor, jobs_of, run

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


# Braket's own quotas (and the executor's pacing to them) are off: every throttle here is an
# injected one, and fifty electrons are not held to one CreateJob a second (tests/test_pacing).
@ct.electron(executor=executor(poll_freq=1.0, pacing=False))
def double(x: int) -> int:
    return 2 * x


@ct.lattice
def fifty(count: int) -> list:
    return [double(i) for i in range(count)]


def test_fifty_electrons_under_throttling_and_lost_responses(aws: Any, server: Any) -> None:
    aws.control.settings(quotas=False)
    aws.control.faults(throttle_rate=0.20, lost_response_rate=0.05, seed=2026)
    started = time.monotonic()
    result = run(server, fifty, 50)
    elapsed = time.monotonic() - started
    faults = aws.control.faults()
    aws.control.faults(throttle_rate=0.0, lost_response_rate=0.0)

    assert str(result.status) == "COMPLETED", diagnose(result)
    assert result.result == [2 * i for i in range(50)]
    for node_id in range(50):
        assert str(result.get_node_result(node_id)["status"]) == "COMPLETED"
    found = jobs_of(aws, result.dispatch_id)
    jobs = [aws.braket.get_job(jobArn=job["jobArn"]) for job in found]
    assert {job["status"] for job in jobs} == {"COMPLETED"}
    # each electron ran once: in a job of its own, or as one of a packed job's members
    members = [
        len([name for name in job["hyperParameters"] if name.startswith("covalent_member_")])
        for job in jobs
    ]
    assert sum(count or 1 for count in members) == 50
    journal = aws.control.journal()
    lost_creates = [
        e for e in journal if e["operation"] == "CreateJob" and e.get("fault") == "lost"
    ]
    print(
        f"50 electrons in {elapsed:.1f} s; {len(journal)} requests, "
        f"faults injected {faults['injected']}, "
        f"CreateJob responses lost: {len(lost_creates)}"
    )
    assert faults["injected"]["throttle"] > 50 and faults["injected"]["lost"] > 5


@ct.electron(executor=executor(pack=False, time_limit=2))
def forever() -> None:
    import time

    time.sleep(120)


@ct.lattice
def past_its_time_limit() -> None:
    return forever()


def test_an_electron_past_its_time_limit_fails_saying_so_in_its_node(aws: Any, server: Any) -> None:
    """Braket stops the job at its ``maxRuntimeInSeconds`` (SIGTERM, a kill 120 s later; one
    second here): the node's error names the electron's ``time_limit``, not a bare failure."""
    aws.control.settings(stop_grace_seconds=1)
    result = run(server, past_its_time_limit)
    assert str(result.status) == "FAILED"
    node = result.get_node_result(0)
    assert str(node["status"]) == "FAILED", diagnose(result)
    assert "time_limit (2 s) was reached" in str(node["error"]), diagnose(result)
    assert "MAX_RUNTIME_EXCEEDED" in str(node["error"])
