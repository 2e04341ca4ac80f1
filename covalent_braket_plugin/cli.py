"""The ``covalent-braket`` command.

``covalent-braket emulator``  serve Braket-in-a-box on a loopback port until SIGINT/SIGTERM.
``covalent-braket demo``      run a workflow through a throw-away Covalent server onto the
                              emulator, then stop everything it started.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence


def _emulator(args: argparse.Namespace) -> int:
    from .emulator import BraketEmulator, RuntimeSettings

    settings = RuntimeSettings(queue_seconds=args.queue_seconds, max_concurrent_jobs=args.max_concurrent_jobs)
    emulator = BraketEmulator(host=args.host, port=args.port, work_dir=args.work_dir, settings=settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    url = emulator.start()
    print(f"Braket emulator listening on {url}", flush=True)
    print(f"  export AWS_ENDPOINT_URL={url} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
          "AWS_DEFAULT_REGION=us-east-1", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        print("Braket emulator stopped", flush=True)
    return 0


DEMO_BUCKET = "amazon-braket-covalent-job-resources"
DEMO_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/covalent-braket:latest"


def _demo(args: argparse.Namespace) -> int:
    from .emulator import BraketEmulator
    from .sandbox import CovalentServer, covalent_env, emulator_env

    started = time.monotonic()
    with BraketEmulator() as url:
        print(f"[demo] Braket emulator on {url}", flush=True)
        env = emulator_env(url)
        server = CovalentServer(env=env)
        # This process is the demo's Covalent client: confine it to the server's HOME too.
        os.environ.update(covalent_env(server.home))
        os.environ.update(env)
        try:
            print("[demo] starting an isolated Covalent server ...", flush=True)
            address = server.start()
            print(f"[demo] Covalent server on {address}", flush=True)
            return _demo_dispatch(address, args.poll_freq, started)
        except KeyboardInterrupt:
            print("[demo] interrupted; stopping", flush=True)
            return 130
        finally:
            server.stop()
            print("[demo] stopped the Covalent server and the emulator", flush=True)


def _demo_dispatch(address: str, poll_freq: float, started: float) -> int:
    import boto3
    import covalent as ct

    from .braket import BraketExecutor

    boto3.client("s3").create_bucket(Bucket=DEMO_BUCKET)
    executor = BraketExecutor(
        s3_bucket_name=DEMO_BUCKET,
        ecr_image_uri=DEMO_IMAGE,
        braket_job_execution_role_name="covalent-braket-iam-role",
        quantum_device="arn:aws:braket:::device/quantum-simulator/amazon/sv1",
        classical_device="ml.m5.large",
        storage=30,
        time_limit=300,
        poll_freq=poll_freq,
    )

    @ct.electron(executor=executor)
    def where_am_i(num_qubits: int) -> dict:
        import os as _os

        return {
            "device": _os.environ["AMZN_BRAKET_DEVICE_ARN"],
            "job": _os.environ["AMZN_BRAKET_JOB_NAME"],
            "qubits": num_qubits,
        }

    @ct.lattice
    def workflow(num_qubits: int) -> dict:
        return where_am_i(num_qubits=num_qubits)

    dispatch_id = ct.dispatch(workflow, dispatcher_addr=address)(1)
    print(f"[demo] dispatched {dispatch_id}", flush=True)
    braket = boto3.client("braket")
    last = None
    while True:
        result = ct.get_result(dispatch_id, wait=False, dispatcher_addr=address)
        jobs = braket.search_jobs(filters=[{"name": "tags.covalent:dispatch_id", "operator": "EQUAL", "values": [dispatch_id]}])["jobs"]
        state = (str(result.status), tuple((job["jobName"], job["status"]) for job in jobs))
        if state != last:
            jobs_text = ", ".join(f"{name}: {status}" for name, status in state[1]) or "no job yet"
            print(f"[demo] workflow {state[0]}; Braket job {jobs_text}", flush=True)
            last = state
        if str(result.status) in ("COMPLETED", "FAILED", "CANCELLED"):
            break
        time.sleep(0.5)
    result = ct.get_result(dispatch_id, wait=True, dispatcher_addr=address)
    print(f"Result: {result.result}")
    if jobs:
        print(f"Braket job: {jobs[0]['jobArn']}")
    print(f"Time taken: {time.monotonic() - started:.1f} s")
    return 0 if str(result.status) == "COMPLETED" else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="covalent-braket", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    emulator = commands.add_parser("emulator", help="serve the local Braket emulator")
    emulator.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=4566, help="port to bind; 0 picks a free one")
    emulator.add_argument("--work-dir", default=None, help="where job working directories go")
    emulator.add_argument("--queue-seconds", type=float, default=0.0, help="seconds a job stays QUEUED")
    emulator.add_argument("--max-concurrent-jobs", type=int, default=32, help="jobs that run at once")
    emulator.set_defaults(handler=_emulator)

    demo = commands.add_parser("demo", help="run a workflow on the emulator through Covalent")
    demo.add_argument("--poll-freq", type=float, default=1.0, help="executor poll interval (s)")
    demo.set_defaults(handler=_demo)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
