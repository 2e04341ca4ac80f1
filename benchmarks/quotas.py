"""Quotas: N electrons at once against the emulator enforcing Braket's request quotas.

Braket lets an account create one hybrid job per second (a burst of 5), so N electrons need at
least (N - 5) / 1 seconds of ``CreateJob``: the quota floor. For each N this prints the wall
time against that floor (plus one job's runtime, the target's allowance), the throttled
responses in the emulator's journal, the Braket calls per job by operation, the event loop's
worst lag, and whether every result is right.

    python benchmarks/quotas.py [--sizes 100,500] [--poll 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import uuid
from collections import Counter

from _common import BenchExecutor, LoopLag, clear_journal, emulator, journal, machine, now, table

from covalent_braket_plugin.service import QUOTAS


def square(x: int) -> int:
    return x * x


async def batch(size: int, poll: float) -> tuple[float, LoopLag, bool, str]:
    dispatch = uuid.uuid4().hex
    with LoopLag() as lag:
        started = now()
        results = await asyncio.gather(
            *(
                BenchExecutor(poll_freq=poll).run(
                    square, [i], {}, {"dispatch_id": dispatch, "node_id": i, "results_dir": "/tmp"}
                )
                for i in range(size)
            )
        )
        wall = now() - started
    return wall, lag, results == [i * i for i in range(size)], dispatch


def job_runtime(dispatch: str) -> float:
    """The median runtime of the dispatch's jobs (``endedAt - startedAt``)."""
    import boto3

    braket = boto3.client("braket")
    runtimes = []
    for page in braket.get_paginator("search_jobs").paginate(
        filters=[{"name": "jobName", "operator": "CONTAINS", "values": [dispatch[:20]]}]
    ):
        for job in page["jobs"]:
            if job.get("startedAt") and job.get("endedAt"):
                runtimes.append((job["endedAt"] - job["startedAt"]).total_seconds())
    return statistics.median(runtimes) if runtimes else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,500")
    parser.add_argument("--poll", type=float, default=5.0)
    parser.add_argument("--max-concurrent-jobs", type=int, default=8)
    args = parser.parse_args()
    rate, burst = QUOTAS["CreateJob"]
    rows = []
    with emulator(max_concurrent_jobs=args.max_concurrent_jobs, lowest_priority=True) as url:
        asyncio.run(batch(2, args.poll))  # warm-up: clients, pre-flight cache
        for size in (int(s) for s in args.sizes.split(",")):
            clear_journal(url)
            wall, lag, correct, dispatch = asyncio.run(batch(size, args.poll))
            entries = [e for e in journal(url) if e["service"] == "braket"]
            ours = [e for e in entries if e["accessKeyId"] == "testing"]  # not the jobs' own
            calls = Counter(e["operation"] for e in ours)
            throttled = sum(e.get("error") == "ThrottlingException" for e in entries)
            floor = max(size - burst, 0) / rate
            runtime = job_runtime(dispatch)
            rows.append(
                [
                    size,
                    f"{wall:.1f}",
                    f"{floor:.0f}",
                    f"{floor * 1.1 + runtime:.1f}",
                    f"{wall / floor:.3f}" if floor else "-",
                    throttled,
                    f"{sum(calls.values()) / size:.2f}",
                    ", ".join(f"{op} {n}" for op, n in sorted(calls.items())),
                    f"{lag.worst * 1000:.1f}",
                    correct,
                ]
            )
    print(
        table(
            f"Quotas ({machine()}, poll {args.poll:g} s, CreateJob {rate:g}/s burst {burst}, "
            "quotas enforced by the emulator)",
            [
                "electrons",
                "wall s",
                "quota floor s",
                "target: 1.1 x floor + job runtime s",
                "wall / floor",
                "throttled responses",
                "Braket calls/job",
                "Braket calls",
                "worst loop lag ms",
                "all correct",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
