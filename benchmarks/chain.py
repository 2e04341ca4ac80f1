"""Chain: N dependent electrons, each sent when the one before has returned (an optimisation
loop, a chain of steps), with and without warm jobs.

Alone, each electron is a job of its own and pays a job start (about a minute on AWS;
``--start-seconds`` here, the emulator's ``job_start_seconds``). With ``warm_seconds``, the
first job waits that long for more once its electron is done, and the next electrons reach it
through the bucket. This prints, for both, the electrons correct, the wall time, the job starts
(``CreateJob``), the billed instance-seconds (idle time included) and that time's estimated
cost at the instance's price.

    python benchmarks/chain.py [--electrons 10] [--start-seconds 5] [--work-seconds 1]
        [--warm-seconds 10] [--poll 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import Any

from _common import BenchExecutor, clear_journal, control, emulator, journal, machine, now, table


def step(x: int, seconds: float) -> int:
    """One electron of the chain: works ``seconds``, returns its argument plus one."""
    import time

    time.sleep(seconds)
    return x + 1


async def chain(size: int, work: float, poll: float, **settings: Any) -> tuple[float, int, set]:
    """Send ``size`` electrons one after another, each on the last one's value; the wall time,
    the last value and the jobs they ran in."""
    from covalent_braket_plugin import packs

    dispatch = uuid.uuid4().hex
    value, arns = 0, set()
    started = now()
    for node in range(size):
        executor = BenchExecutor(poll_freq=poll, **settings)
        metadata = {"dispatch_id": dispatch, "node_id": node, "results_dir": "/tmp"}
        value = await executor.run(step, [value, work], {}, metadata)
        arns.add(str(executor.handle).split(" member ")[0])
    wall = now() - started
    await packs.settled()  # a warm job ends once idle: its billed time counts
    return wall, value, arns


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--electrons", type=int, default=10)
    parser.add_argument("--start-seconds", type=float, default=5.0)
    parser.add_argument("--work-seconds", type=float, default=1.0)
    parser.add_argument("--warm-seconds", type=float, default=10.0)
    parser.add_argument("--poll", type=float, default=0.5)
    args = parser.parse_args()
    import boto3
    from botocore.config import Config

    from covalent_braket_plugin.usage import wait_for_accounts

    rows = []
    with emulator(lowest_priority=True) as url:
        control(url, "/settings", {"job_start_seconds": args.start_seconds}, method="POST")
        asyncio.run(chain(1, 0, args.poll))  # warm-up: clients, pre-flight
        for label, settings in (
            ("a job each (warm_seconds=0)", {}),
            (
                f"warm jobs (warm_seconds={args.warm_seconds:g})",
                {"warm_seconds": args.warm_seconds},
            ),
        ):
            clear_journal(url)
            wall, value, arns = asyncio.run(
                chain(args.electrons, args.work_seconds, args.poll, **settings)
            )
            wait_for_accounts()
            created = [
                e
                for e in journal(url)
                if e["operation"] == "CreateJob" and not e.get("error") and e["service"] == "braket"
            ]
            braket = boto3.client(
                "braket", config=Config(retries={"mode": "adaptive", "max_attempts": 20})
            )
            billed = sum(braket.get_job(jobArn=arn).get("billableDuration") or 0 for arn in arns)
            rows.append(
                [
                    label,
                    int(value == args.electrons),
                    f"{wall:.1f}",
                    len(created),
                    f"{billed / 1000:.1f}",
                ]
            )
    print(
        table(
            f"Chain of {args.electrons} dependent electrons ({machine()}, job start "
            f"{args.start_seconds:g} s standing in for AWS's minute or more, work "
            f"{args.work_seconds:g} s, poll {args.poll:g} s)",
            ["sent as", "chain correct", "wall s", "job starts (CreateJob)", "billed instance-s"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
