"""A real account's hybrid-job regime, per account and Region: the quota on jobs running at
once, the quota on the instances of each type they use, and one job at a time on a QPU.

The quotas are the service's (:data:`~covalent_braket_plugin.service.CONCURRENT_JOBS_QUOTA`,
:data:`~covalent_braket_plugin.service.INSTANCE_QUOTAS`), changed by the settings
``concurrent_jobs_quota`` and ``instance_quotas`` as a raised quota would change them. A job
counts from ``CreateJob`` until it is terminal (QUEUED, RUNNING and CANCELLING count); past a
quota ``CreateJob`` is refused with ``ServiceQuotaExceededException`` (HTTP 402), or, with
``queue_past_quota``, accepted and kept QUEUED until the quota has room. A job on a QPU waits
QUEUED while another job of the account holds that QPU (simulators are not limited so).
``job_quotas`` off: none of this. Knows nothing about HTTP.
"""

from __future__ import annotations

from typing import Any

from ...service import (
    CONCURRENT_JOBS_QUOTA,
    INSTANCE_QUOTAS,
    QUOTA_EXCEEDED_MESSAGE,
    SERVICE_QUOTAS_CODE,
    TERMINAL_STATES,
)
from ..exceptions import ServiceQuotaExceededException
from ..settings import RuntimeSettings
from .models import Job

#: Service Quotas' name of the concurrent-jobs quota.
CONCURRENT_JOBS_NAME = "Number of concurrent jobs"


def instance_quota_name(instance_type: str) -> str:
    """Service Quotas' name of an instance type's quota."""
    return f"Maximum number of instances of {instance_type} for jobs"


def concurrent_limit(settings: RuntimeSettings) -> int:
    """The jobs an account may have at once in a Region."""
    given = settings.concurrent_jobs_quota
    return CONCURRENT_JOBS_QUOTA[1] if given is None else int(given)


def instance_limit(settings: RuntimeSettings, instance_type: str) -> int:
    """The instances of a type an account's jobs may use at once in a Region (0 for a type
    the service's table does not list, until raised)."""
    given = settings.instance_quotas.get(instance_type)
    if given is not None:
        return int(given)
    return INSTANCE_QUOTAS.get(instance_type, ("", 0))[1]


def is_qpu(device: str) -> bool:
    """Whether a device ARN names a QPU (one job at a time), not a simulator."""
    return ":device/qpu/" in device


def _instances(request: dict[str, Any]) -> tuple[str, int]:
    config = request.get("instanceConfig") or {}
    return str(config.get("instanceType", "")), int(config.get("instanceCount") or 1)


def _exceeded(
    settings: RuntimeSettings, held: list[Job], request: dict[str, Any]
) -> tuple[str, int] | None:
    """The quota (name, limit) a job of ``request`` would exceed beside the ``held`` ones, or
    None when it fits."""
    limit = concurrent_limit(settings)
    if len(held) + 1 > limit:
        return CONCURRENT_JOBS_NAME, limit
    kind, count = _instances(request)
    limit = instance_limit(settings, kind)
    used = sum(_instances(job.request)[1] for job in held if _instances(job.request)[0] == kind)
    if used + count > limit:
        return instance_quota_name(kind), limit
    return None


def check_create(
    settings: RuntimeSettings, region: str, jobs: list[Job], request: dict[str, Any]
) -> None:
    """Refuse a new job of ``request`` that would exceed a quota beside the account's ``jobs``
    in ``region`` (unless the quotas are off or jobs past them are queued).

    Raises:
        ServiceQuotaExceededException: in the service's words, naming the quota, its limit and
            the Region.
    """
    if not settings.job_quotas or settings.queue_past_quota:
        return
    held = [job for job in jobs if job.status not in TERMINAL_STATES]
    exceeded = _exceeded(settings, held, request)
    if exceeded is not None:
        quota, limit = exceeded
        raise ServiceQuotaExceededException(
            QUOTA_EXCEEDED_MESSAGE.format(quota=quota, limit=limit, region=region)
        )


def may_start(settings: RuntimeSettings, jobs: list[Job], job: Job) -> bool:
    """Whether a queued ``job`` may take its instances now, beside the account's ``jobs``: its
    QPU is neither held nor awaited by an older job, and the quotas have room among the jobs
    that hold instances (they may be queued past the quotas, or the quotas lowered)."""
    if not settings.job_quotas:
        return True
    others = [other for other in jobs if other is not job and other.status not in TERMINAL_STATES]
    holding = [other for other in others if other.admitted]
    if is_qpu(job.device) and any(
        other.device == job.device and (other.admitted or other.created_at < job.created_at)
        for other in others
    ):
        return False
    return _exceeded(settings, holding, job.request) is None


def service_quotas(settings: RuntimeSettings, account: str, region: str) -> list[dict[str, Any]]:
    """The job quotas as Service Quotas describes them to ``account`` in ``region``
    (``ServiceQuota`` shapes), with the limits the emulator enforces."""
    quotas = [(CONCURRENT_JOBS_QUOTA[0], CONCURRENT_JOBS_NAME, concurrent_limit(settings))]
    quotas += [
        (code, instance_quota_name(kind), instance_limit(settings, kind))
        for kind, (code, _) in INSTANCE_QUOTAS.items()
    ]
    return [
        {
            "ServiceCode": SERVICE_QUOTAS_CODE,
            "ServiceName": "Amazon Braket",
            "QuotaArn": f"arn:aws:servicequotas:{region}:{account}:{SERVICE_QUOTAS_CODE}/{code}",
            "QuotaCode": code,
            "QuotaName": name,
            "Value": float(value),
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
        }
        for code, name, value in quotas
    ]
