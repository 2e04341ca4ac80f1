"""The ``CreateJob`` request of one task, built as plain data (no AWS call is made here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import ATTEMPT_TAG, DISPATCH_TAG, NAME_TAG, NODE_TAG, BraketSettings, tag_character_ok
from .job import ENTRY_POINT
from .job.runner import (
    HP_BUCKET_OWNER,
    HP_INPUT_SHA256,
    HP_KMS_KEY_ID,
    HP_MEMBER_PREFIX,
    HP_PACK_PARALLEL,
    HP_PYTHON_VERSION,
    HP_REQUIRED,
    HP_RESULT_KEY,
    HP_TASK_URI,
    HP_WARM_SECONDS,
)
from .location import RUNNER_KEY, TaskLocation


@dataclass(frozen=True)
class PackSpec:
    """What a packed job runs beyond its first electron (see
    :mod:`~covalent_braket_plugin.packs`)."""

    #: Its members, the first being the attempt's own electron (see
    #: :func:`~covalent_braket_plugin.packing.member_entry`).
    members: tuple[str, ...]
    #: Members it runs at once (0: one per core).
    parallel: int
    #: Its own time limit, in seconds.
    time_limit: int
    #: How long it waits for more members once its own are done (0: it does not).
    warm_seconds: float = 0.0


@dataclass(frozen=True)
class Submission:
    """What one attempt's ``CreateJob`` needs beyond the settings and the attempt's place."""

    #: The job execution role's ARN.
    role_arn: str
    #: The image the job runs on (the configured one, or Amazon's managed image).
    image_uri: str
    #: The client's Python ``major.minor``, which the runner checks.
    python: str
    #: The SHA-256 of the uploaded input, which the runner checks.
    digest: str
    #: The attempt's idempotency token (recorded with its input).
    client_token: str
    #: The account the runner expects to own the bucket.
    bucket_owner: str
    #: Versions the runner checks before it unpickles (``"covalent==X cloudpickle==Y"``).
    pins: str = ""
    #: The attempt's key (hex), with which the runner authenticates its result; a job
    #: without one refuses to run (see :mod:`covalent_braket_plugin.signing`).
    result_key: str = ""
    #: A packed job's members and how it runs them; None for a job of its own.
    pack: PackSpec | None = None
    #: ``inputDataConfig``: the ``input_data`` setting's channels, local ones uploaded.
    input_channels: tuple[dict[str, Any], ...] = ()


def create_job_request(
    settings: BraketSettings, location: TaskLocation, submission: Submission
) -> dict[str, Any]:
    """The arguments of ``CreateJob`` for one attempt of a task.

    The job carries the executor's tags (dispatch, node, attempt) and the ``tags`` setting's;
    a ``reservation_arn`` becomes its Braket Direct association. The attempt's key travels as
    a hyperparameter: only ``GetJob`` shows it, which the job role may not call.
    """
    hyperparameters = _hyperparameters(settings, location, submission)
    output: dict[str, Any] = {"s3Path": f"{location.uri}/output"}
    if settings.kms_key_id:
        output["kmsKeyId"] = settings.kms_key_id
    request: dict[str, Any] = {
        "clientToken": submission.client_token,
        "jobName": location.job_name,
        "roleArn": submission.role_arn,
        "algorithmSpecification": {
            "scriptModeConfig": {
                "entryPoint": ENTRY_POINT,
                "s3Uri": f"{location.uri}/{RUNNER_KEY}",
                "compressionType": "GZIP",
            },
            "containerImage": {"uri": submission.image_uri},
        },
        "deviceConfig": {"device": settings.quantum_device},
        "instanceConfig": {
            "instanceType": settings.classical_device,
            "volumeSizeInGb": settings.storage,
            "instanceCount": 1,
        },
        "stoppingCondition": {
            "maxRuntimeInSeconds": submission.pack.time_limit
            if submission.pack
            else settings.time_limit
        },
        "outputDataConfig": output,
        "checkpointConfig": {"s3Uri": location.checkpoint_uri},
        "hyperParameters": hyperparameters,
        "tags": {
            **dict(settings.tags),
            DISPATCH_TAG: location.dispatch_id,
            NODE_TAG: location.node_id,
            ATTEMPT_TAG: str(location.attempt),
            **({NAME_TAG: _tag_value(location.node_name)} if location.node_name else {}),
        },
    }
    if submission.input_channels:
        request["inputDataConfig"] = list(submission.input_channels)
    if settings.reservation_arn:
        request["associations"] = [
            {"arn": settings.reservation_arn, "type": "RESERVATION_TIME_WINDOW_ARN"}
        ]
    return request


def _tag_value(text: str) -> str:
    """``text`` as a tag value may have it (the characters ``check_tags`` allows, others as
    ``_``), at most 256 characters."""
    return "".join(ch if tag_character_ok(ch) else "_" for ch in text)[:256]


def _hyperparameters(
    settings: BraketSettings, location: TaskLocation, submission: Submission
) -> dict[str, str]:
    """What the job runner is told: the task, the client's Python, the input's digest, the
    bucket's owner, the pins and the attempt's key; a packed job's members."""
    hyperparameters: dict[str, str] = {
        HP_TASK_URI: location.uri,
        HP_PYTHON_VERSION: submission.python,
        HP_INPUT_SHA256: submission.digest,
        HP_BUCKET_OWNER: submission.bucket_owner,
    }
    if submission.pins:
        hyperparameters[HP_REQUIRED] = submission.pins
    if submission.result_key:
        hyperparameters[HP_RESULT_KEY] = submission.result_key
    pack = submission.pack
    if pack is not None:
        for index, member in enumerate(pack.members):
            hyperparameters[f"{HP_MEMBER_PREFIX}{index}"] = member
        hyperparameters[HP_PACK_PARALLEL] = str(pack.parallel)
        if pack.warm_seconds:
            hyperparameters[HP_WARM_SECONDS] = f"{pack.warm_seconds:g}"
    if settings.kms_key_id:
        hyperparameters[HP_KMS_KEY_ID] = settings.kms_key_id
    return hyperparameters
