"""Records of the emulated Braket service: a hybrid job and a quantum task, as accepted and
as the service describes them, and a record's place in its queue. Knows nothing about HTTP or
processes."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ...service import timestamp
from ..clock import machine_now


def _iso(moment: datetime | None) -> str | None:
    return timestamp(moment) if moment is not None else None


@dataclass
class Job:
    """One hybrid job: the request as accepted, plus what the service adds."""

    arn: str
    account: str
    region: str
    request: dict[str, Any]
    status: str = "QUEUED"
    created_at: datetime = field(default_factory=machine_now)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    failure_reason: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    #: ``AMZN_BRAKET_JOB_TOKEN``: quantum tasks created with it belong to this job.
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: Left the queue to start: it holds its instances (and its QPU) until it ends.
    admitted: bool = False
    #: When its instances were up (after ``job_start_seconds``): billing starts here.
    instance_ready_at: datetime | None = None
    #: The service's clock (its emulator's :class:`~covalent_braket_plugin.emulator.clock.Clock`).
    clock: Callable[[], datetime] = field(default=machine_now, repr=False, compare=False)

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
        event: dict[str, Any] = {"eventType": event_type, "timeOfEvent": _iso(self.clock())}
        if message:
            event["message"] = message
        self.events.append(event)

    def billable_ms(self) -> int | None:
        """``billableDuration``: the instance time AWS bills, from when the job's instances
        are up until it ends (downloading its data and uploading its results included), in
        milliseconds; 0 for a job that ended before they were up.

        Braket bills a hybrid job's instances for the time they are used (the Hybrid Jobs tab
        of https://aws.amazon.com/braket/pricing/; "Braket Managed Jobs Instance" in Amazon's
        price list). Its jobs run on SageMaker training instances (``ml.*`` types, the
        training toolkit in the container), and SageMaker does not bill their start: its API
        reference (``DescribeTrainingJob``) says ``TrainingStartTime`` "Indicates the time when
        the training job starts on training instances. You are billed for the time interval
        between this time and the value of TrainingEndTime. The start time in CloudWatch Logs
        might be later than this time. The difference is due to the time it takes to download
        the training data", and ``TrainingEndTime`` is, "For successful jobs and stopped jobs,
        ... the time after model artifacts are uploaded". So ``job_start_seconds`` (the
        instance's start) is not billed; the download and the upload are. Milliseconds as
        measured: the source gives no rounding.
        """
        if self.instance_ready_at is None:
            return 0 if self.ended_at is not None else None
        end = self.ended_at or self.clock()
        return max(0, int((end - self.instance_ready_at).total_seconds() * 1000))

    def describe(self, queue_position: str | None = None) -> dict[str, Any]:
        """GetJob's answer; with ``queueInfo`` when a queue position is given (asked for)."""
        body = {
            key: copy.deepcopy(value)
            for key, value in self.request.items()
            if key not in ("clientToken", "tags")
        }
        body.update(
            {
                "jobArn": self.arn,
                "status": self.status,
                "createdAt": _iso(self.created_at),
                "events": self.events[-20:],
                "tags": dict(self.tags),
            }
        )
        for key, value in (
            ("startedAt", _iso(self.started_at)),
            ("endedAt", _iso(self.ended_at)),
            ("failureReason", self.failure_reason),
            ("billableDuration", self.billable_ms()),
        ):
            if value is not None:
                body[key] = value
        if queue_position is not None:
            body["queueInfo"] = _queue_info("JOBS_QUEUE", "Job", self.status, queue_position)
        return body

    def summary(self) -> dict[str, Any]:
        body = {
            "jobArn": self.arn,
            "jobName": self.name,
            "status": self.status,
            "device": self.device,
            "createdAt": _iso(self.created_at),
            "tags": dict(self.tags),
        }
        if self.started_at:
            body["startedAt"] = _iso(self.started_at)
        if self.ended_at:
            body["endedAt"] = _iso(self.ended_at)
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
    created_at: datetime = field(default_factory=machine_now)
    ended_at: datetime | None = None
    failure_reason: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    #: The service's clock (its emulator's :class:`~covalent_braket_plugin.emulator.clock.Clock`).
    clock: Callable[[], datetime] = field(default=machine_now, repr=False, compare=False)

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

    def action_metadata(self) -> dict[str, Any]:
        """``actionMetadata``: the kind of program (one program per task here)."""
        import json

        try:
            header = json.loads(self.request["action"])["braketSchemaHeader"]["name"]
        except (ValueError, TypeError, KeyError):
            header = "braket.ir.openqasm.program"
        return {"actionType": header, "programCount": 1}

    def summary(self) -> dict[str, Any]:
        body = {
            "quantumTaskArn": self.arn,
            "status": self.status,
            "deviceArn": self.request["deviceArn"],
            "shots": self.request["shots"],
            "outputS3Bucket": self.request["outputS3Bucket"],
            "outputS3Directory": self.output_directory,
            "createdAt": _iso(self.created_at),
            "tags": dict(self.tags),
        }
        if self.ended_at:
            body["endedAt"] = _iso(self.ended_at)
        return body

    def describe(self, queue_position: str | None = None) -> dict[str, Any]:
        """GetQuantumTask's answer; with ``queueInfo`` when a queue position is given."""
        body = self.summary()
        body["deviceParameters"] = self.request.get("deviceParameters") or "{}"
        body["actionMetadata"] = self.action_metadata()
        if queue_position is not None:
            body["queueInfo"] = {
                **_queue_info("QUANTUM_TASKS_QUEUE", "Task", self.status, queue_position),
                "queuePriority": "Normal",
            }
        if self.failure_reason:
            body["failureReason"] = self.failure_reason
        if self.job_arn:
            body["jobArn"] = self.job_arn
        if self.request.get("associations"):
            body["associations"] = self.request["associations"]
        return body


def place_in_queue(record: Job | QuantumTask, queued: list[Any], shown: int) -> str:
    """A queued record's place among ``queued`` (oldest first), as the service shows it: a
    number up to ``shown``, ``">shown"`` beyond."""
    ahead = sum(other.created_at < record.created_at for other in queued)
    return str(ahead + 1) if ahead < shown else f">{shown}"


def _queue_info(queue: str, kind: str, status: str, position: str) -> dict[str, Any]:
    """``queueInfo`` as the service gives it: a position while QUEUED, else ``"None"`` and a
    message."""
    if status == "QUEUED":
        return {"queue": queue, "position": position}
    return {
        "queue": queue,
        "position": "None",
        "message": f"{kind} is in {status} status. "
        "AmazonBraket does not show queue position for this status.",
    }
