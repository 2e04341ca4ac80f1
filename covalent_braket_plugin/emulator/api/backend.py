"""The emulated Braket service's state and rules, kept per account and Region, as moto keeps
its services' (a job made in us-west-2 is not seen from eu-north-1). Knows nothing about HTTP.

Jobs run on a :class:`JobHost` (the emulator's is
:class:`~covalent_braket_plugin.emulator.runtime.lifecycle.JobRuntime`) and quantum tasks on a
:class:`~covalent_braket_plugin.emulator.api.quantum_tasks.QuantumTaskHost` (the emulator's is
:class:`~covalent_braket_plugin.emulator.circuits.task_runner.QuantumTaskRunner`), both shared
by every account and Region; each reports back to whoever started the work, handed over with
the work: a job's host to the backend, a quantum task's to the backend's
:class:`~covalent_braket_plugin.emulator.api.quantum_tasks.QuantumTaskBook`.
"""

from __future__ import annotations

import copy
import re
import threading
import uuid
from typing import Any, Protocol

from ...service import MAX_RUNTIME_SECONDS, TERMINAL_STATES
from ..aws_services.role_trust import check_job_role
from ..clock import Clock
from ..exceptions import ConflictException, ResourceNotFoundException, ValidationException
from ..settings import RuntimeSettings
from . import job_quotas, search
from .devices import Device, DeviceCatalogue
from .models import Job, QuantumTask, place_in_queue
from .quantum_tasks import QuantumTaskBook, QuantumTaskHost
from .rules import validate_create_job, validate_job_associations

JOB_ARN_RE = re.compile(r"^arn:aws[a-z-]*:braket:([a-z0-9-]+):(\d{12}):job/(.+)$")


class JobHost(Protocol):
    """Where the backend's jobs run: starts and stops them, and reports their progress to the
    ``states`` it is handed with each."""

    def start(self, job: Job, states: BraketBackend) -> None: ...

    def stop(self, job: Job, states: BraketBackend) -> None: ...

    def stop_all(self) -> None: ...


