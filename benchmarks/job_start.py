"""Job start-up on Braket-in-a-box: jobs forked by the warm launcher against fresh processes.

For three kinds of script-mode job (one that prints a line; one that imports covalent and
cloudpickle first; one that runs one SV1 task through the Braket SDK's ``AwsDevice``), the time
from sending ``CreateJob`` to the job's first line of user code (a wall-clock reading the job
prints first, read back from its CloudWatch log) and to ``GetJob`` answering COMPLETED (polled
every 10 ms). The same emulator runs them warm (``warm_launcher`` on, the default) and cold
(off, each job a fresh ``python -m`` process, as before the launcher), in turn, after one
unmeasured run of each; quotas are off, so that the polling is not throttled.

    python benchmarks/job_start.py [--runs 10]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tarfile
import textwrap
import time
import uuid
from typing import Any

from _common import BUCKET, IMAGE, ROLE, control, emulator, machine, table

SV1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
FIRST_LINE = "import time\nprint('started', time.time(), flush=True)\n"

#: Each kind of job: its entry module's code after the first line.
JOBS = {
    "prints one line": "print('hello')\n",
    "imports covalent, cloudpickle": """
        import cloudpickle
        import covalent
        print(covalent.__name__, cloudpickle.__name__)
        """,
    "one SV1 task (Braket SDK)": """
        import os
        from braket.aws import AwsDevice
        from braket.circuits import Circuit
        task = AwsDevice(os.environ["AMZN_BRAKET_DEVICE_ARN"]).run(Circuit().h(0), shots=10)
        print(sorted(task.result().measurement_counts))
        """,
}


def archive(source: str) -> bytes:
    data = source.encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("job.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def settings(url: str, **changes: Any) -> None:
    control(url, "/settings", changes, method="POST")


def one_job(braket: Any, logs: Any, script_uri: str) -> tuple[float, float]:
    """Seconds from CreateJob to the first line of user code and to COMPLETED."""
    name = f"start-{uuid.uuid4().hex[:12]}"
    sent = time.time()
    arn = braket.create_job(
        jobName=name,
        roleArn=ROLE,
        algorithmSpecification={
            "scriptModeConfig": {
                "entryPoint": "job",
                "s3Uri": script_uri,
                "compressionType": "GZIP",
            },
            "containerImage": {"uri": IMAGE},
        },
        deviceConfig={"device": SV1},
        instanceConfig={"instanceType": "ml.m5.large", "volumeSizeInGb": 30},
        outputDataConfig={"s3Path": f"s3://{BUCKET}/jobs/{name}"},
        stoppingCondition={"maxRuntimeInSeconds": 600},
    )["jobArn"]
    while True:
        status = braket.get_job(jobArn=arn)["status"]
        if status in ("COMPLETED", "FAILED", "CANCELLED"):
            done = time.time()
            break
        time.sleep(0.01)
    assert status == "COMPLETED", braket.get_job(jobArn=arn).get("failureReason")
    streams = logs.describe_log_streams(
        logGroupName="/aws/braket/jobs", logStreamNamePrefix=f"{name}/"
    )["logStreams"]
    for stream in streams:
        for event in logs.get_log_events(
            logGroupName="/aws/braket/jobs",
            logStreamName=stream["logStreamName"],
            startFromHead=True,
        )["events"]:
            if event["message"].startswith("started "):
                return float(event["message"].split()[1]) - sent, done - sent
    raise AssertionError(f"no first line in the log of {name}")


def cell(samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"{statistics.median(ms):.0f} ({min(ms):.0f}-{max(ms):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    import boto3

    with emulator(quotas=False) as url:
        s3, braket, logs = boto3.client("s3"), boto3.client("braket"), boto3.client("logs")
        uris = {}
        for number, (kind, body) in enumerate(JOBS.items()):
            key = f"start/job-{number}.tar.gz"
            code = FIRST_LINE + textwrap.dedent(body)
            s3.put_object(Bucket=BUCKET, Key=key, Body=archive(code))
            uris[kind] = f"s3://{BUCKET}/{key}"
        health = control(url, "/health")
        while not health["launcher"]["alive"]:  # the warm parent loads its imports once
            time.sleep(0.1)
            health = control(url, "/health")
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for run in range(runs + 1):  # run 0 warms caches and is not counted
            for kind, uri in uris.items():
                order = ("cold", "warm") if run % 2 else ("warm", "cold")
                for path in order:
                    settings(url, warm_launcher=path == "warm")
                    sample = one_job(braket, logs, uri)
                    if run:
                        samples.setdefault((kind, path), []).append(sample)
        health = control(url, "/health")
    rows = []
    for kind in JOBS:
        cold_first, cold_done = zip(*samples[kind, "cold"], strict=True)
        warm_first, warm_done = zip(*samples[kind, "warm"], strict=True)
        rows.append(
            [
                kind,
                cell(list(cold_first)),
                cell(list(warm_first)),
                cell(list(cold_done)),
                cell(list(warm_done)),
                f"{statistics.median(cold_done) / statistics.median(warm_done):.1f}x",
            ]
        )
    print(
        table(
            f"CreateJob to first line of user code and to COMPLETED ({machine()}; ms, median "
            f"(min-max) of {runs}, interleaved)",
            [
                "job",
                "cold: first line",
                "warm: first line",
                "cold: COMPLETED",
                "warm: COMPLETED",
                "COMPLETED, cold / warm",
            ],
            rows,
        )
    )
    launcher = health["launcher"]
    print(
        f"\nWarm launcher: preloaded {', '.join(launcher['preloaded'])}; skipped "
        f"{launcher['skipped'] or 'none'}; jobs forked {launcher['jobs_forked']}, fallbacks "
        f"{launcher['fallbacks']}, parents replaced {launcher['zygotes_replaced']}"
    )


if __name__ == "__main__":
    main()
