"""The service's clock is not this machine's: jobs are searched by the service's time.

Braket-in-a-box's clock can be set ahead of or behind this machine's
(``clock_offset_seconds``), in every time it tells and in each answer's ``Date`` header, as a
real client meets a service whose clock is not its own.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import cloudpickle
import pytest

from covalent_braket_plugin import jobs
from tests.emulator.test_jobs import job_request
from tests.test_braket import hosted

pytestmark = pytest.mark.timeout(120)
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job cannot import the tests
DISPATCH = "c10c0000-0000-0000-0000-000000000000"


def work(x: int) -> int:
    import time

    time.sleep(2)
    return x


def test_braket_in_a_box_tells_its_own_time(aws: Any) -> None:
    aws.settings(clock_offset_seconds=-600)
    answer = aws.braket.search_jobs(filters=[])
    told = parsedate_to_datetime(answer["ResponseMetadata"]["HTTPHeaders"]["date"])
    behind = datetime.now(timezone.utc) - told
    assert timedelta(seconds=590) < behind < timedelta(seconds=610)
    assert abs((jobs.service_time(answer) - told).total_seconds()) < 1


def test_jobs_are_found_by_search_when_this_machines_clock_is_ahead(aws: Any) -> None:
    """With this machine a minute ahead of the service, the jobs it created are searched by
    the service's time: the watcher's SearchJobs shows them, and no job is read one by one
    with GetJob each round (as when the search window started in the service's future)."""
    aws.settings(clock_offset_seconds=-60)

    async def three() -> list[int]:
        return await asyncio.gather(
            *(
                hosted(pack=False, poll_freq=0.3).run(
                    work, [i], {}, {"dispatch_id": DISPATCH, "node_id": i, "results_dir": "/tmp"}
                )
                for i in range(3)
            )
        )

    assert asyncio.run(three()) == [0, 1, 2]
    searches = aws.control.journal(service="braket", operation="SearchJobs")
    reads = aws.control.journal(service="braket", operation="GetJob")
    assert len(searches) >= 3  # the jobs ran for rounds of the watcher
    # While the watcher searched (more than one job watched), the search showed the jobs: at
    # most a look each with GetJob, not every job every round. (A job watched alone, before
    # the others are made or after they end, is read with GetJob by design, whatever the
    # clocks: those reads are outside the rounds that searched.)
    first, last = searches[0]["time"], searches[-1]["time"]
    between = [entry for entry in reads if first < entry["time"] < last]
    assert len(between) <= 3, (between, len(searches))


def test_an_old_watched_job_does_not_hold_the_search_window_open(aws: Any, tmp_path: Any) -> None:
    """A watched job made long ago (a QPU job queued for days) and a new one, with 150 other
    jobs made in between: the watcher searches only the recent window, for this executor's
    job names, one page a round, and reads the old job with GetJob; it does not page through
    every job the account made since the old one."""
    from covalent_braket_plugin import waiting

    aws.settings(quotas=False, job_quotas=False, clock_offset_seconds=-7200)  # two hours ago
    waiting._watchers.clear()

    def node(i: int) -> dict[str, Any]:
        return {"dispatch_id": DISPATCH, "node_id": i, "results_dir": "/tmp"}

    def others() -> None:  # image-mode jobs no command stands for: they fail at once
        aws.settings(clock_offset_seconds=0)
        request = job_request(algorithmSpecification={"containerImage": {"uri": OTHER_IMAGE}})
        for i in range(150):
            aws.braket.create_job(**{**request, "jobName": f"other-{i}"})

    gate = tmp_path / "both-watched"  # the jobs end only once both are watched together

    async def old_and_new() -> list[int]:
        old, new = hosted(pack=False, poll_freq=0.3), hosted(pack=False, poll_freq=0.3)
        first = asyncio.create_task(old.run(slow, [0, str(gate)], {}, node(0)))
        while old._handle is None:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(others)
        second = asyncio.create_task(new.run(slow, [1, str(gate)], {}, node(1)))
        while new._handle is None:
            await asyncio.sleep(0.05)
        gate.touch()
        return list(await asyncio.gather(first, second))

    assert asyncio.run(old_and_new()) == [0, 1]
    rounds = sum(watcher.rounds for watcher in waiting._watchers.values())
    searches = aws.control.journal(service="braket", operation="SearchJobs")  # the watcher's
    assert rounds >= 3
    assert 1 <= len(searches) <= rounds, (len(searches), rounds)


OTHER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/someone-else:latest"


def slow(x: int, gate: str) -> int:
    """Returns ``x`` two seconds after ``gate`` exists (the job runs on this machine)."""
    import os
    import time

    deadline = time.monotonic() + 90
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2)
    return x
