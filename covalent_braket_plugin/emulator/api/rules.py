"""The Braket service's request rules that its API model cannot say.

Every request has been checked against Braket's service model before it gets here (see
:mod:`.request_model`: required members, types, lengths, ranges, enums and patterns), so these
rules rely on every member having its model's type and shape. What is left is what the model
does not express: a choice of one of two members, names unique within a request, limits the
service keeps beyond its model, a member that may be left out but not sent as null, whether a
device exists, is online and can run the program, and where a Braket Direct reservation may
be used. The emulator applies them itself: it is what clients (our executor among them) are
tested against, so it never trusts their checks.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ...service import MAX_TAGS_PER_RESOURCE, arn_region
from ..exceptions import DeviceOfflineException, DeviceRetiredException, ValidationException

if TYPE_CHECKING:
    from .devices import Device

#: The registry host of an image: the model's pattern lets any character stand for the dot
#: after ``ecr``.
ECR_HOST_RE = re.compile(r"^\d{10,14}\.dkr\.ecr\.")
MAX_ENTRY_POINT = 256
#: Members CreateJob may leave out, for the service's default, but not send as null: the model
#: has no word for "optional, but not null", and the job's run needs their value.
_COMPRESSION = ("algorithmSpecification", "scriptModeConfig", "compressionType")
_DEFAULTED = (("instanceConfig", "instanceCount"), ("stoppingCondition", "maxRuntimeInSeconds"))


def validate_create_job(body: dict[str, Any]) -> None:
    """Apply the rules the Braket service applies to CreateJob beyond its model.

    Raises:
        ValidationException: with a message naming the field and the rule.
    """
    algorithm = body["algorithmSpecification"]
    script = algorithm.get("scriptModeConfig")
    image = algorithm.get("containerImage")
    if not script and not image:  # the model makes neither required
        raise ValidationException(
            "algorithmSpecification must contain scriptModeConfig or containerImage"
        )
    if script:
        if not 1 <= len(script["entryPoint"]) <= MAX_ENTRY_POINT:
            raise ValidationException(
                f"scriptModeConfig.entryPoint must be 1-{MAX_ENTRY_POINT} characters"
            )
        _refuse_null(body, _COMPRESSION)
    if image and not ECR_HOST_RE.match(image["uri"]):
        raise ValidationException(
            f"containerImage.uri {image['uri']!r} is not a valid ECR image URI"
        )
    for path in _DEFAULTED:
        _refuse_null(body, path)
    seen: set[str] = set()
    for channel in body.get("inputDataConfig") or []:
        name = channel["channelName"]
        if name in seen:
            raise ValidationException(f"inputDataConfig channelName {name!r} is repeated")
        seen.add(name)
    if len(body.get("tags") or {}) > MAX_TAGS_PER_RESOURCE:
        raise ValidationException(f"tags must be a map of at most {MAX_TAGS_PER_RESOURCE} entries")


def _refuse_null(body: dict[str, Any], path: tuple[str, ...]) -> None:
    """Refuse the member at ``path`` sent as null (its parents sent as objects)."""
    value: Any = body
    for part in path[:-1]:
        value = value.get(part)
        if not isinstance(value, dict):
            return
    if path[-1] in value and value[path[-1]] is None:
        raise ValidationException(
            f"{'.'.join(path)} must not be null: leave it out for the service's default"
        )


def validate_job_associations(body: dict[str, Any], device: Device | None, region: str) -> None:
    """A job's Braket Direct reservation (``associations``): for a QPU, in the job's Region.

    Raises:
        ValidationException: the device is a simulator, or the reservation is elsewhere.
    """
    for association in body.get("associations") or []:
        arn = association["arn"]
        if device is not None and device.device_type == "SIMULATOR":
            raise ValidationException(
                f"Braket Direct is not supported for {device.name}: reservations are for QPUs"
            )
        if arn_region(arn) != region:
            raise ValidationException(
                f"Reservation {arn} is not a reservation in {region}, the Region of the job"
            )


def validate_create_quantum_task(body: dict[str, Any], devices: Any, region: str) -> Device:
    """Apply the rules the Braket service applies to CreateQuantumTask beyond its model;
    return the device.

    Raises:
        ValidationException: the device does not exist, or cannot run the request.
        DeviceRetiredException: the device is retired.
        DeviceOfflineException: the device is not ONLINE.
    """
    device_arn = body["deviceArn"]
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
    try:  # valid JSON (the model says so); a Braket program is more
        action = json.loads(body["action"])
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
    device.check_program(source, body["shots"])
    return device
