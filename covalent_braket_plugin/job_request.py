"""The ``CreateJob`` request of one task, built as plain data (no AWS call is made here)."""

from __future__ import annotations

from typing import Any

from .config import BraketSettings
from .job import ENTRY_POINT
from .job.runner import HP_INPUT_SHA256, HP_KMS_KEY_ID, HP_PYTHON_VERSION, HP_TASK_URI
from .location import RUNNER_KEY, TaskLocation


def create_job_request(
    settings: BraketSettings, location: TaskLocation, role_arn: str, python: str, digest: str
) -> dict[str, Any]:
    """The arguments of ``CreateJob`` for one attempt of a task.

    Args:
        settings: The executor's validated settings.
        location: Where the attempt lives (prefix, job name, client token).
        role_arn: The job execution role's ARN.
        python: The client's Python ``major.minor``, which the runner checks.
        digest: The SHA-256 of the uploaded input, which the runner checks.
    """
    hyperparameters = {
        HP_TASK_URI: location.uri,
        HP_PYTHON_VERSION: python,
        HP_INPUT_SHA256: digest,
    }
    output: dict[str, Any] = {"s3Path": f"{location.uri}/output"}
    if settings.kms_key_id:
        hyperparameters[HP_KMS_KEY_ID] = settings.kms_key_id
        output["kmsKeyId"] = settings.kms_key_id
    return {
        "clientToken": location.client_token,
        "jobName": location.job_name,
        "roleArn": role_arn,
        "algorithmSpecification": {
            "scriptModeConfig": {
                "entryPoint": ENTRY_POINT,
                "s3Uri": f"{location.uri}/{RUNNER_KEY}",
                "compressionType": "GZIP",
            },
            "containerImage": {"uri": settings.ecr_image_uri},
        },
        "deviceConfig": {"device": settings.quantum_device},
        "instanceConfig": {
            "instanceType": settings.classical_device,
            "volumeSizeInGb": settings.storage,
            "instanceCount": 1,
        },
        "stoppingCondition": {"maxRuntimeInSeconds": settings.time_limit},
        "outputDataConfig": output,
        "checkpointConfig": {"s3Uri": f"{location.uri}/checkpoints"},
        "hyperParameters": hyperparameters,
        "tags": {
            "covalent:dispatch_id": location.dispatch_id,
            "covalent:node_id": location.node_id,
            "covalent:attempt": str(location.attempt),
        },
    }
