"""Running quantum tasks: queued, then simulated in a worker process, their ``results.json``
stored where the service stores it, their end reported to the task book that took them."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..api.devices import Device
from ..api.models import QuantumTask
from ..aws_services.own_clients import InternalClients
from ..faults import FaultInjector
from ..settings import RuntimeSettings
from .workers import SimulationFailed, SimulatorProcesses

if TYPE_CHECKING:
    from ..api.quantum_tasks import QuantumTaskBook


#: The results of a quantum task are written by Braket's service-linked role, whose policy
#: (AmazonBraketServiceRolePolicy) allows ``s3:PutObject`` only on ``arn:aws:s3:::amazon-braket-*``
#: of the account ("put objects into and get objects from any bucket in your account with a
#: name that starts with amazon-braket-": the developer guide's service-linked role page).
SERVICE_ROLE_BUCKET_PREFIX = "amazon-braket-"


class QuantumTaskRunner:
    """Runs quantum tasks on the local simulators, in worker processes.

    Each task waits on a thread of its own (cheap: it only waits) for ``task_queue_seconds``
    and for a free simulator worker, while QUEUED; it is RUNNING while a worker simulates it.

    Args:
        clients: The emulator's own clients, to store results.
        settings: The queue delay, the number of simulator workers, the time limit.
        faults: Simulations staged to crash or hang, for tests.
    """

    def __init__(
        self, clients: InternalClients, settings: RuntimeSettings, faults: FaultInjector
    ) -> None:
        self.clients = clients
        self.settings = settings
        self.faults = faults
        self.simulators = SimulatorProcesses(settings)
        self._pool = ThreadPoolExecutor(max_workers=256, thread_name_prefix="quantum-task")

    def start(self, task: QuantumTask, device: Device, states: QuantumTaskBook) -> None:
        self._pool.submit(self._execute, task, device, states)

    def _execute(self, task: QuantumTask, device: Device, states: QuantumTaskBook) -> None:
        deadline = time.monotonic() + self.settings.task_queue_seconds
        while time.monotonic() < deadline and task.status == "QUEUED":
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        if task.status != "QUEUED":  # cancelled while queued
            states.finish_task(task, "CANCELLED")
            return
        request = task.request
        simulation = {
            "simulator": device.simulator,
            "action": request["action"],
            "shots": int(request["shots"]),
            "inputs": request.get("inputs") or None,
            "taskArn": task.arn,
            "deviceArn": device.arn,
        }
        fault = self.faults.simulation_fault()
        if fault:
            simulation["fault"] = fault
        try:
            results = self.simulators.run(simulation, on_start=lambda: states.start_task(task))
            if results is None:  # cancelled while it waited for a worker
                states.finish_task(task, "CANCELLED")
                return
            bucket = request["outputS3Bucket"]
            if not bucket.startswith(SERVICE_ROLE_BUCKET_PREFIX):
                raise PermissionError(
                    f"Amazon Braket could not write the results to s3://{bucket}: its "
                    "service-linked role (AWSServiceRoleForAmazonBraket) may write only to "
                    f"buckets whose names start with {SERVICE_ROLE_BUCKET_PREFIX}"
                )
            self.clients.get("s3", task.region).put_object(
                Bucket=bucket, Key=task.results_key, Body=results.encode()
            )
        except SimulationFailed as exc:  # the program, the simulator or its process failed
            states.finish_task(task, "FAILED", str(exc))
            return
        except PermissionError as exc:  # the service may not write there
            states.finish_task(task, "FAILED", str(exc))
            return
        except Exception as exc:  # storing the results failed
            states.finish_task(task, "FAILED", f"{type(exc).__name__}: {exc}")
            return
        states.finish_task(task, "COMPLETED")

    def reset(self) -> None:
        """After an emulator reset (tasks were forgotten): count the workers afresh."""
        self.simulators.reset()

    def shutdown(self) -> None:
        self.simulators.shutdown()
        self._pool.shutdown(wait=False, cancel_futures=True)
