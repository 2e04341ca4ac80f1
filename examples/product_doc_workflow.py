"""The product documentation's workflow, corrected: |0> - H - <Z> on SV1 through PennyLane.

Run it against AWS (with the job image pushed and the bucket and role created)::

    COVALENT_BRAKET_IMAGE=<account>.dkr.ecr.<region>.amazonaws.com/covalent-braket:latest \\
    python examples/product_doc_workflow.py

or with no AWS account at all: ``covalent-braket demo`` runs this same workflow on the emulator.
"""

from __future__ import annotations

import os

import covalent as ct

from covalent_braket_plugin.braket import BraketExecutor
from covalent_braket_plugin.demo import make_workflow

if __name__ == "__main__":
    executor = BraketExecutor(
        s3_bucket_name=os.environ.get(
            "COVALENT_BRAKET_BUCKET", "amazon-braket-covalent-job-resources"
        ),
        ecr_image_uri=os.environ["COVALENT_BRAKET_IMAGE"],
        braket_job_execution_role_name="CovalentBraketJobsExecutionRole",
        quantum_device="arn:aws:braket:::device/quantum-simulator/amazon/sv1",
        classical_device="ml.m5.large",
        storage=30,
        time_limit=300,
    )
    dispatch_id = ct.dispatch(make_workflow(executor))(1)
    result = ct.get_result(dispatch_id, wait=True)
    print("Result:", result.result)  # 0.0, up to floating-point rounding (e.g. -2.2e-17)
