"""Checkpoints survive a retry: an electron's ``AMZN_BRAKET_CHECKPOINT_DIR`` is one prefix for
all its attempts, so an attempt sent again starts from what the last one saved; a redispatch
of a failed run (a new dispatch id) starts from the failed run's checkpoints when
``checkpoint_from`` names it; a succeeded electron's checkpoints go with its other objects."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import cloudpickle
import pytest
from covalent._shared_files.exceptions import TaskRuntimeError

from covalent_braket_plugin.config import InvalidSettingError
from covalent_braket_plugin.results import wait_for_cleanups
from tests.conftest import BUCKET
from tests.test_braket import hosted

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job cannot import the tests

pytestmark = pytest.mark.timeout(180)

FIRST = "c0ffee00-0000-4000-8000-000000000001"
SECOND = "c0ffee00-0000-4000-8000-000000000002"


def resumable() -> str:
    import os

    where = os.path.join(os.environ["AMZN_BRAKET_CHECKPOINT_DIR"], "state.txt")
    if os.path.exists(where):
        with open(where) as handle:
            return "resumed from " + handle.read()
    os.makedirs(os.path.dirname(where), exist_ok=True)
    with open(where, "w") as handle:
        handle.write("step 1")
    raise RuntimeError("interrupted after step 1")


def run_node(executor: Any, dispatch_id: str, node_id: int = 4) -> Any:
    metadata = {"dispatch_id": dispatch_id, "node_id": node_id, "results_dir": "/tmp"}
    return asyncio.run(executor.run(resumable, [], {}, metadata))


def checkpoint_keys(aws: Any, dispatch_id: str, node_id: int = 4) -> list[str]:
    prefix = f"covalent-braket/{dispatch_id}/node-{node_id}/checkpoints/"
    found = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return [item["Key"][len(prefix) :] for item in found]


def test_an_attempt_sent_again_starts_from_the_last_ones_checkpoint(aws: Any) -> None:
    with pytest.raises(TaskRuntimeError, match="interrupted after step 1"):
        run_node(hosted(), FIRST)
    assert checkpoint_keys(aws, FIRST) == ["state.txt"]  # a failed electron's stay
    assert run_node(hosted(), FIRST) == "resumed from step 1"  # attempt 1
    jobs = sorted(aws.braket.search_jobs(filters=[])["jobs"], key=lambda job: job["jobName"])
    uris = {aws.braket.get_job(jobArn=job["jobArn"])["checkpointConfig"]["s3Uri"] for job in jobs}
    assert [job["jobName"][-2:] for job in jobs] == ["a0", "a1"]
    assert uris == {f"s3://{BUCKET}/covalent-braket/{FIRST}/node-4/checkpoints"}
    wait_for_cleanups()
    assert checkpoint_keys(aws, FIRST) == []  # it succeeded: they went with its objects


def test_a_redispatch_starts_from_the_failed_runs_checkpoints_when_told(aws: Any) -> None:
    with pytest.raises(TaskRuntimeError):
        run_node(hosted(), FIRST)
    with pytest.raises(TaskRuntimeError, match="interrupted"):  # a new dispatch, on its own
        run_node(hosted(), SECOND)
    third = "c0ffee00-0000-4000-8000-000000000003"
    assert run_node(hosted(checkpoint_from=FIRST), third) == "resumed from step 1"
    assert checkpoint_keys(aws, FIRST) == ["state.txt"]  # the failed run's are left as they were


def test_checkpoint_from_must_be_a_dispatch_id() -> None:
    with pytest.raises(InvalidSettingError, match="checkpoint_from"):
        hosted(checkpoint_from="../other/prefix")


def test_a_redispatch_through_covalent_resumes_from_the_failed_runs_checkpoint(
    covalent_server: Any,
) -> None:
    """Through a real Covalent server: the workflow fails after its electron saved a
    checkpoint; ``ct.redispatch`` (a new dispatch id) with the electron's executor naming the
    failed run resumes from it."""
    import covalent as ct

    from covalent_braket_plugin.braket import BraketExecutor
    from covalent_braket_plugin.testing import covalent_server_settings

    settings = covalent_server_settings()
    step = ct.electron(resumable, executor=BraketExecutor(**settings))

    @ct.lattice
    def flow() -> str:
        return step()

    failed = covalent_server.run(flow)
    assert str(failed.status) == "FAILED"
    again = ct.electron(
        resumable, executor=BraketExecutor(**settings, checkpoint_from=failed.dispatch_id)
    )
    redispatch = ct.redispatch(
        failed.dispatch_id,
        dispatcher_addr=covalent_server.address,
        replace_electrons={"resumable": again},
    )
    dispatch_id = redispatch()
    result = ct.get_result(dispatch_id, wait=True, dispatcher_addr=covalent_server.address)
    assert dispatch_id != failed.dispatch_id
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == "resumed from step 1"
