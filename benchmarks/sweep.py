"""Sweep: N electrons against an account's default job quotas, as a parameter sweep sends them.

Braket runs a handful of hybrid jobs at once per account and Region (the concurrent-jobs quota,
5 by default) and refuses ``CreateJob`` past it (``ServiceQuotaExceededException``). The
executor's job slots keep the electrons within it: each waits its turn, none fails. A job's
instance takes a while to start (about a minute on AWS; ``--start-seconds`` here, the
emulator's ``job_start_seconds``), so N electrons of W seconds of work need at least
N / slots x (start + W) seconds: the floor. This prints, in one run, the electrons correct and
failed, the wall time beside the floor, the jobs created, the billed instance-seconds (the sum
of the jobs' ``billableDuration``), the Braket calls per electron and the throttled or refused
responses (from the emulator's journal), and one electron alone on the idle account.

    python benchmarks/sweep.py [--electrons 100] [--start-seconds 5] [--work-seconds 1]
        [--poll 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from typing import Any

from _common import BenchExecutor, clear_journal, control, emulator, journal, machine, now, table

from covalent_braket_plugin.service import CONCURRENT_JOBS_QUOTA


def working(seconds: float) -> Any:
    """An electron of ``seconds`` of work that returns its argument squared."""

    def electron(x: int) -> int:
        import time

        time.sleep(seconds)
        return x * x

    return electron


async def sweep(size: int, work: float, poll: float) -> tuple[float, list[Any], list[str]]:
    """Run ``size`` electrons at once; the wall time, their outcomes and their jobs."""
    dispatch = uuid.uuid4().hex
    executors = [BenchExecutor(poll_freq=poll) for _ in range(size)]
    started = now()
    outcomes = await asyncio.gather(
        *(
            executor.run(
                working(work),
                [i],
                {},
                {"dispatch_id": dispatch, "node_id": i, "results_dir": "/tmp"},
            )
            for i, executor in enumerate(executors)
        ),
        return_exceptions=True,
    )
    wall = now() - started
    from covalent_braket_plugin.usage import wait_for_accounts

    wait_for_accounts()
    return wall, outcomes, [getattr(e, "handle", None) for e in executors]


def billed_seconds(arns: list[str]) -> float:
    """The sum of the jobs' ``billableDuration`` (milliseconds), in seconds."""
    import boto3

    braket = boto3.client("braket")  # on the emulator, as this process's settings say
    total = 0
    for arn in arns:
        if arn:
            total += braket.get_job(jobArn=arn).get("billableDuration") or 0
    return total / 1000


def figures(url: str, size: int, wall: float, outcomes: list[Any]) -> dict[str, Any]:
    """What the journal says of the run, and its outcomes."""
    entries = [e for e in journal(url) if e["service"] == "braket"]
    mine = os.environ["AWS_ACCESS_KEY_ID"]
    ours = [e for e in entries if e["accessKeyId"] == mine]  # not the jobs' own calls
    created = [e for e in ours if e["operation"] == "CreateJob" and not e.get("error")]
    refused = ("ThrottlingException", "ServiceQuotaExceededException")
    return {
        "correct": sum(out == i * i for i, out in enumerate(outcomes)),
        "failed": sum(isinstance(out, BaseException) for out in outcomes),
        "created": len(created),
        "calls": len(ours) / size,
        "refused": sum(e.get("error") in refused for e in entries),
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--electrons", type=int, default=100)
    parser.add_argument("--start-seconds", type=float, default=5.0)
    parser.add_argument("--work-seconds", type=float, default=1.0)
    parser.add_argument("--poll", type=float, default=1.0)
    args = parser.parse_args()
    slots = CONCURRENT_JOBS_QUOTA[1]  # the emulator's default quota, as the service's
    with emulator(lowest_priority=True) as url:
        control(url, "/settings", {"job_start_seconds": args.start_seconds}, method="POST")
        asyncio.run(sweep(1, args.work_seconds, args.poll))  # warm-up: clients, pre-flight
        alone, _, _ = asyncio.run(sweep(1, args.work_seconds, args.poll))
        clear_journal(url)
        wall, outcomes, arns = asyncio.run(sweep(args.electrons, args.work_seconds, args.poll))
        found = figures(url, args.electrons, wall, outcomes)
        billed = billed_seconds(arns)
    floor = args.electrons / slots * (args.start_seconds + args.work_seconds)
    row = [
        args.electrons,
        found["correct"],
        found["failed"],
        f"{wall:.1f}",
        f"{floor:.2f}",
        f"{wall / floor:.3f}",
        f"{alone:.1f}",
        found["created"],
        f"{billed:.1f}",
        f"{found['calls']:.2f}",
        found["refused"],
    ]
    print(
        table(
            f"Sweep ({machine()}, {slots} job slots (the default concurrent-jobs quota), "
            f"job start {args.start_seconds:g} s standing in for AWS's minute or more, work "
            f"{args.work_seconds:g} s, poll {args.poll:g} s)",
            [
                "electrons",
                "correct",
                "failed",
                "wall s",
                "floor s (N / slots x (start + work))",
                "wall / floor",
                "one electron alone s",
                "jobs created",
                "billed instance-s",
                "Braket calls/electron",
                "throttled or refused",
            ],
            [row],
        )
    )


if __name__ == "__main__":
    main()
