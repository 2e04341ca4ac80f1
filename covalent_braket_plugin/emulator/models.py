"""State and rules of the emulated Braket service. Knows nothing about HTTP.

State is kept per account and region, created lazily, behind one lock. Jobs are run by a
:class:`~covalent_braket_plugin.emulator.runtime.JobRuntime`, which reports back through
:meth:`BraketBackend.transition`.
"""

from __future__ import annotations

import base64
import copy
import functools
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from .exceptions import (
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
)

DEFAULT_ACCOUNT = "123456789012"

JOB_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,50}$")
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
IMAGE_URI_RE = re.compile(r"^\d{10,14}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/.+(@sha256)?:.+$")
S3_URI_RE = re.compile(r"^(https|s3)://([^/]+)/?(.*)$")
CHANNEL_RE = re.compile(r"^[A-Za-z0-9\.\-_]+$")
JOB_ARN_RE = re.compile(r"^arn:aws[a-z-]*:braket:([a-z0-9-]+):(\d{12}):job/(.+)$")

MAX_JOB_NAME = 50
MAX_RUNTIME = 432_000
MAX_HYPERPARAMETERS = 100
MAX_HYPERPARAMETER_VALUE = 2500
MAX_CHANNELS = 20
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@functools.lru_cache(maxsize=1)
def instance_types() -> tuple[str, ...]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("braket")
    return tuple(model.shape_for("InstanceType").enum)


class Runtime(Protocol):
    def start(self, job: Job) -> None: ...

    def stop(self, job: Job) -> None: ...

    def shutdown(self) -> None: ...


@dataclass
class Job:
    """One hybrid job: the request as accepted, plus what the service adds."""

    arn: str
    account: str
    region: str
    request: dict[str, Any]
    status: str = "QUEUED"
    created_at: datetime = field(default_factory=now)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    failure_reason: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    #: ``AMZN_BRAKET_JOB_TOKEN``: quantum tasks created with it belong to this job.
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def name(self) -> str:
        return self.request["jobName"]

    @property
    def job_id(self) -> str:
        return self.arn.rsplit("/", 1)[1]

    @property
    def device(self) -> str:
        return self.request["deviceConfig"]["device"]

    def add_event(self, event_type: str, message: str | None = None) -> None:
        event: dict[str, Any] = {"eventType": event_type, "timeOfEvent": iso(now())}
        if message:
            event["message"] = message
        self.events.append(event)

    def billable_ms(self) -> int | None:
        if self.started_at is None:
            return None
        end = self.ended_at or now()
        return int((end - self.started_at).total_seconds() * 1000)

    def describe(self, queue_info: bool = False) -> dict[str, Any]:
        body = {
            key: copy.deepcopy(value)
            for key, value in self.request.items()
            if key not in ("clientToken", "tags")
        }
        body.update(
            {
                "jobArn": self.arn,
                "status": self.status,
                "createdAt": iso(self.created_at),
                "events": self.events[-20:],
                "tags": dict(self.tags),
            }
        )
        for key, value in (
            ("startedAt", iso(self.started_at)),
            ("endedAt", iso(self.ended_at)),
            ("failureReason", self.failure_reason),
            ("billableDuration", self.billable_ms()),
        ):
            if value is not None:
                body[key] = value
        if queue_info and self.status == "QUEUED":
            body["queueInfo"] = {"queue": "JOBS_QUEUE", "position": "1"}
        return body

    def summary(self) -> dict[str, Any]:
        body = {
            "jobArn": self.arn,
            "jobName": self.name,
            "status": self.status,
            "device": self.device,
            "createdAt": iso(self.created_at),
            "tags": dict(self.tags),
        }
        if self.started_at:
            body["startedAt"] = iso(self.started_at)
        if self.ended_at:
            body["endedAt"] = iso(self.ended_at)
        return body


