"""The job handle a real Covalent server did not store: the job is followed, and cancellable.

After ``CreateJob`` the executor gives Covalent the job's handle; Covalent's dispatcher writes
it to its database and answers within 5 s, or the executor's ``set_job_handle`` raises. Here
the database is locked (as a busy disk or another writer would hold it) while the handle is
written: Covalent's write fails after its wait, it answers with an error and stops listening
to the task. The job runs on all the same, so the executor follows it: the value comes home,
and ``ct.cancel``, which reaches the executor with no handle, still stops the job.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterator
from typing import Any

import cloudpickle
import covalent as ct
import pytest

from covalent_braket_plugin.testing import CovalentServer
from tests.e2e.helpers import configured_server, diagnose, executor, jobs_of

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]
UNSTORED = "did not store the job handle"


@ct.electron(executor=executor(pack=False))
def doubled(x: int, seconds: float) -> int:
    import time

    time.sleep(seconds)
    return 2 * x


@ct.lattice
def one_electron(x: int, seconds: float) -> int:
    return doubled(x, seconds)


@pytest.fixture
def server(emulator: Any, tmp_path: Any) -> Iterator[CovalentServer]:
    """A server of its own: its database is locked under it."""
    with configured_server(emulator, tmp_path / "home") as instance:
        yield instance


def dispatch_with_the_handle_unstored(aws: Any, server: CovalentServer, *args: Any) -> str:
    """Dispatch ``one_electron``; hold its ``CreateJob`` in flight, lock Covalent's database,
    let the job be made, and keep the lock until the executor says Covalent did not store the
    handle (Covalent's write waits 5 s for the lock, then fails)."""
    aws.control.faults(hold={"CreateJob": 1})
    dispatch_id = ct.dispatch(one_electron, dispatcher_addr=server.address)(*args)
    deadline = time.monotonic() + 120
    while aws.control.faults()["held"] == 0:
        assert time.monotonic() < deadline, "the executor made no job"
        time.sleep(0.1)
    database = server.env["COVALENT_DATABASE"]
    lock = sqlite3.connect(database, timeout=30, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        aws.control.faults(hold={})  # the job is made now; its handle meets the lock
        while UNSTORED not in server.log():
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.2)
    finally:
        lock.close()  # the open transaction is rolled back
    return dispatch_id


def test_a_handle_covalent_did_not_store_leaves_the_job_followed_and_cancellable(
    aws: Any, server: CovalentServer
) -> None:
    dispatch_id = dispatch_with_the_handle_unstored(aws, server, 21, 6)
    result = ct.get_result(dispatch_id, wait=True, dispatcher_addr=server.address)
    assert result.status == ct.status.COMPLETED, diagnose(result)
    assert result.result == 42
    (job,) = jobs_of(aws, dispatch_id)
    assert job["status"] == "COMPLETED"

    dispatch_id = dispatch_with_the_handle_unstored(aws, server, 1, 300)
    (job,) = jobs_of(aws, dispatch_id)
    assert job["status"] in ("QUEUED", "RUNNING")
    ct.cancel(dispatch_id, dispatcher_addr=server.address)
    result = ct.get_result(dispatch_id, wait=True, dispatcher_addr=server.address)
    assert result.status == ct.status.CANCELLED, diagnose(result)
    assert aws.braket.get_job(jobArn=job["jobArn"])["status"] in ("CANCELLING", "CANCELLED")
