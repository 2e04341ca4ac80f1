"""The doctor's job quotas: the instances of the configured type the account's jobs may use,
and the jobs it may run at once, in the job's Region (Service Quotas, where the caller may
read it); and the jobs of this plugin that run with no live Covalent server following them."""

from __future__ import annotations

from .. import aws, dispatch_jobs, preflight, slots
from ..config import BraketSettings, InvalidSettingError
from .report import OK, PROBLEM, UNKNOWN, WARNING, Report


def _said(quota: slots.Quota, unit: str) -> str:
    code = f" ({quota.code})" if quota.code else ""
    return f"{quota.value} {unit} in {quota.region}: {quota.name}{code}, from {quota.source}"


def instance(report: Report, settings: BraketSettings) -> None:
    """The ``classical_device`` type's quota: a problem at 0, unknown when it cannot be read."""
    quota = slots.instance_quota(settings)
    try:
        preflight.check_instance_quota(settings)
    except InvalidSettingError as exc:
        report.add("instance quota", PROBLEM, str(exc), "ask for more, or change classical_device")
        return
    if quota.denied:
        report.add(
            "instance quota",
            UNKNOWN,
            f"{settings.classical_device}: unknown ({slots.NOT_ALLOWED}); Braket's default is "
            f"{quota.value}",
        )
        return
    status = OK if quota.read else UNKNOWN
    report.add("instance quota", status, f"{settings.classical_device}: {_said(quota, 'at once')}")


def concurrent_jobs(report: Report, settings: BraketSettings) -> None:
    """The hybrid jobs the account may run at once: the executor's job slots."""
    quota = slots.concurrent_jobs_quota(settings)
    if quota.denied:
        report.add(
            "concurrent jobs quota",
            UNKNOWN,
            f"unknown ({slots.NOT_ALLOWED}); the executor runs at most max_concurrent_jobs = "
            f"{settings.max_concurrent_jobs} jobs at once",
        )
        return
    report.add("concurrent jobs quota", OK if quota.read else UNKNOWN, _said(quota, "jobs at once"))


def orphans(report: Report, settings: BraketSettings) -> None:
    """A warning when jobs of this plugin run that no live Covalent server follows (their
    server stopped or crashed; Covalent resumes nothing): they are billed for no one."""
    try:
        found = dispatch_jobs.orphans(settings)
    except (aws.AwsError, InvalidSettingError) as exc:
        report.add("orphaned jobs", UNKNOWN, f"could not look: {exc}")
        return
    if not found:
        report.add("orphaned jobs", OK, "none: a live Covalent server follows every running job")
        return
    names = ", ".join(summary["jobName"] for _, summary in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    report.add(
        "orphaned jobs",
        WARNING,
        f"{len(found)} job(s) of this plugin run, billed, with no live Covalent server "
        f"following them: {names}{more}",
        "covalent-braket jobs --orphans shows them; covalent-braket cancel --orphans stops them",
    )
