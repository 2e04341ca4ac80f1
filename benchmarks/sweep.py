"""Sweep: N electrons against an account's default job quotas, as a parameter sweep sends them.

Braket runs a handful of hybrid jobs at once per account and Region (the concurrent-jobs quota,
5 by default) and refuses ``CreateJob`` past it (``ServiceQuotaExceededException``). The
executor's job slots keep the electrons within it: each waits its turn, none fails. A job's
instance takes a while to start (about a minute on AWS; ``--start-seconds`` here, the
emulator's ``job_start_seconds``), so N electrons of W seconds of work need at least
N / slots x (start + W) seconds when each has a job of its own: the floor. Packing puts the
electrons that wait for a slot into shared jobs, and goes below it.

The sweep is sent seven ways in one run (``MODES``): one job per electron (``pack=False``),
packed with the defaults (a member per core of the job's instance, more while cores idle),
packed with 8 and 20 members at once (the electrons sleep, as one that waits on a QPU does),
each also with warm
jobs (the first jobs take the electrons that wait: no second round of job starts), and with
the Braket SDK's ``@hybrid_job`` (one job per call, as many calls at once as the quota
allows, each from a process of its own).
For each it prints the electrons correct and failed, the wall time beside the floor, one
electron alone on the idle account, the jobs created, the billed instance-seconds (the sum of
the jobs' ``billableDuration``), the Braket calls per electron and the throttled or refused
responses (from the emulator's journal).

    python benchmarks/sweep.py [--electrons 100] [--start-seconds 5] [--work-seconds 1]
        [--poll 1] [--modes 0,1,2,3,4,5,6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import uuid
from typing import Any

from _common import (
    IMAGE,
    ROLE,
    BenchExecutor,
    clear_journal,
    control,
    emulator,
    journal,
    machine,
    now,
    table,
)

from covalent_braket_plugin.service import CONCURRENT_JOBS_QUOTA


def working(seconds: float) -> Any:
    """An electron of ``seconds`` of work that returns its argument squared."""

    def electron(x: int) -> int:
        import time

        time.sleep(seconds)
        return x * x

    return electron


async def sweep(
    size: int, work: float, poll: float, **settings: Any
) -> tuple[float, list[Any], list[str]]:
    """Run ``size`` electrons at once; the wall time, their outcomes and their jobs."""
    dispatch = uuid.uuid4().hex
    executors = [BenchExecutor(poll_freq=poll, **settings) for _ in range(size)]
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
    from covalent_braket_plugin import packs
    from covalent_braket_plugin.usage import wait_for_accounts

    await packs.settled()

    wait_for_accounts()
    handles = {str(getattr(e, "handle", "") or "").split(" member ")[0] for e in executors}
    return wall, outcomes, sorted(handles - {""})


def hybrid_call(x: int, work: float) -> tuple[Any, str]:
    """One ``@hybrid_job`` call, waited for: its value and its job. In a process and a
    working directory of its own: the SDK writes each call's source folder into the working
    directory and downloads each job's results there as ``model.tar.gz``, so calls that share
    one read each other's results."""
    from braket.jobs import hybrid_job

    @hybrid_job(device=None, image_uri=IMAGE, role_arn=ROLE)
    def electron(x: int, seconds: float) -> int:
        import time

        time.sleep(seconds)
        return x * x

    here = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            job = electron(x, work)
            return job.result()["result"], job.arn
        finally:
            os.chdir(here)