@dataclass
class QuantumTask:
    """One quantum task: the request as accepted, plus what the service adds."""

    arn: str
    account: str
    region: str
    request: dict[str, Any]
    job_arn: str | None = None
    status: str = "QUEUED"
    created_at: datetime = field(default_factory=now)
    ended_at: datetime | None = None
    failure_reason: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def task_id(self) -> str:
        return self.arn.rsplit("/", 1)[1]

    @property
    def output_directory(self) -> str:
        """``outputS3Directory``: the key prefix (in ``outputS3Bucket``) holding the results."""
        return f"{self.request['outputS3KeyPrefix']}/{self.task_id}"

    @property
    def results_key(self) -> str:
        return f"{self.output_directory}/results.json"

    def summary(self) -> dict[str, Any]:
        body = {
            "quantumTaskArn": self.arn,
            "status": self.status,
            "deviceArn": self.request["deviceArn"],
            "shots": self.request["shots"],
            "outputS3Bucket": self.request["outputS3Bucket"],
            "outputS3Directory": self.output_directory,
            "createdAt": iso(self.created_at),
            "tags": dict(self.tags),
        }
        if self.ended_at:
            body["endedAt"] = iso(self.ended_at)
        return body

    def describe(self, queue_info: bool = False) -> dict[str, Any]:
        body = self.summary()
        body["deviceParameters"] = self.request.get("deviceParameters") or "{}"
        if queue_info:
            body["queueInfo"] = {"queue": "QUANTUM_TASKS_QUEUE", "queuePriority": "Normal"}
            if self.status == "QUEUED":
                body["queueInfo"]["position"] = "1"
            else:
                body["queueInfo"]["message"] = (
                    f"Task is in {self.status} status. AmazonBraket does not show queue position for this status."
                )
        if self.failure_reason:
            body["failureReason"] = self.failure_reason
        if self.job_arn:
            body["jobArn"] = self.job_arn
        if self.request.get("associations"):
            body["associations"] = self.request["associations"]
        return body


def _require(body: dict[str, Any], *path: str) -> Any:
    value: Any = body
    for part in path:
        if not isinstance(value, dict) or part not in value or value[part] in (None, ""):
            raise ValidationException(f"{'.'.join(path)} is required")
        value = value[part]
    return value


