"""The product documentation's PennyLane workflow, and ``covalent-braket demo`` that runs it.

The demo starts Braket-in-a-box and an isolated Covalent server on free loopback ports,
dispatches the workflow (H on one qubit, expectation of Z, on SV1 through PennyLane's
``braket.aws.qubit``, inside a Braket hybrid job), reports the job's progress, prints the
result, the job ARN and the time taken, and stops everything it started.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

#: The product documentation's executor arguments (with a valid bucket name: S3 names
#: cannot contain underscores).
DOC_SETTINGS: dict[str, Any] = {
    "credentials": "~/.aws/credentials",
    "profile": "default",
    "region": "us-east-1",
    "s3_bucket_name": "amazon-braket-covalent-job-resources",
    "ecr_image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/covalent-braket:latest",
    "braket_job_execution_role_name": "covalent-braket-iam-role",
    "quantum_device": "arn:aws:braket:::device/quantum-simulator/amazon/sv1",
    "classical_device": "ml.m5.large",
    "storage": 30,
    "time_limit": 300,
}


def simple_quantum_task(num_qubits: int) -> float:
    """|0> - H - <Z>: the product documentation's electron, on the job's device."""
    import pennylane as qml

    # These are passed to the Hybrid Jobs container at runtime
    device_arn = os.environ["AMZN_BRAKET_DEVICE_ARN"]
    s3_bucket = os.environ["AMZN_BRAKET_OUT_S3_BUCKET"]
    s3_task_dir = os.environ["AMZN_BRAKET_TASK_RESULTS_S3_URI"].split(s3_bucket)[1]

    device = qml.device(
        "braket.aws.qubit",
        device_arn=device_arn,
        s3_destination_folder=(s3_bucket, s3_task_dir),
        wires=num_qubits,
    )

    @qml.qnode(device=device)
    def simple_circuit():
        qml.Hadamard(wires=[0])
        return qml.expval(qml.PauliZ(wires=[0]))

    return float(simple_circuit())


def shown(result: Any) -> str:
    """A float result to 12 decimal places, with the exact value beside it if that differs:
    the simulator's <Z> after H is 0 up to rounding (``-2.2e-17`` with recent simulators)."""
    if not isinstance(result, float):
        return str(result)
    rounded = round(result, 12) + 0.0  # + 0.0: no negative zero
    return str(rounded) if rounded == result else f"{rounded} (exactly {result!r})"


def make_workflow(executor: Any) -> Any:
    """The documentation's lattice around :func:`simple_quantum_task` on ``executor``."""
    import cloudpickle
    import covalent as ct

    # Send the electron by value: the job image need not have this package installed.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    task = ct.electron(simple_quantum_task, executor=executor)

    @ct.lattice
    def simple_quantum_workflow(num_qubits: int) -> float:
        return task(num_qubits=num_qubits)

    return simple_quantum_workflow


def run_demo(poll_freq: float = 1.0, out: Any = None) -> int:
    """Run the demo; return the process exit code."""
    from .emulator import BraketEmulator
    from .testing import CovalentServer, covalent_env, emulator_env

    out = out or sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    started = time.monotonic()
    with BraketEmulator() as url:
        say(f"[demo] Braket emulator on {url}")
        env = emulator_env(url, region=DOC_SETTINGS["region"])
        server = CovalentServer(env=env)
        # This process is the demo's Covalent client: confine it to the server's HOME too.
        os.environ.update(covalent_env(server.home))
        os.environ.update(env)
        try:
            say("[demo] starting an isolated Covalent server ...")
            address = server.start()
            say(f"[demo] Covalent server on {address}")
            return _dispatch(address, poll_freq, started, say)
        except KeyboardInterrupt:
            say("[demo] interrupted; stopping")
            return 130
        finally:
            server.stop()
            say("[demo] stopped the Covalent server and the emulator")


def _dispatch(address: str, poll_freq: float, started: float, say: Any) -> int:
    import boto3
    import covalent as ct

    from .braket import BraketExecutor
    from .testing import provision

    provision(
        DOC_SETTINGS["s3_bucket_name"],
        DOC_SETTINGS["braket_job_execution_role_name"],
        DOC_SETTINGS["ecr_image_uri"],
    )
    executor = BraketExecutor(**DOC_SETTINGS, poll_freq=poll_freq)
    dispatched = time.monotonic()
    dispatch_id = ct.dispatch(make_workflow(executor), dispatcher_addr=address)(1)
    say(f"[demo] dispatched workflow {dispatch_id}")

    braket = boto3.client("braket")
    job_arn = _follow(braket, address, dispatch_id, started, say)
    final = ct.get_result(dispatch_id, wait=True, dispatcher_addr=address)
    workflow_seconds = time.monotonic() - dispatched
    if str(final.status) != "COMPLETED":
        node = final.get_node_result(0)
        say(f"[demo] the workflow {final.status}: {node['error'] or ''}\n{node['stderr'] or ''}")
        return 1
    if job_arn:
        tasks = braket.search_quantum_tasks(
            filters=[{"name": "jobArn", "operator": "EQUAL", "values": [job_arn]}]
        )["quantumTasks"]
        say(f"[demo] quantum tasks run by the job: {len(tasks)}")
    say(f"Result: {shown(final.result)}")
    say(f"Braket job: {job_arn}")
    say(
        f"Time taken: {time.monotonic() - started:.1f} s "
        f"(the workflow, from dispatch to result: {workflow_seconds:.1f} s)"
    )
    return 0


def _follow(braket: Any, address: str, dispatch_id: str, started: float, say: Any) -> str | None:
    """Say each change of the workflow's state and its jobs' until the workflow ends; the ARN
    of its (first) Braket job, if any."""
    import covalent as ct

    from .config import DISPATCH_TAG

    seen: tuple[Any, ...] = ()
    job_arn = None
    while True:
        result = ct.get_result(dispatch_id, wait=False, dispatcher_addr=address, status_only=True)
        status = str(result["status"])
        jobs = [
            j
            for j in braket.search_jobs(filters=[])["jobs"]
            if j["tags"].get(DISPATCH_TAG) == dispatch_id
        ]
        state = (status, *((job["jobName"], job["status"]) for job in jobs))
        if state != seen:
            detail = (
                ", ".join(f"job {name} {job_status}" for name, job_status in state[1:])
                or "no Braket job yet"
            )
            say(f"[demo] {time.monotonic() - started:5.1f} s  workflow {status}; {detail}")
            seen = state
        if jobs:
            job_arn = jobs[0]["jobArn"]
        if status in ("COMPLETED", "FAILED", "CANCELLED"):
            return job_arn
        time.sleep(0.5)
