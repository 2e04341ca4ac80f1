"""The quantum tasks of one account in one Region, kept for its
:class:`~covalent_braket_plugin.emulator.api.backend.BraketBackend`: created (once per client
token), looked up, described with their place in their device's queue, cancelled, searched,
and their runs' progress as the task runner reports it. Knows nothing about HTTP.

Quantum tasks run on a :class:`QuantumTaskHost` (the emulator's is
:class:`~covalent_braket_plugin.emulator.circuits.task_runner.QuantumTaskRunner`), shared by
every account and Region, which reports each task's start and end to the book that started
it, handed over with the task.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from ...service import TERMINAL_STATES
from ..clock import machine_now
from ..exceptions import ConflictException, ResourceNotFoundException, ValidationException
from . import search
from .devices import Device, DeviceCatalogue
from .models import Job, QuantumTask, place_in_queue
from .rules import validate_create_quantum_task


class QuantumTaskHost(Protocol):
    """Where the book's quantum tasks run: starts each, and reports its start and end to the
    ``states`` it is handed with it."""

    def start(self, task: QuantumTask, device: Device, states: QuantumTaskBook) -> None: ...

    def reset(self) -> None: ...


class QuantumTaskBook:
    """One account's quantum tasks in one Region.

    Args:
        account: The account the tasks belong to.
        region: The Region they were created in.
        devices: The devices served (each task's device is checked against them).
        runner: Runs each task created; None leaves tasks QUEUED.
        lock: The backend's lock, which guards the book too: a task is created, and the
            backend's state is cleared or tagged, under one lock.
        job_for_token: The backend's job for an ``AMZN_BRAKET_JOB_TOKEN`` (None when it has
            none), whose quantum tasks are the job's.
    """

    def __init__(
        self,
        account: str,
        region: str,
        devices: DeviceCatalogue,
        runner: QuantumTaskHost | None,
        lock: threading.RLock,
        job_for_token: Callable[[str], Job | None],
        clock: Callable[[], datetime] = machine_now,
    ) -> None:
        self.account = account
        self.clock = clock
        self.region = region
        self.devices = devices
        self.runner = runner
        self._lock = lock
        self._job_for_token = job_for_token
        self._tasks: dict[str, QuantumTask] = {}  # by ARN
        self._tokens: dict[str, str] = {}  # clientToken -> task ARN

    def create(self, body: dict[str, Any]) -> QuantumTask:
        device = validate_create_quantum_task(body, self.devices, self.region)
        token = body.get("clientToken")
        with self._lock:
            if token and token in self._tokens:
                return self._tasks[self._tokens[token]]
            job = self._job_for_token(body.get("jobToken") or "")
            if job is not None and job.request.get("associations") and job.device != device.arn:
                raise ValidationException(
                    f"Hybrid job {job.name} runs in a Braket Direct reservation of {job.device}: "
                    f"its quantum tasks go to that device only, not to {device.arn}"
                )
            arn = f"arn:aws:braket:{self.region}:{self.account}:quantum-task/{uuid.uuid4()}"
            task = QuantumTask(
                arn,
                self.account,
                self.region,
                copy.deepcopy(body),
                job_arn=job.arn if job is not None else None,
                tags=dict(body.get("tags") or {}),
                created_at=self.clock(),
                clock=self.clock,
            )
            self._tasks[arn] = task
            if token:
                self._tokens[token] = arn
        if self.runner is not None:
            self.runner.start(task, device, self)
        return task

    def get(self, arn: str) -> QuantumTask:
        with self._lock:
            task = self._tasks.get(arn)
            if task is None:
                raise ResourceNotFoundException(f"Quantum task {arn} not found")
            return task

    def describe(self, arn: str, queue_info: bool = False) -> dict[str, Any]:
        with self._lock:
            task = self.get(arn)
            device = task.request["deviceArn"]
            queued = [
                t
                for t in self._tasks.values()
                if t.status == "QUEUED" and t.request["deviceArn"] == device
            ]
            return task.describe(place_in_queue(task, queued, 2000) if queue_info else None)

    def cancel(self, arn: str) -> dict[str, Any]:
        """CANCELLING at once; CANCELLED when the runner next looks (a queued task at once)."""
        with self._lock:
            task = self.get(arn)
            if task.status in TERMINAL_STATES:
                raise ConflictException(
                    f"Amazon Braket cannot cancel a quantum task in the {task.status} status"
                )
            task.status = "CANCELLING"
        return {"quantumTaskArn": arn, "cancellationStatus": "CANCELLING"}

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            tasks = list(self._tasks.values())
            return search.search(
                tasks, body, search.TASK_FILTERS, "quantumTasks", QuantumTask.summary
            )

    def start_task(self, task: QuantumTask) -> bool:
        """QUEUED -> RUNNING; False when the task was cancelled meanwhile."""
        with self._lock:
            if task.status != "QUEUED":
                return False
            task.status = "RUNNING"
            return True

    def finish_task(self, task: QuantumTask, status: str, reason: str | None = None) -> None:
        with self._lock:
            if task.status in TERMINAL_STATES:
                return
            if task.status == "CANCELLING":
                status = "CANCELLED"
            task.status = status
            task.ended_at = task.clock()
            if reason:
                task.failure_reason = reason[:4096]

    def all(self) -> list[QuantumTask]:
        with self._lock:
            return list(self._tasks.values())

    def clear(self) -> None:
        """Forget every task, those not yet ended marked CANCELLED (for their runner)."""
        with self._lock:
            for task in self._tasks.values():
                if task.status not in TERMINAL_STATES:
                    task.status = "CANCELLED"
            self._tasks.clear()
            self._tokens.clear()
