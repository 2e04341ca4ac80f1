"""Overhead per task: BraketExecutor against the fewest raw boto3 calls that do the same work.

Both run the same job (the package's runner on a pickled function) on the same emulator, one
task at a time, polling every 50 ms. Overhead is wall time minus the job's own runtime
(``endedAt - startedAt``). The executor's time is split into phases; the raw sequence is
put_object, create_job, get_job until done, get_object.

    python benchmarks/overhead.py [--tasks 10]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import uuid

import boto3
import cloudpickle
from _common import BUCKET, IMAGE, ROLE, BenchExecutor, emulator, machine, now, table

from covalent_braket_plugin.job import ENTRY_POINT, runner_archive
from covalent_braket_plugin.job.runner import HP_INPUT_SHA256, HP_PYTHON_VERSION, HP_TASK_URI

POLL = 0.05


def work(x: int) -> int:
    return x * x


def job_runtime(job: dict) -> float:
    return (job["endedAt"] - job["startedAt"]).total_seconds()


def raw_task(s3: object, braket: object, runner_uri: str, x: int) -> tuple[float, float]:
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
        instanceConfig={"instanceType": "ml.m5.large", "volumeSizeInGb": 30},
        outputDataConfig={"s3Path": f"s3://{BUCKET}/{prefix}/output"},
        hyperParameters={
            HP_TASK_URI: f"s3://{BUCKET}/{prefix}",
            HP_PYTHON_VERSION: "%d.%d" % __import__("sys").version_info[:2],
            HP_INPUT_SHA256: hashlib.sha256(payload).hexdigest(),
        },
    )["jobArn"]
    while True:
        job = braket.get_job(jobArn=arn)
        if job["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            break
        __import__("time").sleep(POLL)
    result = cloudpickle.loads(
        s3.get_object(Bucket=BUCKET, Key=f"{prefix}/result.pkl")["Body"].read()
    )
    assert result["result"] == x * x, result
    return now() - started, job_runtime(job)


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


async def executor_task(x: int) -> tuple[float, float, dict[str, float]]:
    """One task through a fresh executor, on the long-lived event loop (as in the server)."""
    executor = BenchExecutor(poll_freq=POLL)
    timer = Timed(executor)
    metadata = {"dispatch_id": uuid.uuid4().hex, "node_id": 0, "results_dir": "/tmp"}
    started = now()
    assert await executor.run(work, [x], {}, metadata) == x * x
    wall = now() - started
    job = await asyncio.to_thread(boto3.client("braket").get_job, jobArn=executor.handle)
    return wall, job_runtime(job), timer.phases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10)
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
                wall, runtime, timed = await executor_task(x)
                ours.append((wall, runtime))
                phases.append(timed)
            return raw, ours, phases

        raw, ours, phases = asyncio.run(bench())

    def overhead(samples: list[tuple[float, float]]) -> float:
        return statistics.median(wall - runtime for wall, runtime in samples)

    raw_over, our_over = overhead(raw), overhead(ours)
    rows = [
        [
            "raw boto3 sequence",
            f"{statistics.median(w for w, _ in raw) * 1000:.0f}",
            f"{statistics.median(r for _, r in raw) * 1000:.0f}",
            f"{raw_over * 1000:.0f}",
            "1.00",
        ],
        [
            "BraketExecutor",
            f"{statistics.median(w for w, _ in ours) * 1000:.0f}",
            f"{statistics.median(r for _, r in ours) * 1000:.0f}",
            f"{our_over * 1000:.0f}",
            f"{our_over / raw_over:.2f}",
        ],
    ]
    print(
        table(
            f"Overhead per task ({machine()}, median of {tasks}, poll {POLL * 1000:.0f} ms)",
            ["path", "wall ms", "job runtime ms", "overhead ms", "overhead ratio"],
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
