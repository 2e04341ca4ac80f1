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
    assert len(reads) <= 3, reads  # at most a look each (a job that ended), not every round
