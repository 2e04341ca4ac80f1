"""Pre-flight: before anything is created, check that what the job needs is there.

Read-only look-ups of the bucket, the job role, the image and the device. A setting that
names nothing usable raises :class:`~covalent_braket_plugin.config.InvalidSettingError`; a
look-up the caller is not allowed to make gives no verdict (least-privilege principals may
lack the read permissions). A success is trusted for a while.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from . import aws
from .config import BraketSettings, InvalidSettingError

#: How long a successful pre-flight check of the AWS resources is trusted.
TTL_SECONDS = 300.0

_lock = threading.Lock()
_passed: dict[Any, float] = {}


def check(settings: BraketSettings) -> None:
    """Check the bucket, the role, the image and the device (blocking; call off the loop).

    Raises:
        InvalidSettingError: naming the setting whose resource is missing or unusable.
    """
    clients = aws.clients_for(settings)
    key = (settings, clients.region)
    with _lock:
        if time.monotonic() - _passed.get(key, -1e9) < TTL_SECONDS:
            return
    _look_up(
        settings,
        "s3_bucket_name",
        None,
        "an existing bucket you can write to ({code})",
        clients.s3,
        "head_bucket",
        Bucket=settings.s3_bucket_name,
    )

    role = settings.braket_job_execution_role_name
    if not settings.role_is_arn or role.split(":")[4] == aws.caller_account(settings)[0]:
        _look_up(
            settings,
            "braket_job_execution_role_name",
            {"NoSuchEntity"},
            "an existing IAM role that Braket can assume",
            clients.iam,
            "get_role",
            RoleName=role.rsplit("/", 1)[-1],
        )

    registry = settings.ecr_image_uri.partition(".dkr.ecr.")[0]
    repository_and_ref = settings.ecr_image_uri.split("/", 1)[1]
    if "@" in repository_and_ref:
        repository, digest = repository_and_ref.split("@", 1)
        image_id = {"imageDigest": digest}
    else:
        repository, tag = repository_and_ref.rsplit(":", 1)
        image_id = {"imageTag": tag}
    _look_up(
        settings,
        "ecr_image_uri",
        {"RepositoryNotFoundException", "ImageNotFoundException"},
        "an image that exists in ECR ({code})",
        clients.ecr,
        "describe_images",
        registryId=registry,
        repositoryName=repository,
        imageIds=[image_id],
    )

    device = _look_up(
        settings,
        "quantum_device",
        {"ResourceNotFoundException", "ValidationException"},
        f"a Braket device that exists in {clients.region}",
        clients.braket,
        "get_device",
        deviceArn=settings.quantum_device,
    )
    if device is not None and device.get("deviceStatus") != "ONLINE":
        raise InvalidSettingError(
            "quantum_device",
            settings.quantum_device,
            f"an ONLINE device (it is {device.get('deviceStatus')})",
        )
    with _lock:
        _passed[key] = time.monotonic()


def _look_up(
    settings: BraketSettings,
    setting: str,
    missing: set[str] | None,
    allowed: str,
    client: Any,
    operation: str,
    **kwargs: Any,
) -> dict[str, Any] | None:
    """A read-only look-up of the resource ``setting`` names.

    An error code in ``missing`` (any code, if None) means the setting names nothing usable:
    :class:`InvalidSettingError`. A denial means the caller may not look: None, no verdict.
    Anything else propagates.
    """
    try:
        return aws.call(client, operation, **kwargs)
    except aws.AwsError as exc:
        if exc.code in aws.DENIED:
            return None
        if missing is None or exc.code in missing:
            raise InvalidSettingError(
                setting, getattr(settings, setting), allowed.format(code=exc.code)
            ) from exc
        raise