def _int_in(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationException(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationException(f"{name} must be {bound}, got {value}")
    return value


def _s3_uri(name: str, value: Any) -> str:
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
    name = _require(body, "jobName")
    if not isinstance(name, str) or len(name) > MAX_JOB_NAME or not JOB_NAME_RE.match(name):
        raise ValidationException(
            f"jobName {name!r} must be 1-{MAX_JOB_NAME} characters matching "
            "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,50}$"
        )
    role = _require(body, "roleArn")
    if not isinstance(role, str) or not ROLE_ARN_RE.match(role):
        raise ValidationException(f"roleArn {role!r} is not a valid IAM role ARN")

    algorithm = _require(body, "algorithmSpecification")
    script = algorithm.get("scriptModeConfig") if isinstance(algorithm, dict) else None
    image = algorithm.get("containerImage") if isinstance(algorithm, dict) else None
    if not script and not image:
        raise ValidationException(
            "algorithmSpecification must contain scriptModeConfig or containerImage"
        )
    if script:
        entry = _require(body, "algorithmSpecification", "scriptModeConfig", "entryPoint")
        if not isinstance(entry, str) or len(entry) > 256:
            raise ValidationException("scriptModeConfig.entryPoint must be 1-256 characters")
        _s3_uri(
            "scriptModeConfig.s3Uri",
            _require(body, "algorithmSpecification", "scriptModeConfig", "s3Uri"),
        )
        compression = script.get("compressionType", "NONE")
        if compression not in ("NONE", "GZIP"):
            raise ValidationException(f"compressionType must be NONE or GZIP, got {compression!r}")
    if image:
        uri = _require(body, "algorithmSpecification", "containerImage", "uri")
        if not isinstance(uri, str) or not IMAGE_URI_RE.match(uri):
            raise ValidationException(f"containerImage.uri {uri!r} is not a valid ECR image URI")

    device = _require(body, "deviceConfig", "device")
    if not isinstance(device, str) or len(device) > 256:
        raise ValidationException("deviceConfig.device must be 1-256 characters")

    instance = _require(body, "instanceConfig")
    allowed = instance_types()
    if instance.get("instanceType") not in allowed:
        raise ValidationException(
            f"instanceConfig.instanceType {instance.get('instanceType')!r} must be one of "
            + ", ".join(allowed)
        )
    _int_in("instanceConfig.volumeSizeInGb", _require(body, "instanceConfig", "volumeSizeInGb"), 1)
    _int_in("instanceConfig.instanceCount", instance.get("instanceCount", 1), 1)

    _s3_uri("outputDataConfig.s3Path", _require(body, "outputDataConfig", "s3Path"))
    if body.get("checkpointConfig"):
        _s3_uri("checkpointConfig.s3Uri", _require(body, "checkpointConfig", "s3Uri"))
    stopping = body.get("stoppingCondition") or {}
    if "maxRuntimeInSeconds" in stopping:
        _int_in(
            "stoppingCondition.maxRuntimeInSeconds", stopping["maxRuntimeInSeconds"], 1, MAX_RUNTIME
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
                f"hyperParameters[{key!r}] must be a string of 1-{MAX_HYPERPARAMETER_VALUE} characters"
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
        _s3_uri(
            f"inputDataConfig[{cname}].dataSource.s3DataSource.s3Uri",
            (((channel.get("dataSource") or {}).get("s3DataSource") or {}).get("s3Uri")),
        )

    tags = body.get("tags") or {}
    if not isinstance(tags, dict) or len(tags) > 50:
        raise ValidationException("tags must be a map of at most 50 entries")


class BraketBackend:
    """Every account's and region's Braket jobs, and the rules that govern them."""

    def __init__(
        self, runtime: Runtime | None = None, devices: Any = None, tasks: TaskRunner | None = None
    ) -> None:
        from .quantum import DeviceCatalogue

        self.runtime = runtime
        self.devices = devices if devices is not None else DeviceCatalogue()
        self.task_runner = tasks
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}  # by ARN, all accounts and regions
        self._names: dict[tuple[str, str], str] = {}  # (account, name) -> ARN
        self._tokens: dict[tuple[str, str], str] = {}  # (account, clientToken) -> ARN
        self._job_tokens: dict[str, str] = {}  # AMZN_BRAKET_JOB_TOKEN -> job ARN
        self._tasks: dict[str, QuantumTask] = {}
        self._task_tokens: dict[tuple[str, str], str] = {}

    # ---------------------------------------------------------------- jobs
    def create_job(self, account: str, region: str, body: dict[str, Any]) -> Job:
        validate_create_job(body)
        token = body.get("clientToken")
        with self._lock:
            if token and (account, token) in self._tokens:
                existing = self._jobs[self._tokens[(account, token)]]
                if existing.name != body["jobName"]:
                    raise ConflictException(
                        f"clientToken {token} was already used for job {existing.name}"
                    )
                return existing
            if (account, body["jobName"]) in self._names:
                raise ConflictException(f"A job named {body['jobName']} already exists")
            arn = f"arn:aws:braket:{region}:{account}:job/{uuid.uuid4()}"
            request = copy.deepcopy(body)
            request.setdefault("stoppingCondition", {}).setdefault("maxRuntimeInSeconds", 432_000)
            request["instanceConfig"].setdefault("instanceCount", 1)
            job = Job(
                arn=arn,
                account=account,
                region=region,
                request=request,
                tags=dict(body.get("tags") or {}),
            )
            job.add_event("QUEUED_FOR_EXECUTION")
            self._jobs[arn] = job
            self._job_tokens[job.token] = arn
            self._names[(account, job.name)] = arn
            if token:
                self._tokens[(account, token)] = arn
        if self.runtime is not None:
            self.runtime.start(job)
        return job

    def get_job(self, account: str, arn: str) -> Job:
        with self._lock:
            job = self._jobs.get(arn)
            if job is None or job.account != account:
                match = JOB_ARN_RE.match(arn or "")
                if not match:
                    raise ValidationException(f"{arn!r} is not a valid job ARN")
                raise ResourceNotFoundException(f"Job {arn} not found")
            return job

    def describe_job(self, account: str, arn: str, queue_info: bool = False) -> dict[str, Any]:
        with self._lock:
            return self.get_job(account, arn).describe(queue_info)

    def cancel_job(self, account: str, arn: str) -> dict[str, Any]:
        with self._lock:
            job = self.get_job(account, arn)
            if job.status in TERMINAL:
                raise ConflictException(
                    f"Job {arn} is already {job.status} and cannot be cancelled"
                )
            if job.status == "CANCELLING":
                return {"jobArn": arn, "cancellationStatus": "CANCELLING"}
            job.status = "CANCELLING"
        if self.runtime is not None:
            self.runtime.stop(job)
        else:
            self.transition(job, "CANCELLED", event="CANCELLED")
        return {"jobArn": arn, "cancellationStatus": "CANCELLING"}

    def search_jobs(self, account: str, region: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.account == account and j.region == region]
            return _search(jobs, body, _JOB_FILTERS, "jobs", Job.summary)

    def transition(
        self, job: Job, status: str, event: str | None = None, reason: str | None = None
    ) -> bool:
        """Move a job to ``status``; False (and no change) when it is already terminal."""
        with self._lock:
            if job.status in TERMINAL:
                return False
            if job.status == "CANCELLING" and status not in ("CANCELLED",):
                return False
            job.status = status
            if status == "RUNNING" and job.started_at is None:
                job.started_at = now()
            if status in TERMINAL:
                job.ended_at = now()
                if job.started_at is None:
                    job.started_at = job.ended_at
            if reason:
                job.failure_reason = reason[:4096]
            if event:
                job.add_event(event, reason)
            return True

    def add_event(self, job: Job, event: str, message: str | None = None) -> None:
        with self._lock:
            job.add_event(event, message)

    # ---------------------------------------------------------------- devices
    def get_device(self, arn: str) -> dict[str, Any]:
        device = self.devices.get(arn)
        if device is None:
            raise ResourceNotFoundException(f"Braket device {arn} not found")
        return device.describe()

    def search_devices(self, body: dict[str, Any]) -> dict[str, Any]:
        devices = sorted(self.devices.all(), key=lambda d: d.arn)
        filters = body.get("filters") or []
        for spec in filters:  # SearchDevices filters are name + values (any match)
            name, values = spec.get("name"), spec.get("values") or []
            if name not in _DEVICE_FILTERS:
                raise ValidationException(
                    f"device filter name {name!r} is not supported; use one of {', '.join(_DEVICE_FILTERS)}"
                )
            devices = [d for d in devices if d.summary()[_DEVICE_FILTERS[name]] in values]
        return _page(devices, body, "devices", lambda d: d.summary())

    # ---------------------------------------------------------------- quantum tasks
    def create_quantum_task(self, account: str, region: str, body: dict[str, Any]) -> QuantumTask:
        import json

        device_arn = _require(body, "deviceArn")
        device = self.devices.get(device_arn)
        if device is None:
            raise ValidationException(f"Device {device_arn} does not exist")
        if device.status != "ONLINE":
            from .exceptions import DeviceOfflineException

            raise DeviceOfflineException(f"Device {device_arn} is {device.status}")
        shots = _int_in("shots", _require(body, "shots"), 0)
        _require(body, "outputS3Bucket")
        if not isinstance(body.get("outputS3KeyPrefix"), str) or not body["outputS3KeyPrefix"]:
            raise ValidationException("outputS3KeyPrefix is required")
        action_text = _require(body, "action")
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
                f"Device {device_arn} does not support the action {header!r}; it runs braket.ir.openqasm.program"
            )
        device.check_program(source, shots)
        token = body.get("clientToken")
        with self._lock:
            if token and (account, token) in self._task_tokens:
                return self._tasks[self._task_tokens[(account, token)]]
            job_arn = self._job_tokens.get(body.get("jobToken") or "")
            arn = f"arn:aws:braket:{region}:{account}:quantum-task/{uuid.uuid4()}"
            task = QuantumTask(
                arn,
                account,
                region,
                copy.deepcopy(body),
                job_arn=job_arn,
                tags=dict(body.get("tags") or {}),
            )
            self._tasks[arn] = task
            if token:
                self._task_tokens[(account, token)] = arn
        if self.task_runner is not None:
            self.task_runner.start(task, device)
        return task

    def get_quantum_task(self, account: str, arn: str) -> QuantumTask:
        with self._lock:
            task = self._tasks.get(arn)
            if task is None or task.account != account:
                raise ResourceNotFoundException(f"Quantum task {arn} not found")
            return task

    def describe_quantum_task(
        self, account: str, arn: str, queue_info: bool = False
    ) -> dict[str, Any]:
        with self._lock:
            return self.get_quantum_task(account, arn).describe(queue_info)

    def cancel_quantum_task(self, account: str, arn: str) -> dict[str, Any]:
        with self._lock:
            task = self.get_quantum_task(account, arn)
            if task.status in TERMINAL:
                raise ConflictException(
                    f"Quantum task {arn} is already {task.status} and cannot be cancelled"
                )
            if task.status == "QUEUED":
                self.finish_task(task, "CANCELLED")
                return {"quantumTaskArn": arn, "cancellationStatus": "CANCELLED"}
            task.status = "CANCELLING"
        return {"quantumTaskArn": arn, "cancellationStatus": "CANCELLING"}

    def search_quantum_tasks(
        self, account: str, region: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        with self._lock:
            tasks = [t for t in self._tasks.values() if t.account == account and t.region == region]
            return _search(tasks, body, _TASK_FILTERS, "quantumTasks", QuantumTask.summary)

    def start_task(self, task: QuantumTask) -> bool:
        """QUEUED -> RUNNING; False when the task was cancelled meanwhile."""
        with self._lock:
            if task.status != "QUEUED":
                return False
            task.status = "RUNNING"
            return True

    def finish_task(self, task: QuantumTask, status: str, reason: str | None = None) -> None:
        with self._lock:
            if task.status in TERMINAL:
                return
            if task.status == "CANCELLING":
                status = "CANCELLED"
            task.status = status
            task.ended_at = now()
            if reason:
                task.failure_reason = reason[:4096]

    # ---------------------------------------------------------------- tags
    def _tag_target(self, account: str, arn: str) -> Job | QuantumTask:
        if ":quantum-task/" in (arn or ""):
            return self.get_quantum_task(account, arn)
        if not JOB_ARN_RE.match(arn or ""):
            raise ValidationException(f"{arn!r} is not a valid resource ARN")
        return self.get_job(account, arn)

    def list_tags(self, account: str, arn: str) -> dict[str, str]:
        with self._lock:
            return dict(self._tag_target(account, arn).tags)

    def tag_resource(self, account: str, arn: str, tags: dict[str, str]) -> None:
        if not isinstance(tags, dict) or not tags:
            raise ValidationException("tags must be a non-empty map")
        with self._lock:
            job = self._tag_target(account, arn)
            if len({**job.tags, **tags}) > 50:
                raise ValidationException("a resource can have at most 50 tags")
            job.tags.update({str(k): str(v) for k, v in tags.items()})

    def untag_resource(self, account: str, arn: str, keys: list[str]) -> None:
        with self._lock:
            job = self._tag_target(account, arn)
            for key in keys:
                job.tags.pop(key, None)

    # ---------------------------------------------------------------- lifecycle
    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def tasks(self) -> list[QuantumTask]:
        with self._lock:
            return list(self._tasks.values())

    def reset(self) -> None:
        if self.runtime is not None:
            self.runtime.shutdown()
        self.devices.reset()
        with self._lock:
            self._jobs.clear()
            self._names.clear()
            self._tokens.clear()
            self._job_tokens.clear()
            for task in self._tasks.values():
                if task.status not in TERMINAL:
                    task.status = "CANCELLED"
            self._tasks.clear()
            self._task_tokens.clear()


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind != "offset":
            raise ValueError(kind)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise ValidationException(f"nextToken {token!r} is invalid") from None


#: SearchJobs filters on what the service filters on: jobArn and createdAt.
_JOB_FILTERS: dict[str, Any] = {
    "jobArn": lambda j: j.arn,
    "createdAt": lambda j: iso(j.created_at),
}
_TASK_FILTERS: dict[str, Any] = {
    "quantumTaskArn": lambda t: t.arn,
    "status": lambda t: t.status,
    "deviceArn": lambda t: t.request["deviceArn"],
    "jobArn": lambda t: t.job_arn or "",
    "createdAt": lambda t: iso(t.created_at),
    "tags.<key>": None,
}
_DEVICE_FILTERS = {
    "deviceArn": "deviceArn",
    "deviceName": "deviceName",
    "deviceType": "deviceType",
    "deviceStatus": "deviceStatus",
    "providerName": "providerName",
}


class TaskRunner(Protocol):
    def start(self, task: QuantumTask, device: Any) -> None: ...


def _page(items: list[Any], body: dict[str, Any], key: str, render: Any) -> dict[str, Any]:
    max_results = body.get("maxResults", 100)
    _int_in("maxResults", max_results, 1, 100)
    start = _decode_token(body.get("nextToken"))
    result: dict[str, Any] = {key: [render(item) for item in items[start : start + max_results]]}
    if start + max_results < len(items):
        result["nextToken"] = _encode_token(start + max_results)
    return result


def _search(
    records: list[Any], body: dict[str, Any], fields: dict[str, Any], key: str, render: Any
) -> dict[str, Any]:
    filters = body.get("filters") or []
    if not isinstance(filters, list):
        raise ValidationException("filters must be a list")
    records = sorted(records, key=lambda r: r.created_at)
    matched = [r for r in records if all(_matches(r, spec, fields) for spec in filters)]
    return _page(matched, body, key, render)


def _matches(record: Any, spec: dict[str, Any], fields: dict[str, Any]) -> bool:
    if not isinstance(spec, dict):
        raise ValidationException("each filter must be an object with name, values and operator")
    name = spec.get("name")
    values = spec.get("values") or []
    operator = spec.get("operator")
    if isinstance(name, str) and name.startswith("tags.") and "tags.<key>" in fields:
        actual = record.tags.get(name[5:])
        if actual is None:
            return False
    elif name in fields:
        actual = fields[name](record)
    else:
        raise ValidationException(
            f"filter name {name!r} is not supported; use one of " + ", ".join(fields)
        )
    if not values or len(values) > 10:
        raise ValidationException(f"filter {name!r} takes 1 to 10 values")
    if operator == "EQUAL":
        return actual in values
    if operator == "CONTAINS":
        return any(v in actual for v in values)
    if operator in ("LT", "LTE", "GT", "GTE"):
        ref = values[0]
        return {
            "LT": actual < ref,
            "LTE": actual <= ref,
            "GT": actual > ref,
            "GTE": actual >= ref,
        }[operator]
    if operator == "BETWEEN":
        if len(values) != 2:
            raise ValidationException("BETWEEN takes two values")
        return values[0] <= actual <= values[1]
    raise ValidationException(f"filter operator {operator!r} is not supported")
