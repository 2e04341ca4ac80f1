"""What an electron's job used, and what it cost: ``usage.json`` beside the task's objects,
and one line in the server log.

The job is billed for its instance (``billableDuration`` times the instance type's price) and
its quantum tasks (simulator time, QPU tasks and shots), which the job runner counts with the
Braket SDK's ``Tracker``. Prices come from Amazon's price list (the CSV of the AWS price list
bulk API that the SDK's Tracker reads: ``BRAKET_PRICE_OFFERS_URL``, or Amazon's), fetched
once per process (:mod:`~covalent_braket_plugin.pricing`), on a thread of this room's own.
Without it, the usage is still recorded, without a price.

Accounting runs after the result was delivered, off the event loop and off the task's path
(:func:`account_later`): nothing here can fail or delay a task. ``usage.json`` is not one of
the objects the clean-up deletes (:data:`~covalent_braket_plugin.location.TASK_OBJECTS`), so
it stays with the job's outputs; ``covalent-braket jobs`` reads it.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from . import aws
from .config import BraketSettings
from .covalent_loader import server_log
from .location import TaskLocation
from .pricing import (
    HOURS_PER_MONTH,
    INSTANCE_FAMILY,
    QPU_SHOT_FAMILY,
    QPU_TASK_FAMILY,
    SIMULATOR_FAMILY,
    VOLUME,
    VOLUME_FAMILY,
    PriceList,
    PriceListUnavailable,
    price_list,
    price_list_url,
)
from .service import arn_region, iso_time

#: The record's object name under the task's prefix.
USAGE_KEY = "usage.json"
USAGE_FORMAT = 1


# ---------------------------------------------------------------------------- the record
def billable_ms(job: dict[str, Any]) -> tuple[int | None, str]:
    """The job's billable time in milliseconds and where it was read: ``GetJob``'s
    ``billableDuration`` when the job was read in full, else its ``endedAt - startedAt`` (the
    search's summary, which the watcher reads instead of a ``GetJob`` per job)."""
    if isinstance(job.get("billableDuration"), int):
        return job["billableDuration"], "billableDuration"
    started, ended = job.get("startedAt"), job.get("endedAt")
    if isinstance(started, datetime) and isinstance(ended, datetime):
        return max(int((ended - started).total_seconds() * 1000), 0), "endedAt - startedAt"
    return None, "unknown"


def qpu_name(device_arn: str) -> str:
    """The name a QPU's prices are listed under (the SDK's Tracker's rule)."""
    name = device_arn.rsplit("/", 1)[-1]
    name = name[:1].upper() + name[1:]
    if "Ibex" in name:
        return name.replace("Ibex", "IBEX")
    if "2000Q" in name:
        return "2000Q"
    if "Advantage_system" in name:
        return "Advantage_system"
    return name


def is_simulator(device_arn: str) -> bool:
    return "/quantum-simulator/" in device_arn or ":device/simulator" in device_arn


def record(
    settings: BraketSettings,
    location: TaskLocation,
    job: dict[str, Any],
    outcome: dict[str, Any] | None,
    prices: PriceList | None,
    price_note: str = "",
    share: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The usage record of one job (``usage.json``), priced when ``prices`` are given.

    A member of a packed job (``share``: its ``billable_ms`` share of the job's billed time,
    its ``run_ms`` and the job's ``members``) is billed its share of the instance; the job's
    whole billed time is recorded beside it.
    """
    arn = job["jobArn"]
    region = arn_region(arn)
    instance = job.get("instanceConfig") or {}
    instance_type = instance.get("instanceType") or settings.classical_device
    count = int(instance.get("instanceCount") or 1)
    job_ms, source = billable_ms(job)
    ms, source = _billed_share(job_ms, source, share)
    tasks = _tasks(outcome)
    reservation = settings.reservation_arn
    tracked = isinstance((outcome or {}).get("quantum_tasks"), dict)
    notes = [] if tracked else ["the job did not count its quantum tasks (no Tracker in it)"]
    cost: dict[str, Any] | None = None
    if prices is None:
        notes.append(price_note or "no price list")
    else:
        machine = (instance_type, count, int(instance.get("volumeSizeInGb") or settings.storage))
        cost = _cost(prices, region, machine, ms, tasks, reservation, notes)
    return {
        "format": USAGE_FORMAT,
        "dispatch_id": location.dispatch_id,
        "node_id": location.node_id,
        "attempt": location.attempt,
        "job_arn": arn,
        "job_name": job.get("jobName", location.job_name),
        "status": job.get("status", ""),
        "region": region,
        "started_at": iso_time(job.get("startedAt")),
        "ended_at": iso_time(job.get("endedAt")),
        "instance": {
            "type": instance_type,
            "count": count,
            "billable_ms": ms,
            "billable_from": source,
            **({"job_billable_ms": job_ms} if share is not None else {}),
        },
        "packed": dict(share) if share is not None else None,
        "quantum_tasks": tasks,
        "tracked": tracked,
        "reservation_arn": reservation,
        "cost": cost,
        "notes": notes,
        "price_list": prices.source if prices is not None else price_list_url(),
        "recorded_at": iso_time(datetime.now(timezone.utc)),
    }


def _billed_share(
    job_ms: int | None, source: str, share: dict[str, int] | None
) -> tuple[int | None, str]:
    """The billed time a record counts, and where it was read: the job's, or a packed
    member's share of it."""
    if share is None:
        return job_ms, source
    return int(share["billable_ms"]), f"a share by run time of the packed job's {source}"


def _tasks(outcome: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The quantum tasks the job runner counted, per device."""
    return {
        str(device): dict(figures)
        for device, figures in ((outcome or {}).get("quantum_tasks") or {}).items()
        if isinstance(figures, dict)
    }


def _cost(
    prices: PriceList,
    region: str,
    machine: tuple[str, int, int],
    ms: int | None,
    tasks: dict[str, dict[str, Any]],
    reservation: str,
    notes: list[str],
) -> dict[str, Any]:
    """The job's estimated cost in USD: its instance time, its storage volume and its quantum
    tasks. The rules and their sources:

    - the instance: its type's ``Braket Managed Jobs Instance`` rate (per minute in the list)
      for the job's ``billableDuration`` (GetJob's figure, in milliseconds, prorated at that
      rate: the API reports no coarser rounding), times the instance count;
    - the storage volume: ``Braket Managed Jobs Volume`` per GB-month, for its size over the
      same time, a month being :data:`~.pricing.HOURS_PER_MONTH` hours;
    - with a reservation (Braket Direct) nothing of the job is charged beyond the reservation's
      hours: "tasks and jobs submitted WITH the reservation ARN incur no additional charge"
      (aws/agent-toolkit-for-aws, amazon-braket references/pricing.md, and the Braket pricing
      page's Braket Direct section);
    - quantum tasks: see :func:`_task_cost`.
    """
    instance_type, count, volume_gb = machine
    total = Decimal(0)
    instance_cost: Decimal | None = None
    storage_cost: Decimal | None = None
    if reservation:
        notes.append(f"the job ran in reservation {reservation}: billed by its hours, not here")
        instance_cost = storage_cost = Decimal(0)
    elif ms is None:
        notes.append("the job's billable duration is not known")
    else:
        instance_cost = _instance_cost(prices, region, instance_type, ms * count, notes)
        storage_cost = _storage_cost(prices, region, volume_gb, ms, notes)
    total += (instance_cost or 0) + (storage_cost or 0)
    by_device: dict[str, float | None] = {}
    for device, figures in tasks.items():
        device_cost = _task_cost(prices, region, device, figures, reservation, notes)
        by_device[device] = _money(device_cost) if device_cost is not None else None
        total += device_cost or 0
    return {
        "currency": "USD",
        "instance": _money(instance_cost) if instance_cost is not None else None,
        "storage": _money(storage_cost) if storage_cost is not None else None,
        "quantum_tasks": by_device,
        "total": _money(total),
        "complete": None not in (instance_cost, storage_cost, *by_device.values()),
    }


def _instance_cost(
    prices: PriceList, region: str, instance_type: str, ms: int, notes: list[str]
) -> Decimal | None:
    price = prices.get(INSTANCE_FAMILY, region, instance_type)
    rate = price.per_ms() if price is not None and price.currency == "USD" else None
    if rate is None:
        notes.append(f"no USD time price for instance type {instance_type} in {region}")
        return None
    return rate * ms


def _storage_cost(
    prices: PriceList, region: str, volume_gb: int, ms: int, notes: list[str]
) -> Decimal | None:
    price = prices.get(VOLUME_FAMILY, region, VOLUME)
    if price is None or price.currency != "USD":
        notes.append(f"no USD price for job storage in {region}")
        return None
    return price.per_unit * volume_gb * ms / (HOURS_PER_MONTH * 3_600_000)


def _task_cost(
    prices: PriceList,
    region: str,
    device: str,
    figures: dict[str, Any],
    reservation: str,
    notes: list[str],
) -> Decimal | None:
    if is_simulator(device):
        version = device.rsplit("/", 1)[-1].upper()
        price = prices.get(SIMULATOR_FAMILY, region, version)
        rate = price.per_ms() if price is not None and price.currency == "USD" else None
        if rate is None:
            notes.append(f"no USD price for simulator {version} tasks in jobs in {region}")
            return None
        return rate * int(figures.get("billed_execution_ms") or 0)
    if reservation:
        notes.append(f"{device}: tasks in the reservation are billed by the reservation's hour")
        return Decimal(0)
    name = qpu_name(device)
    task = prices.get(QPU_TASK_FAMILY, region, name)
    shot = prices.get(QPU_SHOT_FAMILY, region, name)
    if task is None or shot is None or {task.currency, shot.currency} != {"USD"}:
        notes.append(f"no USD task and shot prices for {name} in {region}")
        return None
    states = figures.get("tasks") if isinstance(figures.get("tasks"), dict) else {}
    unbilled = sum(n for state, n in states.items() if state in ("FAILED", "CANCELLED"))
    tasks = _int(figures.get("billable_tasks"), sum(states.values()) - unbilled)
    shots = _int(figures.get("billable_shots"), _int(figures.get("shots"), 0))
    return task.per_unit * tasks + shot.per_unit * shots


def _int(value: Any, default: int) -> int:
    return (
        int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default
    )


def _money(amount: Decimal) -> float:
    return float(amount.quantize(Decimal("0.00000001")))


def summary(usage: dict[str, Any]) -> str:
    """The record as one line of the server log."""
    instance = usage["instance"]
    ms = instance.get("billable_ms")
    used = f"{instance['type']}" + (f" for {ms / 1000:.1f} s" if ms is not None else "")
    packed = usage.get("packed")
    if packed:
        idle = int(packed.get("idle_ms") or 0) / 1000
        used += f" (its share of a job of {packed['members']} electrons, {idle:.1f} s of it idle)"
    tasks = []
    for device, figures in usage["quantum_tasks"].items():
        count = sum((figures.get("tasks") or {}).values())
        billed = figures.get("billed_execution_ms")
        tasks.append(
            f"{device.rsplit('/', 1)[-1]}: {count} task{'s' * (count != 1)}, "
            f"{figures.get('shots', 0)} shots"
            + (f", {billed / 1000:.1f} s billed" if billed else "")
        )
    cost = usage.get("cost")
    if cost is None:
        priced = "no cost estimate: " + "; ".join(usage.get("notes") or ["no price list"])
    else:
        priced = f"estimated cost USD {cost['total']:.4f}" + (
            "" if cost["complete"] else " (incomplete: " + "; ".join(usage["notes"]) + ")"
        )
    return (
        f"Braket job {usage['job_name']} (dispatch {usage['dispatch_id']}, node "
        f"{usage['node_id']}) {usage['status']}: used {used}; quantum tasks: "
        + ("; ".join(tasks) if tasks else "none" if usage.get("tracked", True) else "not counted")
        + f"; {priced}"
    )


# ---------------------------------------------------------------------------- S3
def store(settings: BraketSettings, location: TaskLocation, usage: dict[str, Any]) -> None:
    """Write ``usage.json`` under the task's prefix (encrypted, the bucket's owner named, as
    every object of the task). Blocking."""
    aws.call(
        aws.clients_for(settings).s3,
        "put_object",
        Bucket=location.bucket,
        Key=location.key(USAGE_KEY),
        Body=json.dumps(usage, indent=2, sort_keys=True).encode(),
        ContentType="application/json",
        **settings.encryption,
        **aws.bucket_owner(settings),
    )


def load(settings: BraketSettings, bucket: str, prefix: str) -> dict[str, Any] | None:
    """The ``usage.json`` under a task's prefix; None if there is none. Blocking."""
    found = aws.call_unless(
        aws.NO_SUCH_KEY | {"NoSuchBucket", "AccessDenied", "403"},
        aws.clients_for(settings).s3,
        "get_object",
        Bucket=bucket,
        Key=f"{prefix}/{USAGE_KEY}",
        **aws.bucket_owner(settings),
    )
    if found is None:
        return None
    try:
        usage = json.loads(found["Body"].read())
    except ValueError:
        return None
    return usage if isinstance(usage, dict) else None


# ---------------------------------------------------------------------------- accounting
def account(
    settings: BraketSettings,
    location: TaskLocation,
    job: dict[str, Any],
    outcome: dict[str, Any] | None,
    share: dict[str, int] | None = None,
) -> dict[str, Any] | None:
    """Price the job's usage (a packed member's: its share, see :func:`record`), write
    ``usage.json`` and log its summary; the record, or None when it could not be made. Never
    raises: accounting never fails a task. Blocking."""
    try:
        try:
            prices: PriceList | None = price_list()
            note = ""
        except PriceListUnavailable as exc:
            prices, note = None, str(exc)
        usage = record(settings, location, job, outcome, prices, note, share)
        try:
            store(settings, location, usage)
        except aws.AwsError as exc:
            server_log.warning(f"Could not write {location.uri}/{USAGE_KEY}: {exc}")
        server_log.info(summary(usage))
        return usage
    except Exception as exc:  # accounting must never fail a task
        server_log.warning(f"Could not account for Braket job {job.get('jobArn')}: {exc!r}")
        return None


#: Accounting's own thread: the price list's first fetch waits here, not on the I/O threads
#: every task's AWS calls share.
_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="covalent-braket-usage")
_pending = aws.Background(_pool)


def account_later(
    settings: BraketSettings,
    location: TaskLocation,
    job: dict[str, Any],
    outcome: dict[str, Any] | None,
    share: dict[str, int] | None = None,
) -> None:
    """:func:`account` in the background: the task goes on (and ends) without waiting."""
    try:
        _pending.submit(account, settings, location, job, outcome, share)
    except RuntimeError as exc:  # the interpreter is shutting down
        server_log.warning(f"Braket job {job.get('jobArn')} was not accounted for: {exc}")


def wait_for_accounts(timeout: float = 60.0) -> None:
    """Block until the accounting started so far is done (for tests and benchmarks)."""
    _pending.wait(timeout)
