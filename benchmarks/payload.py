"""Payload: arguments and results of 1 MiB, 100 MiB and 1 GiB through the executor's transfer
path, against boto3's own ``upload_fileobj`` / ``download_fileobj`` on the same endpoint.

Each measurement runs in a fresh process; its resident set's peak is counted from just before
the payload is made (Linux: ``/proc/self/clear_refs`` then ``VmHWM``) and reported relative to
the payload, after subtracting the resident set at that moment.

    python benchmarks/payload.py [--sizes 1,100,1024] [--repeat 3]   (MiB; 1 GiB runs once)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
import uuid

from _common import BUCKET, BenchExecutor, emulator, machine, table

MIB = 1024 * 1024


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mib() -> float:
    """The resident set now; on Linux it also restarts the peak count from here (so an earlier
    high-water mark, of imports or the warm-up, is not charged to the transfer)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass
    return _status_mib("VmRSS")


def peak_mib() -> float:
    """The resident set's peak since :func:`rss_mib` (``VmHWM``; ``ru_maxrss`` elsewhere)."""
    return _status_mib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(mode: str, size: int, dispatch: str = "") -> dict:
    """One transfer in this (fresh) process: returns seconds and peak memory above baseline."""
    import boto3

    from covalent_braket_plugin import aws, results, transfer
    from covalent_braket_plugin.job.runner import RESULT_FORMAT, read_result_header
    from covalent_braket_plugin.location import TaskLocation

    executor = BenchExecutor()
    settings = executor.settings()
    clients = aws.clients_for(settings)
    s3 = boto3.client("s3")
    location = TaskLocation.new(BUCKET, uuid.uuid4().hex, 0)
    # Warm both paths with a tiny transfer first (lazy imports, first connection, botocore's
    # first-call set-up), so that what is timed is the transfer itself.
    if mode == "upload-executor":
        transfer.upload_task(
            settings, TaskLocation.new(BUCKET, uuid.uuid4().hex, 0), (len, [b""], {})
        )
    elif mode == "upload-boto3":
        s3.upload_fileobj(io.BytesIO(b"warm-up"), BUCKET, f"ref/{uuid.uuid4().hex}")
    if mode == "prepare":  # a result object for a download measured in another process
        import cloudpickle

        outcome = {
            "format": RESULT_FORMAT,
            "ok": True,
            "result": b"\x01" * size,
            "stdout": "",
            "stderr": "",
            "job_name": location.job_name,
            "task_uri": location.uri,
        }
        from covalent_braket_plugin import signing
        from covalent_braket_plugin.job.runner import result_header, result_mac

        pickled = cloudpickle.dumps(outcome)
        key = signing.attempt_key(location.uri, location.job_name)
        mac = result_mac(key, location.uri, location.job_name, [pickled])
        header = result_header(location.uri, location.job_name, mac)
        s3.upload_fileobj(io.BytesIO(header + pickled), BUCKET, location.key("result.pkl"))
        return {"dispatch": location.dispatch_id}

    if mode.startswith("download"):
        import cloudpickle  # the executor's lazy import, outside the timing

        location = TaskLocation.new(BUCKET, dispatch, 0)
        job = {
            "jobArn": "arn:aws:braket:us-east-1:123456789012:job/bench",
            "jobName": location.job_name,
            "status": "COMPLETED",
        }
        for client in (s3, clients.s3):  # first GET on each client, outside the timing
            client.put_object(Bucket=BUCKET, Key="ref/warm-up", Body=b"warm-up")
            client.get_object(Bucket=BUCKET, Key="ref/warm-up")["Body"].read()

    def move(payload: bytes) -> int:
        """The transfer measured; the length of what arrived (downloads) or was sent."""
        if mode == "upload-executor":
            where = TaskLocation.new(BUCKET, uuid.uuid4().hex, 0)
            transfer.upload_task(settings, where, (len, [payload], {}))
            return len(payload)
        if mode == "upload-boto3":
            s3.upload_fileobj(io.BytesIO(payload), BUCKET, f"ref/{uuid.uuid4().hex}")
            return len(payload)
        if mode == "download-executor":
            return len(results.download(settings, location, job)["result"])
        sink = io.BytesIO()
        s3.download_fileobj(BUCKET, location.key("result.pkl"), sink)
        sink.seek(0)
        read_result_header(sink)  # the runner's header before the pickle (not checked here)
        return len(cloudpickle.load(sink)["result"])

    upload = mode.startswith("upload")
    baseline = rss_mib()
    payload = b"\x01" * size if upload else b""  # touched pages: the resident set sees it
    started = time.perf_counter()
    assert move(payload) == size
    seconds = time.perf_counter() - started
    peak = peak_mib() - baseline
    heap = None
    if size < 1024 * MIB:
        # Below 1 GiB the allocator may serve the payload from memory already resident, which
        # the resident set cannot see: the same transfer again, untimed, with the Python heap
        # traced (an upload's payload, made before, counts in full).
        import tracemalloc

        tracemalloc.start()
        assert move(payload) == size
        heap = tracemalloc.get_traced_memory()[1] / MIB + (size / MIB if upload else 0)
        tracemalloc.stop()
    del clients
    return {"seconds": seconds, "peak_above_baseline_mib": peak, "heap_peak_mib": heap}


def run_case(mode: str, size: int, dispatch: str = "") -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--measure", mode, str(size), dispatch],
        capture_output=True,
        text=True,
        env=os.environ,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def heap_ratio(run: dict, mib: int) -> str:
    return "-" if run["heap_peak_mib"] is None else f"{run['heap_peak_mib'] / mib:.2f}"


def median_run(results: list[dict]) -> dict:
    """The run with the median time (its own peak memory with it)."""
    return sorted(results, key=lambda r: r["seconds"])[len(results) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,100,1024")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case below 1 GiB")
    parser.add_argument("--measure", nargs=3)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], int(args.measure[1]), args.measure[2])))
        return
    rows = []
    with emulator():
        for mib in (int(s) for s in args.sizes.split(",")):
            size = mib * MIB
            dispatch = run_case("prepare", size)["dispatch"]
            for direction in ("upload", "download"):
                # Interleaved, each in a fresh process; the median run of each path counts.
                runs = args.repeat if mib < 1024 else 1
                pairs = [
                    (
                        run_case(f"{direction}-executor", size, dispatch),
                        run_case(f"{direction}-boto3", size, dispatch),
                    )
                    for _ in range(runs)
                ]
                ours = median_run([p[0] for p in pairs])
                ref = median_run([p[1] for p in pairs])
                rows.append(
                    [
                        f"{mib} MiB",
                        direction,
                        f"{mib / ours['seconds']:.0f}",
                        f"{mib / ref['seconds']:.0f}",
                        f"{ref['seconds'] / ours['seconds']:.2f}",
                        f"{ours['peak_above_baseline_mib'] / mib:.2f}",
                        f"{ref['peak_above_baseline_mib'] / mib:.2f}",
                        heap_ratio(ours, mib),
                        heap_ratio(ref, mib),
                    ]
                )
    print(
        table(
            f"Payload transfer ({machine()}; emulator in its own process)",
            [
                "payload",
                "direction",
                "executor MiB/s",
                "boto3 MiB/s",
                "throughput ratio",
                "executor peak / payload",
                "boto3 peak / payload",
                "executor heap peak / payload",
                "boto3 heap peak / payload",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