def hybrid_jobs(size: int, work: float, slots: int) -> tuple[float, list[Any], list[str]]:
    """The same sweep with the Braket SDK's ``@hybrid_job``: one job per call, ``slots`` calls
    at a time, each from a process of its own (more are refused past the quota: the SDK does
    not wait for a slot)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    started = now()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=slots, mp_context=context) as pool:
        futures = [pool.submit(hybrid_call, i, work) for i in range(size)]
    wall = now() - started
    outcomes, arns = [], []
    for future in futures:
        try:
            value, arn = future.result()
        except Exception as exc:
            outcomes.append(exc)
            continue
        outcomes.append(value)
        arns.append(arn)
    return wall, outcomes, arns


def billed_seconds(arns: list[str]) -> float:
    """The sum of the jobs' ``billableDuration`` (milliseconds), in seconds; how many
    electrons each ran goes into :data:`SHAPES`."""
    import boto3
    from botocore.config import Config

    # On the emulator, as this process's settings say; within GetJob's quota (burst 25).
    braket = boto3.client("braket", config=Config(retries={"mode": "adaptive", "max_attempts": 20}))
    total = 0
    shape = []
    for arn in arns:
        if arn:
            job = braket.get_job(jobArn=arn)
            total += job.get("billableDuration") or 0
            names = (job.get("hyperParameters") or {}).keys()
            shape.append(sum(name.startswith("covalent_member_") for name in names) or 1)
    SHAPES.append(sorted(shape, reverse=True))
    return total / 1000


#: The electrons each job of a run ran (its own, or a packed job's first members), per run.
SHAPES: list[list[int]] = []


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


#: The ways a sweep is sent, measured in one run: (label, executor settings; None for the SDK).
MODES: list[tuple[str, dict[str, Any] | None]] = [
    ("one job per electron (pack=False)", {"pack": False}),
    ("packed (defaults: a member per core, more while cores idle)", {}),
    ("packed, pack_parallel=8", {"pack_parallel": 8}),
    ("packed and warm, pack_parallel=8, warm_seconds=5", {"pack_parallel": 8, "warm_seconds": 5}),
    ("packed, pack_parallel=20", {"pack_parallel": 20}),
    ("packed and warm, pack_parallel=20, warm_seconds=5", {"pack_parallel": 20, "warm_seconds": 5}),
    ("@hybrid_job, one job per call, 5 calls at a time", None),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--electrons", type=int, default=100)
    parser.add_argument("--start-seconds", type=float, default=5.0)
    parser.add_argument("--work-seconds", type=float, default=1.0)
    parser.add_argument("--poll", type=float, default=1.0)
    parser.add_argument("--modes", default="0,1,2,3,4,5,6", help="which of MODES to run (indices)")
    args = parser.parse_args()
    slots = CONCURRENT_JOBS_QUOTA[1]  # the emulator's default quota, as the service's
    rows = []
    floor = args.electrons / slots * (args.start_seconds + args.work_seconds)
    with emulator(lowest_priority=True) as url:
        control(url, "/settings", {"job_start_seconds": args.start_seconds}, method="POST")
        asyncio.run(sweep(1, args.work_seconds, args.poll))  # warm-up: clients, pre-flight
        for index in [int(i) for i in args.modes.split(",")]:
            label, settings = MODES[index]
            if settings is None:
                alone = hybrid_jobs(1, args.work_seconds, slots)[0]
                clear_journal(url)
                wall, outcomes, arns = hybrid_jobs(args.electrons, args.work_seconds, slots)
            else:
                alone = asyncio.run(sweep(1, args.work_seconds, args.poll, **settings))[0]
                clear_journal(url)
                wall, outcomes, arns = asyncio.run(
                    sweep(args.electrons, args.work_seconds, args.poll, **settings)
                )
            found = figures(url, args.electrons, wall, outcomes)
            billed = billed_seconds(arns)
            rows.append(
                [
                    label,
                    found["correct"],
                    found["failed"],
                    f"{wall:.1f}",
                    f"{wall / floor:.3f}",
                    f"{alone:.1f}",
                    found["created"],
                    f"{billed:.1f}",
                    f"{found['calls']:.2f}",
                    found["refused"],
                ]
            )
            print(" | ".join(str(cell) for cell in rows[-1]), flush=True)  # as it goes
            if settings is not None:
                print(f"  electrons per job (first members): {SHAPES[-1]}", flush=True)
            wrong = [(i, out) for i, out in enumerate(outcomes) if out != i * i][:3]
            if wrong:
                print(f"  not right (electron, outcome), the first: {wrong}", flush=True)
    print(
        table(
            f"Sweep of {args.electrons} electrons ({machine()}, {slots} job slots (the default "
            f"concurrent-jobs quota), job start {args.start_seconds:g} s standing in for AWS's "
            f"minute or more, work {args.work_seconds:g} s, poll {args.poll:g} s; floor of one "
            f"job per electron N / slots x (start + work) = {floor:.0f} s)",
            [
                "sent as",
                "correct",
                "failed",
                "wall s",
                "wall / floor",
                "one electron alone s",
                "jobs created",
                "billed instance-s",
                "Braket calls/electron",
                "throttled or refused",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
