"""The Braket service's request rules, applied as the service applies them.

The emulator keeps its own validators: it is what clients (our executor among them) are
tested against, so it never trusts their checks. The service's numbers and names come from
:mod:`covalent_braket_plugin.service`.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ...service import (
    JOB_NAME_MAX,
    JOB_NAME_PATTERN,
    MAX_RUNTIME_SECONDS,
    arn_region,
    instance_types,
)
from ..exceptions import DeviceOfflineException, DeviceRetiredException, ValidationException

if TYPE_CHECKING:
    from .devices import Device

JOB_NAME_RE = re.compile(JOB_NAME_PATTERN)
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
IMAGE_URI_RE = re.compile(r"^\d{10,14}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/.+(@sha256)?:.+$")
S3_URI_RE = re.compile(r"^(https|s3)://([^/]+)/?(.*)$")
CHANNEL_RE = re.compile(r"^[A-Za-z0-9\.\-_]+$")

MAX_HYPERPARAMETERS = 100
MAX_HYPERPARAMETER_VALUE = 2500
MAX_CHANNELS = 20


def require(body: dict[str, Any], *path: str) -> Any:
    value: Any = body
    for part in path:
        if not isinstance(value, dict) or part not in value or value[part] in (None, ""):
            raise ValidationException(f"{'.'.join(path)} is required")
        value = value[part]
    return value


def int_in(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationException(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationException(f"{name} must be {bound}, got {value}")
    return value


def s3_uri(name: str, value: Any) -> str:
    if not isinstance(value, str) or not S3_URI_RE.match(value):
        raise ValidationException(f"{name} must be an S3 URI (s3://bucket/key), got {value!r}")
    return value


def validate_create_job(body: dict[str, Any]) -> None:
    """Apply the rules the Braket service applies to CreateJob.

    Raises:
        ValidationException: with a message naming the field and the rule.
    """
    if not isinstance(body, dict):
        raise ValidationException("request body must be a JSON object")
    name = require(body, "jobName")
    if not isinstance(name, str) or len(name) > JOB_NAME_MAX or not JOB_NAME_RE.match(name):
        raise ValidationException(
            f"jobName {name!r} must be 1-{JOB_NAME_MAX} characters matching " + JOB_NAME_PATTERN
        )
    role = require(body, "roleArn")
    if not isinstance(role, str) or not ROLE_ARN_RE.match(role):
        raise ValidationException(f"roleArn {role!r} is not a valid IAM role ARN")

    algorithm = require(body, "algorithmSpecification")
    script = algorithm.get("scriptModeConfig") if isinstance(algorithm, dict) else None
    image = algorithm.get("containerImage") if isinstance(algorithm, dict) else None
    if not script and not image:
        raise ValidationException(
            "algorithmSpecification must contain scriptModeConfig or containerImage"
        )
    if script:
        entry = require(body, "algorithmSpecification", "scriptModeConfig", "entryPoint")
        if not isinstance(entry, str) or len(entry) > 256:
            raise ValidationException("scriptModeConfig.entryPoint must be 1-256 characters")
        s3_uri(
            "scriptModeConfig.s3Uri",
            require(body, "algorithmSpecification", "scriptModeConfig", "s3Uri"),
        )
        compression = script.get("compressionType", "NONE")
        if compression not in ("NONE", "GZIP"):
            raise ValidationException(f"compressionType must be NONE or GZIP, got {compression!r}")
    if image:
        uri = require(body, "algorithmSpecification", "containerImage", "uri")
        if not isinstance(uri, str) or not IMAGE_URI_RE.match(uri):
            raise ValidationException(f"containerImage.uri {uri!r} is not a valid ECR image URI")

    device = require(body, "deviceConfig", "device")
    if not isinstance(device, str) or len(device) > 256:
        raise ValidationException("deviceConfig.device must be 1-256 characters")

    instance = require(body, "instanceConfig")
    allowed = instance_types()
    if instance.get("instanceType") not in allowed:
        raise ValidationException(
            f"instanceConfig.instanceType {instance.get('instanceType')!r} must be one of "
            + ", ".join(allowed)
        )
    int_in("instanceConfig.volumeSizeInGb", require(body, "instanceConfig", "volumeSizeInGb"), 1)
    int_in("instanceConfig.instanceCount", instance.get("instanceCount", 1), 1)

    s3_uri("outputDataConfig.s3Path", require(body, "outputDataConfig", "s3Path"))
    if body.get("checkpointConfig"):
        s3_uri("checkpointConfig.s3Uri", require(body, "checkpointConfig", "s3Uri"))
    stopping = body.get("stoppingCondition") or {}
    if "maxRuntimeInSeconds" in stopping:
        int_in(
            "stoppingCondition.maxRuntimeInSeconds",
            stopping["maxRuntimeInSeconds"],
            1,
            MAX_RUNTIME_SECONDS,
        )

    hyper = body.get("hyperParameters") or {}
    if not isinstance(hyper, dict):
        raise ValidationException("hyperParameters must be a map of strings")
    if len(hyper) > MAX_HYPERPARAMETERS:
        raise ValidationException(
            f"hyperParameters has {len(hyper)} entries; at most {MAX_HYPERPARAMETERS} are allowed"
        )
    for key, value in hyper.items():
        if not 1 <= len(key) <= 256:
            raise ValidationException(f"hyperParameters key {key!r} must be 1-256 characters")
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_HYPERPARAMETER_VALUE:
            raise ValidationException(
                f"hyperParameters[{key!r}] must be a string of "
                f"1-{MAX_HYPERPARAMETER_VALUE} characters"
            )

    channels = body.get("inputDataConfig") or []
    if not isinstance(channels, list) or len(channels) > MAX_CHANNELS:
        raise ValidationException(f"inputDataConfig allows at most {MAX_CHANNELS} channels")
    seen: set[str] = set()
    for channel in channels:
        cname = channel.get("channelName") if isinstance(channel, dict) else None
        if not isinstance(cname, str) or not 1 <= len(cname) <= 64 or not CHANNEL_RE.match(cname):
            raise ValidationException(f"inputDataConfig channelName {cname!r} is invalid")
        if cname in seen:
            raise ValidationException(f"inputDataConfig channelName {cname!r} is repeated")
        seen.add(cname)
        s3_uri(
            f"inputDataConfig[{cname}].dataSource.s3DataSource.s3Uri",
            (((channel.get("dataSource") or {}).get("s3DataSource") or {}).get("s3Uri")),
        )

    tags = body.get("tags") or {}
    if not isinstance(tags, dict) or len(tags) > 50:
        raise ValidationException("tags must be a map of at most 50 entries")


def validate_job_associations(body: dict[str, Any], device: Device | None, region: str) -> None:
    """A job's Braket Direct reservation (``associations``): for a QPU, in the job's Region.

    Raises:
        ValidationException: the device is a simulator, or the reservation is elsewhere.
    """
    for association in body.get("associations") or []:
        arn = association.get("arn", "") if isinstance(association, dict) else ""
        if device is not None and device.device_type == "SIMULATOR":
            raise ValidationException(
                f"Braket Direct is not supported for {device.name}: reservations are for QPUs"
            )
        if arn_region(arn) != region:
            raise ValidationException(
                f"Reservation {arn} is not a reservation in {region}, the Region of the job"
            )


def validate_create_quantum_task(body: dict[str, Any], devices: Any, region: str) -> Device:
    """Apply the rules the Braket service applies to CreateQuantumTask; return the device.

    Raises:
        ValidationException: the device does not exist, or cannot run the request.
        DeviceOfflineException: the device is not ONLINE.
    """
    device_arn = require(body, "deviceArn")
    device = devices.get(device_arn)
    if device is None or not device.serves(region):
        raise ValidationException(f"Device {device_arn} does not exist in {region}")
    if device.status == "RETIRED":
        raise DeviceRetiredException(f"Device {device_arn} is retired")
    if device.status != "ONLINE":
        raise DeviceOfflineException(f"Device {device_arn} is {device.status}")
    if body.get("associations") and device.device_type == "SIMULATOR":
        raise ValidationException(
            f"Braket Direct is not supported for {device.name}: reservations are for QPUs"
        )
    shots = int_in("shots", require(body, "shots"), 0)
    require(body, "outputS3Bucket")
    if not isinstance(body.get("outputS3KeyPrefix"), str) or not body["outputS3KeyPrefix"]:
        raise ValidationException("outputS3KeyPrefix is required")
    action_text = require(body, "action")
    try:
        action = json.loads(action_text)
        header = action["braketSchemaHeader"]["name"]
        source = action["source"]
    except (ValueError, TypeError, KeyError):
        raise ValidationException(
            "action must be a JSON Braket program with braketSchemaHeader and source"
        ) from None
    if header != "braket.ir.openqasm.program":
        raise ValidationException(
            f"Device {device_arn} does not support the action {header!r}; "
            "it runs braket.ir.openqasm.program"
        )
    device.check_program(source, shots)
    return device