class BraketBackend:
    """One account's Braket service in one Region: its jobs, the devices it serves, its
    quantum tasks (kept in :attr:`quantum_tasks`) and the tags of both."""

    def __init__(
        self,
        account: str,
        region: str,
        runtime: JobHost | None,
        devices: DeviceCatalogue,
        tasks: QuantumTaskHost | None,
        settings: RuntimeSettings,
    ) -> None:
        self.account = account
        self.region = region
        self.settings = settings
        self.clock = Clock(settings)
        self.runtime = runtime
        self.devices = devices
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}  # by ARN
        self._names: dict[str, str] = {}  # job name -> ARN
        self._tokens: dict[str, str] = {}  # clientToken -> job ARN
        self._job_tokens: dict[str, str] = {}  # AMZN_BRAKET_JOB_TOKEN -> job ARN
        self.quantum_tasks = QuantumTaskBook(
            account, region, devices, tasks, self._lock, self._job_for_token, self.clock.now
        )

    # ---------------------------------------------------------------- jobs
    def create_job(self, body: dict[str, Any]) -> Job:
        validate_create_job(body)
        check_job_role(body["roleArn"])
        device = body["deviceConfig"]["device"]
        if not device.startswith("local:") and self._device(device) is None:
            raise ValidationException(
                f"Device {device} is not available in {self.region}: a job runs in the Region "
                "of its device (the managed simulators are in every Braket Region)"
            )
        validate_job_associations(body, self._device(device), self.region)
        token = body.get("clientToken")
        with self._lock:
            if token and token in self._tokens:
                existing = self._jobs[self._tokens[token]]
                if existing.name != body["jobName"]:
                    raise ConflictException(
                        f"clientToken {token} was already used for job {existing.name}"
                    )
                return existing
            if body["jobName"] in self._names:
                raise ConflictException(f"A job named {body['jobName']} already exists")
            job_quotas.check_create(self.settings, self.region, list(self._jobs.values()), body)
            arn = f"arn:aws:braket:{self.region}:{self.account}:job/{uuid.uuid4()}"
            request = copy.deepcopy(body)
            stopping = request.setdefault("stoppingCondition", {})
            stopping.setdefault("maxRuntimeInSeconds", MAX_RUNTIME_SECONDS)
            request["instanceConfig"].setdefault("instanceCount", 1)
            job = Job(
                arn=arn,
                account=self.account,
                region=self.region,
                request=request,
                tags=dict(body.get("tags") or {}),
                created_at=self.clock.now(),
                clock=self.clock.now,
            )
            job.add_event("QUEUED_FOR_EXECUTION")
            self._jobs[arn] = job
            self._job_tokens[job.token] = arn
            self._names[job.name] = arn
            if token:
                self._tokens[token] = arn
        if self.runtime is not None:
            self.runtime.start(job, self)
        return job

    def _visible(self, job: Job) -> bool:
        """Whether reads see the job yet (see ``job_visibility_seconds``)."""
        lag = self.settings.job_visibility_seconds
        return not lag or (self.clock.now() - job.created_at).total_seconds() >= lag

    def get_job(self, arn: str) -> Job:
        with self._lock:
            job = self._jobs.get(arn)
            if job is None or not self._visible(job):
                if not JOB_ARN_RE.match(arn or ""):
                    raise ValidationException(f"{arn!r} is not a valid job ARN")
                raise ResourceNotFoundException(f"Job {arn} not found")
            return job

    def describe_job(self, arn: str, queue_info: bool = False) -> dict[str, Any]:
        """GetJob's answer; a job on a QPU has its place in that QPU's queue, others in the
        account's."""
        with self._lock:
            job = self.get_job(arn)
            qpu = job_quotas.is_qpu(job.device)
            queued = [
                j
                for j in self._jobs.values()
                if j.status == "QUEUED" and (not qpu or j.device == job.device)
            ]
            return job.describe(place_in_queue(job, queued, 15) if queue_info else None)

    def cancel_job(self, arn: str) -> dict[str, Any]:
        with self._lock:
            job = self.get_job(arn)
            if job.status in TERMINAL_STATES:
                raise ConflictException(
                    f"Job {arn} is already {job.status} and cannot be cancelled"
                )
            if job.status == "CANCELLING":
                return {"jobArn": arn, "cancellationStatus": "CANCELLING"}
            job.status = "CANCELLING"
        if self.runtime is not None:
            self.runtime.stop(job, self)
        else:
            self.transition(job, "CANCELLED", event="CANCELLED")
        return {"jobArn": arn, "cancellationStatus": "CANCELLING"}

    def search_jobs(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            jobs = [job for job in self._jobs.values() if self._visible(job)]
            return search.search(jobs, body, search.JOB_FILTERS, "jobs", Job.summary)

    def transition(
        self, job: Job, status: str, event: str | None = None, reason: str | None = None
    ) -> bool:
        """Move a job to ``status``; False (and no change) when it is already terminal."""
        with self._lock:
            if job.status in TERMINAL_STATES:
                return False
            if job.status == "CANCELLING" and status not in ("CANCELLED",):
                return False
            job.status = status
            if status == "RUNNING" and job.started_at is None:
                job.started_at = self.clock.now()
            if status in TERMINAL_STATES:
                job.ended_at = self.clock.now()
                if job.started_at is None:
                    job.started_at = job.ended_at
            if reason:
                job.failure_reason = reason[:4096]
            if event:
                job.add_event(event, reason)
            return True

    def admit(self, job: Job) -> bool:
        """Let a queued job take its instances (and its QPU), if the account's job regime
        lets it start now (see :func:`.job_quotas.may_start`); whether it did."""
        with self._lock:
            if job.admitted:
                return True
            if not job_quotas.may_start(self.settings, list(self._jobs.values()), job):
                return False
            job.admitted = True
            return True

    def instance_ready(self, job: Job) -> None:
        """The job's instances are up: its billing starts."""
        with self._lock:
            if job.instance_ready_at is None:
                job.instance_ready_at = self.clock.now()

    def add_event(self, job: Job, event: str, message: str | None = None) -> None:
        with self._lock:
            job.add_event(event, message)

    def _job_for_token(self, token: str) -> Job | None:
        """The job an ``AMZN_BRAKET_JOB_TOKEN`` was issued to, if any."""
        with self._lock:
            return self._jobs.get(self._job_tokens.get(token) or "")

    # ---------------------------------------------------------------- devices
    def _device(self, arn: str) -> Device | None:
        """The device, if it answers in this backend's Region."""
        device = self.devices.get(arn)
        return device if device is not None and device.serves(self.region) else None

    def get_device(self, arn: str) -> dict[str, Any]:
        device = self._device(arn)
        if device is None:
            raise ResourceNotFoundException(f"Braket device {arn} not found in {self.region}")
        return device.describe()

    def search_devices(self, body: dict[str, Any]) -> dict[str, Any]:
        devices = sorted(
            (d for d in self.devices.all() if d.serves(self.region)), key=lambda d: d.arn
        )
        for spec in body.get("filters") or []:  # SearchDevices filters: name + values (any)
            name, values = spec.get("name"), spec.get("values") or []
            if name not in search.DEVICE_FILTERS:
                raise ValidationException(
                    f"device filter name {name!r} is not supported; use one of "
                    + ", ".join(search.DEVICE_FILTERS)
                )
            devices = [d for d in devices if d.summary()[search.DEVICE_FILTERS[name]] in values]
        return search.page(devices, body, "devices", lambda d: d.summary())

    # ---------------------------------------------------------------- quantum tasks
    # The operations, answered by the account's task book.
    def create_quantum_task(self, body: dict[str, Any]) -> QuantumTask:
        return self.quantum_tasks.create(body)

    def describe_quantum_task(self, arn: str, queue_info: bool = False) -> dict[str, Any]:
        return self.quantum_tasks.describe(arn, queue_info)

    def cancel_quantum_task(self, arn: str) -> dict[str, Any]:
        return self.quantum_tasks.cancel(arn)

    def search_quantum_tasks(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.quantum_tasks.search(body)

    # ---------------------------------------------------------------- tags
    def _tag_target(self, arn: str) -> Job | QuantumTask:
        if ":quantum-task/" in (arn or ""):
            return self.quantum_tasks.get(arn)
        if not JOB_ARN_RE.match(arn or ""):
            raise ValidationException(f"{arn!r} is not a valid resource ARN")
        return self.get_job(arn)

    def list_tags(self, arn: str) -> dict[str, str]:
        with self._lock:
            return dict(self._tag_target(arn).tags)

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        if not isinstance(tags, dict) or not tags:
            raise ValidationException("tags must be a non-empty map")
        with self._lock:
            target = self._tag_target(arn)
            if len({**target.tags, **tags}) > 50:
                raise ValidationException("a resource can have at most 50 tags")
            target.tags.update({str(k): str(v) for k, v in tags.items()})

    def untag_resource(self, arn: str, keys: list[str]) -> None:
        with self._lock:
            target = self._tag_target(arn)
            for key in keys:
                target.tags.pop(key, None)

    # ---------------------------------------------------------------- lifecycle
    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def clear(self) -> None:
        """Forget every job and task (their processes are stopped by the hosts)."""
        with self._lock:
            self._jobs.clear()
            self._names.clear()
            self._tokens.clear()
            self._job_tokens.clear()
            self.quantum_tasks.clear()


class BraketBackends:
    """Every account's and Region's :class:`BraketBackend`, made on first use, sharing one
    job host, one device catalogue and one quantum-task host."""

    def __init__(
        self,
        runtime: JobHost | None,
        devices: DeviceCatalogue,
        tasks: QuantumTaskHost | None,
        settings: RuntimeSettings,
    ) -> None:
        self.runtime = runtime
        self.devices = devices
        self.task_runner = tasks
        self.settings = settings
        self._lock = threading.Lock()
        self._backends: dict[tuple[str, str], BraketBackend] = {}

    def get(self, account: str, region: str) -> BraketBackend:
        with self._lock:
            backend = self._backends.get((account, region))
            if backend is None:
                backend = BraketBackend(
                    account, region, self.runtime, self.devices, self.task_runner, self.settings
                )
                self._backends[(account, region)] = backend
            return backend

    def all(self) -> list[BraketBackend]:
        with self._lock:
            return list(self._backends.values())

    def jobs(self) -> list[Job]:
        return [job for backend in self.all() for job in backend.jobs()]

    def tasks(self) -> list[QuantumTask]:
        return [task for backend in self.all() for task in backend.quantum_tasks.all()]

    def reset(self) -> None:
        """Stop every job and forget all state; devices added at run time are dropped."""
        if self.runtime is not None:
            self.runtime.stop_all()
        if self.task_runner is not None:
            self.task_runner.reset()
        self.devices.reset()
        for backend in self.all():
            backend.clear()
        with self._lock:
            self._backends.clear()
