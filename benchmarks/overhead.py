"""Overhead per task: BraketExecutor against the fewest raw boto3 calls that do the same work.

Both run the same job (the package's runner on a pickled function) on the same emulator, one
task at a time, interleaved, polling every 50 ms. Overhead is wall time minus the job's own
runtime (``endedAt - startedAt``). Part of it is the poll wait: the time from the job's end
(``endedAt``, on the same machine's clock) until its terminal status is in the client's hands,
up to one poll interval; the figure that excludes it is what each path itself spends. The
executor's time is split into phases; the raw sequence is put_object, create_job (the same job
definition as the executor's), get_job until done, get_object. Both are split into the same
phases: serialize, upload, submit, detect completion (the poll wait), download, deserialize.
Polling every 50 ms is faster than Braket's ``GetJob`` quota allows, so the emulator runs
without quotas and the executor unpaced (``pacing`` off): both paths poll at the same pace.

    python benchmarks/overhead.py [--tasks 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import cloudpickle
from _common import BUCKET, IMAGE, ROLE, BenchExecutor, emulator, machine, now, table

from covalent_braket_plugin import jobs, preflight, results, signing, transfer
from covalent_braket_plugin.job import ENTRY_POINT, runner_archive
from covalent_braket_plugin.job.runner import (
    HP_INPUT_SHA256,
    HP_PYTHON_VERSION,
    HP_RESULT_KEY,
    HP_TASK_URI,
    read_result_header,
)

POLL = 0.05


def work(x: int) -> int:
    return x * x


#: The phases both paths go through, in order (the job's own runtime aside).
PHASES = ("serialize", "upload", "submit", "detect completion", "download", "deserialize")


@dataclass
class Sample:
    wall: float  # seconds from the call to the result in hand
    runtime: float  # the job's own runtime, endedAt - startedAt
    poll_wait: float  # from endedAt until the terminal status was in hand
    phases: dict[str, float]  # seconds per phase

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
    phases: dict[str, float] = {}
    started = mark = now()

    def lap(phase: str) -> None:
        nonlocal mark
        phases[phase] = phases.get(phase, 0.0) + now() - mark
        mark = now()

    prefix = f"raw/{uuid.uuid4().hex}"
    payload = cloudpickle.dumps((work, [x], {}))
    digest = hashlib.sha256(payload).hexdigest()
    lap("serialize")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/input.pkl", Body=payload)
    lap("upload")
    name = f"raw-{uuid.uuid4().hex[:20]}"
    key = signing.attempt_key(f"s3://{BUCKET}/{prefix}", name)
    arn = braket.create_job(
        jobName=name,
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
            HP_PYTHON_VERSION: "{}.{}".format(*sys.version_info[:2]),
            HP_INPUT_SHA256: digest,
            HP_RESULT_KEY: key.hex(),  # the job runner authenticates its result with it
        },
    )["jobArn"]
    lap("submit")
    while True:
        job = braket.get_job(jobArn=arn)
        if job["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            seen = time.time()
            break
        time.sleep(POLL)
    mark = now()
    data = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/result.pkl")["Body"].read()
    lap("download")
    stream = io.BytesIO(data)
    read_result_header(stream)  # the runner's header before the pickle (not checked here)
    result = cloudpickle.loads(stream.read())
    lap("deserialize")
    assert result["result"] == x * x, result
    waited = poll_wait(job, seen)
    phases["detect completion"] = waited
    return Sample(now() - started, job_runtime(job), waited, phases)


class Timed:
    """Wraps the executor's blocking steps, and the pickling they do, to time each phase."""

    STEPS = (
        (preflight, "check", "pre-flight"),
        (transfer, "upload_task", "upload"),
        (jobs, "submit_attempt", "submit"),
        (results, "download", "download"),
        (results, "delete_task_objects", "clean-up"),
    )

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}

    @contextlib.contextmanager
    def steps(self) -> Iterator[None]:
        """While open, the executor's steps add their time to their phase."""
        saved = [(module, name, getattr(module, name)) for module, name, _ in self.STEPS]
        for (module, name, phase), (_, _, original) in zip(self.STEPS, saved, strict=True):
            setattr(module, name, self._timed(original, phase))
        try:
            yield
        finally:
            for module, name, original in saved:
                setattr(module, name, original)

    def _timed(self, original: object, phase: str, within: str | None = None) -> object:
        """``original``, adding its time to ``phase`` (and taking it from ``within``)."""

        def timed(*args: object, **kwargs: object) -> object:
            started = now()
            try:
                return original(*args, **kwargs)
            finally:
                spent = now() - started
                self.phases[phase] = self.phases.get(phase, 0.0) + spent
                if within:
                    self.phases[within] = self.phases.get(within, 0.0) - spent

        return timed

    def pickling(self) -> contextlib.AbstractContextManager:
        """While open, cloudpickle's calls count as (de)serialization, not transfer time."""
        timer = self

        @contextlib.contextmanager
        def patched() -> object:
            saved = {name: getattr(cloudpickle, name) for name in ("dump", "load", "loads")}
            cloudpickle.dump = timer._timed(saved["dump"], "serialize", within="upload")
            cloudpickle.load = timer._timed(saved["load"], "deserialize", within="download")
            cloudpickle.loads = timer._timed(saved["loads"], "deserialize", within="download")
            try:
                yield
            finally:
                for name, function in saved.items():
                    setattr(cloudpickle, name, function)

        return patched()


