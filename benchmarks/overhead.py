"""Overhead per task: BraketExecutor against the fewest raw boto3 calls that do the same work.

Both run the same job (the package's runner on a pickled function) on the same emulator, one
task at a time, interleaved, polling every 50 ms. Overhead is wall time minus the job's own
runtime (``endedAt - startedAt``). Part of it is the poll wait: the time from the job's end
(``endedAt``, on the same machine's clock) until its terminal status is in the client's hands,
up to one poll interval; the figure that excludes it is what each path itself spends. The
executor's time is split into phases; the raw sequence is put_object, create_job (the same job
definition as the executor's), get_job until done, get_object.

    python benchmarks/overhead.py [--tasks 30]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import sys
import time
import uuid
from dataclasses import dataclass

import boto3
import cloudpickle
from _common import BUCKET, IMAGE, ROLE, BenchExecutor, emulator, machine, now, table

from covalent_braket_plugin.job import ENTRY_POINT, runner_archive
from covalent_braket_plugin.job.runner import HP_INPUT_SHA256, HP_PYTHON_VERSION, HP_TASK_URI

POLL = 0.05


def work(x: int) -> int:
    return x * x


@dataclass
class Sample:
    wall: float  # seconds from the call to the result in hand
    runtime: float  # the job's own runtime, endedAt - startedAt
    poll_wait: float  # from endedAt until the terminal status was in hand

    @property
    def overhead(self) -> float:
        return self.wall - self.runtime

    @property
    def own(self) -> float:
        return self.overhead - self.poll_wait


def job_runtime(job: dict) -> float:
    return (job["endedAt"] - job["startedAt"]).total_seconds()


def poll_wait(job: dict, seen: float) -> float:
    return seen - job["endedAt"].timestamp()


def raw_task(s3: object, braket: object, runner_uri: str, x: int) -> Sample:
    started = now()
    prefix = f"raw/{uuid.uuid4().hex}"
    payload = cloudpickle.dumps((work, [x], {}))
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/input.pkl", Body=payload)
    arn = braket.create_job(
        jobName=f"raw-{uuid.uuid4().hex[:20]}",
        roleArn=ROLE,
        algorithmSpecification={
            "scriptModeConfig": {
                "entryPoint": ENTRY_POINT,
                "s3Uri": runner_uri,
                "compressionType": "GZIP",
            },
            "containerImage": {"uri": IMAGE},
        },
        deviceConfig={"device": "arn:aws:braket:::device/quantum-simulator/amazon/sv1"},
        # The same job definition as the executor's, so the service does the same work.
        instanceConfig={"instanceType": "ml.m5.large", "volumeSizeInGb": 30, "instanceCount": 1},
        stoppingCondition={"maxRuntimeInSeconds": 300},
        outputDataConfig={"s3Path": f"s3://{BUCKET}/{prefix}/output"},
        checkpointConfig={"s3Uri": f"s3://{BUCKET}/{prefix}/checkpoints"},
        tags={"covalent:dispatch_id": "raw", "covalent:node_id": str(x), "covalent:attempt": "0"},
        hyperParameters={
            HP_TASK_URI: f"s3://{BUCKET}/{prefix}",
            HP_PYTHON_VERSION: "%d.%d" % sys.version_info[:2],
            HP_INPUT_SHA256: hashlib.sha256(payload).hexdigest(),
        },
    )["jobArn"]
    while True:
        job = braket.get_job(jobArn=arn)
        if job["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            seen = time.time()
            break
        time.sleep(POLL)
    result = cloudpickle.loads(
        s3.get_object(Bucket=BUCKET, Key=f"{prefix}/result.pkl")["Body"].read()
    )
    assert result["result"] == x * x, result
    return Sample(now() - started, job_runtime(job), poll_wait(job, seen))


class Timed:
    """Wraps the executor's blocking helpers to time each phase."""

    def __init__(self, executor: object) -> None:
        self.phases: dict[str, float] = {}
        for name, phase in (
            ("_preflight_sync", "pre-flight (cached after the first task)"),
            ("_upload_task_sync", "serialize + upload"),
            ("_submit_sync", "submit (CreateJob + GetJob)"),
            ("_download_result_sync", "download + deserialize"),
            ("_delete_objects_sync", "clean-up"),
        ):
            self._wrap(executor, name, phase)

    def _wrap(self, executor: object, name: str, phase: str) -> None:
        original = getattr(executor, name)

        def timed(*args: object, **kwargs: object) -> object:
            started = now()
            try:
                return original(*args, **kwargs)
            finally:
                self.phases[phase] = self.phases.get(phase, 0.0) + now() - started

        setattr(executor, name, timed)


