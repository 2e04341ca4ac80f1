"""Concurrency: N electrons at once through one process's event loop, as in the Covalent server.

For each N: total wall time, Braket API calls per job (from the emulator's journal), status
look-ups per poll interval per 20 watched jobs (the shared watcher), the event loop's lag
(99th percentile and worst, with the full garbage collections that ran meanwhile), and whether
every result is right. The emulator runs in its own process at the lowest CPU priority (it
stands in for the service's machines; ``--emulator-priority normal`` to share the cores
evenly); jobs beyond its concurrency limit wait in QUEUED, as on the real service.

    python benchmarks/concurrency.py [--sizes 10,100,500] [--poll 2] [--freeze-heap on|off]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections import Counter

from _common import (
    BenchExecutor,
    LoopLag,
    clear_journal,
    emulator,
    journal,
    machine,
    now,
    table,
)

from covalent_braket_plugin import waiting
from covalent_braket_plugin.results import wait_for_cleanups


def triple(x: int) -> int:
    return 3 * x


async def batch(
    size: int, poll: float, freeze_heap: bool, pacing: bool
) -> tuple[float, LoopLag, bool, waiting.JobWatcher]:
    dispatch = uuid.uuid4().hex
    with LoopLag() as lag:
        started = now()
        results = await asyncio.gather(
            *(
                BenchExecutor(poll_freq=poll, freeze_heap=freeze_heap, pacing=pacing).run(
                    triple, [i], {}, {"dispatch_id": dispatch, "node_id": i, "results_dir": "/tmp"}
                )
                for i in range(size)
            )
        )
        wall = now() - started
    wait_for_cleanups()
    [watcher] = waiting.watchers_of_running_loop()
    return wall, lag, results == [3 * i for i in range(size)], watcher


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100,500")
    parser.add_argument("--poll", type=float, default=2.0)
    parser.add_argument("--max-concurrent-jobs", type=int, default=8)
    parser.add_argument("--emulator-priority", choices=("lowest", "normal"), default="lowest")
    parser.add_argument(
        "--freeze-heap",
        choices=("on", "off"),
        default="on",
        help="the executors' freeze_heap setting (default on): while tasks run, full garbage "
        "collections skip the objects alive when the first began",
    )
    parser.add_argument(
        "--quotas",
        choices=("on", "off"),
        default="off",
        help="the emulator's request quotas, and the executors' pacing within them (default "
        "off: this measures the executor alone; benchmarks/quotas.py measures it within them)",
    )
    args = parser.parse_args()
    args.freeze_heap = args.freeze_heap == "on"
    rows = []
    lowest = args.emulator_priority == "lowest"
    with emulator(
        max_concurrent_jobs=args.max_concurrent_jobs,
        lowest_priority=lowest,
        quotas=args.quotas == "on",
        job_quota=max(2, *(int(s) for s in args.sizes.split(","))),  # every job at once
    ) as url:
        # Warm-up: clients, pre-flight cache.
        asyncio.run(batch(2, args.poll, args.freeze_heap, args.quotas == "on"))
        for size in (int(s) for s in args.sizes.split(",")):
            clear_journal(url)
            wall, lag, correct, watcher = asyncio.run(
                batch(size, args.poll, args.freeze_heap, args.quotas == "on")
            )
            calls = Counter(e["operation"] for e in journal(url) if e["service"] == "braket")
            per_job = sum(calls.values()) / size
            watched = watcher.watched / max(watcher.rounds, 1)
            per_20 = (watcher.calls / max(watcher.rounds, 1)) / max(watched / 20, 1e-9)
            rows.append(
                [
                    size,
                    f"{wall:.1f}",
                    f"{per_job:.2f}",
                    ", ".join(f"{op} {n}" for op, n in sorted(calls.items())),
                    f"{watcher.rounds}",
                    f"{watched:.0f}",
                    f"{per_20:.2f}",
                    f"{lag.percentile(0.99) * 1000:.1f}",
                    f"{lag.worst * 1000:.1f}",
                    f"{len(lag.full_collections)}"
                    + (
                        f" (longest {max(lag.full_collections) * 1000:.0f} ms)"
                        if lag.full_collections
                        else ""
                    ),
                    correct,
                ]
            )
    print(
        table(
            f"Concurrency ({machine()}, poll {args.poll:g} s, emulator running "
            f"{args.max_concurrent_jobs} jobs at once at {args.emulator_priority} priority"
            + f", freeze_heap {'on' if args.freeze_heap else 'off'})",
            [
                "electrons",
                "wall s",
                "Braket calls/job",
                "Braket calls",
                "look-up rounds",
                "avg watched",
                "status calls per 20 watched per interval",
                "loop lag p99 ms",
                "worst loop lag ms",
                "full GCs meanwhile",
                "all correct",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
