"""Quotas: N electrons at once against the emulator enforcing Braket's request quotas.

Braket lets an account create one hybrid job per second (a burst of 5), so N electrons need at
least (N - 5) / 1 seconds of ``CreateJob``: the quota floor. For each N this prints the wall
time against that floor (plus one electron's wall time alone, the target's allowance), the
throttled responses in the emulator's journal, the Braket calls per job by operation, the
event loop's worst lag, and whether every result is right.

With ``--progress on`` the server log shows INFO, as a server does that shows the executor's
progress lines: the watcher then also asks for queued jobs' places in the queue (a few extra
``GetJob``); ``--progress off,on`` measures both.

    python benchmarks/quotas.py [--sizes 100,500] [--poll 5] [--progress off,on]
        [--queue-seconds 0]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import uuid
from collections import Counter

from _common import (
    BenchExecutor,
    LoopLag,
    clear_journal,
    control,
    emulator,
    journal,
    machine,
    now,
    table,
)

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
    from covalent_braket_plugin.usage import wait_for_accounts

    wait_for_accounts()  # each job's usage.json is written before the next measurement
    return wall, lag, results == [i * i for i in range(size)], dispatch


class Counted(logging.Handler):
    """Counts the progress lines of the server log."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += "after submission" in record.getMessage()


def progress(on: bool) -> Counted:
    """The server log at INFO (progress lines on) or WARNING (off); a handler that counts."""
    from covalent_braket_plugin.covalent_loader import server_log

    for handler in [h for h in server_log.handlers if isinstance(h, Counted)]:
        server_log.removeHandler(handler)
    counted = Counted()
    server_log.addHandler(counted)
    server_log.setLevel(logging.INFO if on else logging.WARNING)
    return counted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,500")
    parser.add_argument("--poll", type=float, default=5.0)
    parser.add_argument("--max-concurrent-jobs", type=int, default=8)
    parser.add_argument(
        "--progress",
        default="off",
        help="on, off, or both (off,on): the server log at INFO, with the progress lines",
    )
    parser.add_argument(
        "--queue-seconds",
        type=float,
        default=0.0,
        help="seconds each job waits QUEUED in the emulator (the queue places are asked then)",
    )
    args = parser.parse_args()
    modes = [mode.strip() for mode in args.progress.split(",")]
    if not modes or any(mode not in ("on", "off") for mode in modes):
        parser.error(f"--progress takes on, off or off,on, not {args.progress!r}")
    rate, burst = QUOTAS["CreateJob"]
    rows = []
    raised = max(2, *(int(s) for s in args.sizes.split(",")))  # job quotas: every job at once
    with emulator(args.max_concurrent_jobs, lowest_priority=True, job_quota=raised) as url:
        asyncio.run(batch(2, args.poll))  # warm-up: clients, pre-flight cache
        control(url, "/settings", {"queue_seconds": args.queue_seconds}, method="POST")
        # One job's runtime, as one electron alone sees it in the same conditions (the queue
        # delay and the poll interval included): the target's allowance beyond the floor.
        alone = {}
        for mode in modes:
            progress(mode == "on")
            alone[mode] = asyncio.run(batch(1, args.poll))[0]
        for mode, size in ((m, int(s)) for m in modes for s in args.sizes.split(",")):
            counted = progress(mode == "on")
            clear_journal(url)
            wall, lag, correct, _ = asyncio.run(batch(size, args.poll))
            entries = [e for e in journal(url) if e["service"] == "braket"]
            mine = os.environ["AWS_ACCESS_KEY_ID"]
            ours = [e for e in entries if e["accessKeyId"] == mine]  # not the jobs' own
            calls = Counter(e["operation"] for e in ours)
            queue_info = sum("QueueInfo" in (e.get("query") or "") for e in ours)
            throttled = sum(e.get("error") == "ThrottlingException" for e in entries)
            floor = max(size - burst, 0) / rate
            runtime = alone[mode]
            rows.append(
                [
                    size,
                    f"{wall:.1f}",
                    f"{floor:.0f}",
                    f"{runtime:.1f}",
                    f"{floor * 1.1 + runtime:.1f}",
                    f"{wall / floor:.3f}" if floor else "-",
                    throttled,
                    f"{sum(calls.values()) / size:.2f}",
                    ", ".join(f"{op} {n}" for op, n in sorted(calls.items())),
                    mode,
                    queue_info,
                    counted.lines,
                    f"{lag.worst * 1000:.1f}",
                    correct,
                ]
            )
    print(
        table(
            f"Quotas ({machine()}, poll {args.poll:g} s, CreateJob {rate:g}/s burst {burst}, "
            f"jobs queued {args.queue_seconds:g} s, quotas enforced by the emulator)",
            [
                "electrons",
                "wall s",
                "quota floor s",
                "one electron alone s",
                "target: 1.1 x floor + one electron s",
                "wall / floor",
                "throttled responses",
                "Braket calls/job",
                "Braket calls",
                "progress",
                "GetJob with QueueInfo",
                "progress lines",
                "worst loop lag ms",
                "all correct",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
