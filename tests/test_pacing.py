"""The executor stays inside Braket's request quotas by itself."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from covalent_braket_plugin.pacing import TokenBucket
from tests.conftest import ROLE
from tests.test_braket import hosted

pytestmark = pytest.mark.timeout(300)


def test_many_electrons_against_the_enforcing_emulator_are_never_throttled(aws: Any) -> None:
    count = 12  # more than CreateJob's burst of 5
    assert aws.control.settings()["quotas"] is True

    async def scenario() -> list[int]:
        metadata = {"dispatch_id": "5e55-paced", "results_dir": "/tmp"}
        return await asyncio.gather(
            *(
                # one job each (pack off): CreateJob's pacing is what is shown
                hosted(braket_job_execution_role_name=ROLE, poll_freq=0.5, pack=False).run(
                    lambda i=i: i * i, [], {}, {**metadata, "node_id": i}
                )
                for i in range(count)
            )
        )

    assert asyncio.run(scenario()) == [i * i for i in range(count)]
    braket = aws.control.journal(service="braket")
    assert [e for e in braket if e.get("error") == "ThrottlingException"] == []
    assert sum(e["operation"] == "CreateJob" for e in braket) == count


def test_a_token_bucket_books_calls_in_order_within_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3)
    delays = [bucket.book() for _ in range(6)]
    assert delays[:3] == [0.0, 0.0, 0.0]  # the burst
    assert delays[3:] == pytest.approx([0.5, 1.0, 1.5], abs=0.05)  # then one per 1/rate
    assert not bucket.take()  # in debt: nothing to take now


def test_with_pacing_off_no_call_waits_and_none_is_booked(aws: Any) -> None:
    from covalent_braket_plugin import aws as aws_module
    from covalent_braket_plugin import pacing

    pacing.reset()
    paced = hosted(braket_job_execution_role_name=ROLE).settings()
    unpaced = hosted(braket_job_execution_role_name=ROLE, pacing=False).settings()
    account, region = aws_module.quota_key(unpaced)
    assert account is None
    assert [pacing.book(account, region, ["CreateJob"]) for _ in range(20)] == [0.0] * 20
    assert all(pacing.take_now(account, region, "GetJob") for _ in range(100))
    key = aws_module.quota_key(paced)  # the paced executor's budget was left alone
    assert [pacing.book(*key, ["CreateJob"]) for _ in range(4)] == [0.0] * 4
    assert pacing.book(*key, ["CreateJob"]) > 0
    with pytest.raises(Exception, match="pacing"):
        hosted(pacing="sometimes")


def test_tasks_that_find_their_settings_unchecked_share_one_pre_flight_check(aws: Any) -> None:
    count = 6
    executor = hosted(braket_job_execution_role_name=ROLE, poll_freq=0.37)  # settings unseen

    async def scenario() -> list[int]:
        metadata = {"dispatch_id": "5e55-preflight", "results_dir": "/tmp"}
        return await asyncio.gather(
            *(executor.run(lambda i=i: i, [], {}, {**metadata, "node_id": i}) for i in range(count))
        )

    assert asyncio.run(scenario()) == list(range(count))
    looked_up = [e["operation"] for e in aws.control.journal(service="braket")]
    assert looked_up.count("GetDevice") == 1, looked_up
