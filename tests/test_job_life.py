"""A job's life as it really runs: its time limit, and the handle Covalent did not store.

- At the time limit Braket stops the job (SIGTERM to the container, which passes it on to
  nobody, then a kill 120 s later): the node's error says that the electron's ``time_limit``
  was reached, from the job's events (``MAX_RUNTIME_EXCEEDED``), not a bare failure.
- Covalent's ``set_job_handle`` waits 5 s for its dispatcher and raises when none answers. The
  job runs on regardless, so the executor keeps following it (the value still comes home) and
  keeps the handle itself, so that Covalent's cancel, which then comes without one, still
  stops it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import cloudpickle
import pytest
from covalent._shared_files.exceptions import TaskCancelledError

from tests.conftest import BUCKET, IMAGE
from tests.test_braket import HostedExecutor
from tests.test_progress import log_at  # noqa: F401 (a fixture)

pytestmark = pytest.mark.timeout(120)
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job cannot import the tests
TASK = {"dispatch_id": "4a4d1e00-0000-0000-0000-000000000000", "node_id": 0, "results_dir": "/"}


class Unanswered(HostedExecutor):
    """Covalent's dispatcher never answers: ``set_job_handle`` times out, as Covalent's does."""

    async def set_job_handle(self, handle: Any) -> None:
        self.offered = handle
        raise asyncio.TimeoutError()


def executor() -> Unanswered:
    return Unanswered(s3_bucket_name=BUCKET, ecr_image_uri=IMAGE, poll_freq=0.3, pack=False)


def slow(x: int) -> int:
    import time

    time.sleep(2)
    return x * 2


def test_a_handle_covalent_did_not_store_leaves_the_job_followed(
    aws: Any,
    log_at: Any,  # noqa: F811
) -> None:
    lines = log_at(logging.WARNING)
    ran = executor()
    assert asyncio.run(ran.run(slow, [21], {}, dict(TASK))) == 42
    assert ran._handle is None and ran.offered.startswith("arn:aws:braket:")
    assert any("did not store the job handle" in line for line in lines), lines


def test_covalents_cancel_without_a_handle_still_stops_the_job(aws: Any) -> None:
    ran = executor()

    async def scenario() -> BaseException | None:
        running = asyncio.create_task(ran.run(slow, [1], {}, dict(TASK)))
        while not getattr(ran, "offered", None):
            await asyncio.sleep(0.05)
        assert await executor().cancel(dict(TASK), None) is True  # no handle: Covalent has none
        return (await asyncio.gather(running, return_exceptions=True))[0]

    outcome = asyncio.run(scenario())
    assert isinstance(outcome, TaskCancelledError), outcome
    (job,) = aws.braket.search_jobs(filters=[])["jobs"]
    assert job["status"] in ("CANCELLING", "CANCELLED")


def test_an_electron_past_its_time_limit_fails_saying_so(aws: Any) -> None:
    aws.settings(stop_grace_seconds=1)  # AWS kills 120 s after the limit

    def forever() -> None:
        import time

        time.sleep(60)

    ran = HostedExecutor(s3_bucket_name=BUCKET, ecr_image_uri=IMAGE, poll_freq=0.3, time_limit=2)
    with pytest.raises(Exception) as info:
        asyncio.run(ran.run(forever, [], {}, dict(TASK)))
    message = str(info.value)
    assert "time_limit (2 s) was reached" in message and "MAX_RUNTIME_EXCEEDED" in message
