"""Running quantum tasks on the local Braket simulators, and their ``results.json``."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .clients import InternalClients
from .devices import Device, simulator_class
from .models import QuantumTask
from .settings import RuntimeSettings

if TYPE_CHECKING:
    from .backend import BraketBackend


class QuantumTaskRunner:
    """Runs quantum tasks on the local simulators, a few at a time, in worker threads."""

    def __init__(
        self, clients: InternalClients, settings: RuntimeSettings, workers: int = 4
    ) -> None:
        self.clients = clients
        self.settings = settings
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="quantum-task")

    def start(self, task: QuantumTask, device: Device, states: BraketBackend) -> None:
        self._pool.submit(self._execute, task, device, states)

    def _execute(self, task: QuantumTask, device: Device, states: BraketBackend) -> None:
        deadline = time.monotonic() + self.settings.task_queue_seconds
        while time.monotonic() < deadline and task.status == "QUEUED":
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        if not states.start_task(task):
            return
        try:
            request = task.request
            inputs = request.get("inputs") or None
            results = simulate(device, request["action"], int(request["shots"]), inputs, task.arn)
            self.clients.get("s3", task.region).put_object(
                Bucket=request["outputS3Bucket"], Key=task.results_key, Body=results.encode()
            )
        except Exception as exc:  # a program the simulator rejects fails the task, as on AWS
            states.finish_task(task, "FAILED", f"{type(exc).__name__}: {exc}")
            return
        states.finish_task(task, "COMPLETED")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def simulate(
    device: Device, action: str, shots: int, inputs: dict[str, Any] | None, task_id: str
) -> str:
    """Run an OpenQASM program on the device's local simulator; return ``results.json`` text."""
    from braket.ir.openqasm import Program

    program = Program.parse_raw(action)
    if inputs:
        program = Program(source=program.source, inputs={**(program.inputs or {}), **inputs})
    result = simulator_class(device.simulator)().run(program, shots=shots)
    result.taskMetadata.id = task_id
    result.taskMetadata.deviceId = device.arn
    body = json.loads(result.json(exclude_none=True))
    if not body.get("measurements"):
        body.pop("measurements", None)  # the schema rejects an empty list
    return json.dumps(body)