async def executor_task(x: int) -> tuple[Sample, dict[str, float]]:
    """One task through a fresh executor, on the long-lived event loop (as in the server)."""
    executor = BenchExecutor(poll_freq=POLL)
    timer = Timed(executor)
    seen: list[float] = []
    query_result = executor.query_result

    async def noting_query_result(*args: object) -> object:  # called once polling has the status
        seen.append(time.time())
        return await query_result(*args)

    executor.query_result = noting_query_result
    metadata = {"dispatch_id": uuid.uuid4().hex, "node_id": 0, "results_dir": "/tmp"}
    started = now()
    assert await executor.run(work, [x], {}, metadata) == x * x
    wall = now() - started
    job = await asyncio.to_thread(boto3.client("braket").get_job, jobArn=executor.handle)
    return Sample(wall, job_runtime(job), poll_wait(job, seen[0])), timer.phases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=30)
    tasks = parser.parse_args().tasks
    with emulator():
        s3, braket = boto3.client("s3"), boto3.client("braket")
        data, _ = runner_archive()
        s3.put_object(Bucket=BUCKET, Key="raw/runner.tar.gz", Body=data)
        runner_uri = f"s3://{BUCKET}/raw/runner.tar.gz"

        async def bench() -> tuple[list, list, list]:
            await executor_task(0)  # warm-up: clients, pre-flight cache
            raw_task(s3, braket, runner_uri, 0)
            raw, ours, phases = [], [], []
            for x in range(1, tasks + 1):  # interleaved, so both see the same machine state
                raw.append(raw_task(s3, braket, runner_uri, x))
                sample, timed = await executor_task(x)
                ours.append(sample)
                phases.append(timed)
            return raw, ours, phases

        raw, ours, phases = asyncio.run(bench())

    def ms(samples: list[Sample], field: str) -> str:
        values = sorted(getattr(sample, field) * 1000 for sample in samples)
        quartiles = statistics.quantiles(values, n=4)
        return f"{statistics.median(values):.0f} ({quartiles[0]:.0f}-{quartiles[2]:.0f})"

    def ratio(field: str) -> str:
        median = lambda samples: statistics.median(getattr(s, field) for s in samples)  # noqa: E731
        return f"{median(ours) / median(raw):.2f}"

    rows = [
        [
            name,
            ms(samples, "wall"),
            ms(samples, "runtime"),
            ms(samples, "poll_wait"),
            ms(samples, "overhead"),
            ms(samples, "own"),
        ]
        for name, samples in (("raw boto3 sequence", raw), ("BraketExecutor", ours))
    ]
    rows.append(["ratio (executor / raw)", "", "", "", ratio("overhead"), ratio("own")])
    print(
        table(
            f"Overhead per task ({machine()}, median (quartiles) of {tasks}, poll {POLL * 1000:.0f} ms)",
            [
                "path",
                "wall ms",
                "job runtime ms",
                "poll wait ms",
                "overhead ms",
                "overhead excl. poll wait ms",
            ],
            rows,
        )
    )
    names = list(phases[-1])
    print(
        table(
            "BraketExecutor phases (median ms)",
            ["phase", "ms"],
            [[n, f"{statistics.median(p.get(n, 0.0) for p in phases) * 1000:.1f}"] for n in names],
        )
    )


if __name__ == "__main__":
    main()