async def executor_task(x: int) -> tuple[Sample, dict[str, float]]:
    """One task through a fresh executor, on the long-lived event loop (as in the server)."""
    executor = BenchExecutor(poll_freq=POLL, pacing=False)
    timer = Timed()
    seen: list[float] = []
    query_result = executor.query_result

    async def noting_query_result(*args: object) -> object:  # called once polling has the status
        seen.append(time.time())
        return await query_result(*args)

    executor.query_result = noting_query_result
    metadata = {"dispatch_id": uuid.uuid4().hex, "node_id": 0, "results_dir": "/tmp"}
    with timer.pickling(), timer.steps():
        started = now()
        assert await executor.run(work, [x], {}, metadata) == x * x
        wall = now() - started
    job = await asyncio.to_thread(boto3.client("braket").get_job, jobArn=executor.handle)
    waited = poll_wait(job, seen[0])
    timer.phases["detect completion"] = waited
    return Sample(wall, job_runtime(job), waited, timer.phases)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=30)
    tasks = parser.parse_args().tasks
    with emulator(quotas=False):
        s3, braket = boto3.client("s3"), boto3.client("braket")
        data, _ = runner_archive()
        s3.put_object(Bucket=BUCKET, Key="raw/runner.tar.gz", Body=data)
        runner_uri = f"s3://{BUCKET}/raw/runner.tar.gz"

        async def bench() -> tuple[list, list]:
            await executor_task(0)  # warm-up: clients, pre-flight cache
            raw_task(s3, braket, runner_uri, 0)
            raw, ours = [], []
            for x in range(1, tasks + 1):  # interleaved, so both see the same machine state
                raw.append(raw_task(s3, braket, runner_uri, x))
                ours.append(await executor_task(x))
            return raw, ours

        raw, ours = asyncio.run(bench())

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
            f"Overhead per task ({machine()}, median (quartiles) of {tasks}, "
            f"poll {POLL * 1000:.0f} ms)",
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

    def phase_ms(samples: list[Sample], phase: str) -> str:
        if not any(phase in sample.phases for sample in samples):
            return "-"
        return f"{statistics.median(s.phases.get(phase, 0.0) for s in samples) * 1000:.1f}"

    print(
        table(
            "Phases, median ms (submit: CreateJob; detect completion: the poll wait)",
            ["phase", "raw boto3 sequence", "BraketExecutor"],
            [
                [phase, phase_ms(raw, phase), phase_ms(ours, phase)]
                for phase in ("pre-flight", *PHASES, "clean-up")
            ],
        )
    )


if __name__ == "__main__":
    main()
