"""A hybrid variational workflow: each electron optimises a small parameterised circuit in its
own Braket hybrid job (every circuit evaluation is a quantum task on the job's device), and one
lattice runs several of them from different starting points and keeps the best.

Run it against AWS::

    COVALENT_BRAKET_IMAGE=<account>.dkr.ecr.<region>.amazonaws.com/covalent-braket:latest \\
    python examples/variational.py

The test suite runs the same lattice on Braket-in-a-box (tests/e2e/test_examples.py).
"""

from __future__ import annotations

import os
from typing import Any

import covalent as ct


def minimise_energy(start: float, steps: int = 3, step_size: float = 0.4) -> dict[str, Any]:
    """Gradient descent on <Z> after RX(theta) (minimum -1 at pi), gradients by parameter shift."""
    import math

    import pennylane as qml

    bucket = os.environ["AMZN_BRAKET_OUT_S3_BUCKET"]
    prefix = os.environ["AMZN_BRAKET_TASK_RESULTS_S3_URI"].split(bucket, 1)[1].lstrip("/")
    device = qml.device(
        "braket.aws.qubit",
        device_arn=os.environ["AMZN_BRAKET_DEVICE_ARN"],
        s3_destination_folder=(bucket, prefix),
        wires=1,
    )

    @qml.qnode(device)
    def energy(theta: float) -> Any:
        qml.RX(theta, wires=0)
        return qml.expval(qml.PauliZ(0))

    theta = start
    history = [float(energy(theta))]
    for _ in range(steps):
        shift = math.pi / 2
        gradient = (float(energy(theta + shift)) - float(energy(theta - shift))) / 2
        theta -= step_size * gradient
        history.append(float(energy(theta)))
        print(f"theta={theta:.4f} energy={history[-1]:.4f}")
    return {"start": start, "theta": theta, "energy": history[-1], "history": history}


def make_workflow(executor: Any) -> Any:
    optimise = ct.electron(minimise_energy, executor=executor)

    @ct.electron
    def best(runs: list) -> dict:
        return min(runs, key=lambda run: run["energy"])

    @ct.lattice
    def variational(starts: list) -> dict:
        return best([optimise(start) for start in starts])

    return variational


if __name__ == "__main__":
    from covalent_braket_plugin.braket import BraketExecutor

    executor = BraketExecutor(
        s3_bucket_name=os.environ.get(
            "COVALENT_BRAKET_BUCKET", "amazon-braket-covalent-job-resources"
        ),
        ecr_image_uri=os.environ["COVALENT_BRAKET_IMAGE"],
        quantum_device="arn:aws:braket:::device/quantum-simulator/amazon/sv1",
        time_limit=900,
    )
    dispatch_id = ct.dispatch(make_workflow(executor))([0.3, 1.0, 2.0])
    print(ct.get_result(dispatch_id, wait=True).result)
