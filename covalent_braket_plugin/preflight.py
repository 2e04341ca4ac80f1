"""Pre-flight: before anything is created, check that what the job needs is there.

A reservation must be for the job's QPU and Region. The job's Region (its device's, or
the configured one) must have Braket, the account's jobs must be allowed an instance of the
``classical_device`` type there (its quota above 0), and the bucket and the image must be in
it. Then read-only look-ups of the bucket (owned by the caller's
account), the job role, the image and the device. A setting that names nothing usable raises
:class:`~covalent_braket_plugin.config.InvalidSettingError`; a look-up the caller is not
allowed to make gives no verdict (least-privilege principals may lack the read permissions),
and a transient failure is an error, not a verdict. A success is trusted for a while.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from . import aws, images, pacing, slots
from .config import BraketSettings, InvalidSettingError
from .service import REGIONS, SERVICE_QUOTAS_CODE, arn_region

#: How long a successful pre-flight check of the AWS resources is trusted.
TTL_SECONDS = 300.0

_lock = threading.Lock()
_passed: dict[Any, float] = {}
_checking: dict[Any, threading.Lock] = {}


def check(settings: BraketSettings) -> None:
    """Check the reservation, the Region, the bucket, the role, the image and the device
    (blocking; call off the loop). ``settings`` are in the job's Region
    (:meth:`BraketSettings.for_job`).

    Raises:
        InvalidSettingError: naming the setting whose resource is missing or unusable, or
            whose Region is not the job's.
        AwsError: a look-up failed for another reason (throttling, an outage).
    """
    key = (settings, aws.clients_for(settings).region)
    with _lock:
        if time.monotonic() - _passed.get(key, -1e9) < TTL_SECONDS:
            return
        checking = _checking.setdefault(key, threading.Lock())
    with checking:  # tasks that find the same settings unchecked wait for one check
        with _lock:
            if time.monotonic() - _passed.get(key, -1e9) < TTL_SECONDS:
                return
        for one in CHECKS:
            one(settings)
        with _lock:
            _passed[key] = time.monotonic()


def _forget_passes() -> None:
    with _lock:
        _passed.clear()


aws.on_reset(_forget_passes)  # new clients, another account or its quotas: check again

#: Managed simulators' ARNs (``arn:aws:braket:::device/quantum-simulator/amazon/sv1``).
_SIMULATOR = ":device/quantum-simulator/"


def check_reservation(settings: BraketSettings) -> None:
    """A Braket Direct reservation (``reservation_arn``) books one QPU in one Region: refuse
    it for a simulator, and in another Region than the device's (no AWS call).

    Raises:
        InvalidSettingError: ``reservation_arn``, with what would be allowed.
    """
    arn = settings.reservation_arn
    if not arn:
        return
    device = settings.quantum_device
    if _SIMULATOR in device:
        raise InvalidSettingError(
            "reservation_arn",
            arn,
            f"empty for quantum_device {device}: Braket Direct reservations are for QPUs, "
            "not simulators (set quantum_device to the reserved QPU, or reservation_arn empty)",
        )
    reserved_in = arn_region(arn)
    job_region = settings.device_region or settings.region
    if job_region and reserved_in != job_region:
        raise InvalidSettingError(
            "reservation_arn",
            arn,
            f"a reservation in {job_region}, the Region of quantum_device {device} where the "
            f"job runs (this reservation is in {reserved_in or 'no Region'})",
        )


def check_region(settings: BraketSettings) -> None:
    """The job's Region must have Braket: the device's, or the configured one."""
    region = aws.clients_for(settings).region
    if region in REGIONS:
        return
    allowed = "a Region with Amazon Braket: " + ", ".join(REGIONS)
    if settings.device_region:
        raise InvalidSettingError(
            "quantum_device", settings.quantum_device, f"a device in {allowed}"
        )
    raise InvalidSettingError("region", settings.region or region, allowed)


#: Where a Braket quota is raised.
QUOTAS_CONSOLE = "https://console.aws.amazon.com/servicequotas/home/services/braket/quotas"


def check_instance_quota(settings: BraketSettings) -> None:
    """The account's jobs may use an instance of the ``classical_device`` type in the job's
    Region: its quota (Service Quotas, or Braket's default when it cannot be read) is above 0.

    Raises:
        InvalidSettingError: ``classical_device``, naming the quota, its value, the Region
            and how to ask for more.
    """
    quota = slots.instance_quota(settings)
    if quota.value > 0:
        return
    where = "Service Quotas" if quota.read else quota.source
    code = quota.code or "QUOTA_CODE"
    raise InvalidSettingError(
        "classical_device",
        settings.classical_device,
        f"an instance type the account's jobs may use in {quota.region}: the quota "
        f"'{quota.name}'{f' ({quota.code})' if quota.code else ''} is {quota.value} there "
        f"(from {where}). Ask for more in the Service Quotas console ({QUOTAS_CONSOLE}) or "
        f"with aws service-quotas request-service-quota-increase --service-code "
        f"{SERVICE_QUOTAS_CODE} --quota-code {code} --desired-value 1 --region {quota.region}, "
        "or choose another classical_device",
    )


def check_bucket(settings: BraketSettings) -> None:
    """The bucket exists, belongs to the caller's account and is in the job's Region."""
    clients = aws.clients_for(settings)
    head = _look_up(
        settings,
        "s3_bucket_name",
        {"NoSuchBucket", "404", "NotFound"},
        "an existing bucket ({code})",
        clients.s3,
        "head_bucket",
        Bucket=settings.s3_bucket_name,
        **aws.bucket_owner(settings),
    )
    bucket_region = (head or {}).get("BucketRegion") or (
        (head or {}).get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
    )
    if bucket_region and bucket_region != clients.region:
        raise InvalidSettingError(
            "s3_bucket_name",
            settings.s3_bucket_name,
            f"a bucket in {clients.region}, the job's Region{_why(settings)} "
            f"(this bucket is in {bucket_region})",
        )


def check_role(settings: BraketSettings) -> None:
    """The job role exists (when it is the caller's account's: another's cannot be read)."""
    role = settings.braket_job_execution_role_name
    if settings.role_is_arn and role.split(":")[4] != aws.caller_account(settings)[0]:
        return
    _look_up(
        settings,
        "braket_job_execution_role_name",
        {"NoSuchEntity"},
        "an existing IAM role that Braket can assume",
        aws.clients_for(settings).iam,
        "get_role",
        RoleName=role.rsplit("/", 1)[-1],
    )


def check_image(settings: BraketSettings) -> None:
    """The job's image (the configured one, or Amazon's managed one) exists in the job's
    Region."""
    clients = aws.clients_for(settings)
    image = images.job_image(settings, clients.region)
    image_region = image.split(".dkr.ecr.", 1)[1].split(".", 1)[0]
    if image_region != clients.region:
        raise InvalidSettingError(
            "ecr_image_uri",
            settings.ecr_image_uri,
            f"an image in {clients.region}, the job's Region{_why(settings)} "
            f"(this one is in {image_region})",
        )
    registry = image.partition(".dkr.ecr.")[0]
    repository_and_ref = image.split("/", 1)[1]
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


def check_device(settings: BraketSettings) -> None:
    """The device exists in the job's Region and is ONLINE."""
    clients = aws.clients_for(settings)
    pacing.wait_sync(*aws.quota_key(settings), ["GetDevice"])
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


#: Every check, in the order pre-flight makes them (``covalent-braket doctor`` makes each).
CHECKS = (
    check_reservation,
    check_region,
    check_instance_quota,
    check_bucket,
    check_role,
    check_image,
    check_device,
)


def _why(settings: BraketSettings) -> str:
    """Why the job runs in its Region: its device's, or the configured one."""
    if settings.device_region:
        return f", where its device {settings.quantum_device} is"
    return ""


#: The IAM action each look-up needs (HeadBucket is allowed by s3:ListBucket).
_ACTIONS = {
    "head_bucket": "s3:ListBucket",
    "get_role": "iam:GetRole",
    "describe_images": "ecr:DescribeImages",
    "get_device": "braket:GetDevice",
}
_denials: ContextVar[list[str] | None] = ContextVar("preflight_denials", default=None)


@contextmanager
def denials() -> Iterator[list[str]]:
    """Collect the actions of the look-ups the caller was not allowed, in this context: the
    executor goes on without a verdict, ``doctor`` reports them as unknown."""
    found: list[str] = []
    token = _denials.set(found)
    try:
        yield found
    finally:
        _denials.reset(token)


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
            seen = _denials.get()
            if seen is not None:
                seen.append(_ACTIONS.get(operation, operation))
            return None
        if missing is None or exc.code in missing:
            raise InvalidSettingError(
                setting, getattr(settings, setting), allowed.format(code=exc.code)
            ) from exc
        raise
