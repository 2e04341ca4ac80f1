"""Simulator worker processes: each quantum task is simulated in a process of its own kind.

The local simulators cannot share a process between threads (their numba layer aborts the
whole process when two threads simulate at once), and a simulation may crash, hang or run
out of memory. So simulations run in worker processes
(``python -m covalent_braket_plugin.emulator.circuits.simulation``), one task at a time each,
at most ``simulator_workers`` at once. A worker that dies or passes the time limit takes only its
own task with it: the task fails with the reason, the worker is replaced, the emulator serves on.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import subprocess
import sys
import threading
from typing import Any

from ..settings import RuntimeSettings

#: Seconds a new worker may take to import the simulators (numba and all) before its first task.
_START_SECONDS = 120.0


class SimulationFailed(RuntimeError):
    """The simulation did not give a result; the message is the task's failure reason."""


class _Worker:
    """One simulator process, its answers read by a thread of its own."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "covalent_braket_plugin.emulator.circuits.simulation"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.answers: queue.Queue[str | None] = queue.Queue()
        self.ready = False  # its first line, once its imports are done, says it is
        self.errors: collections.deque[str] = collections.deque(maxlen=5)
        threading.Thread(target=self._read_answers, daemon=True).start()
        threading.Thread(target=self._read_errors, daemon=True).start()

    def _read_answers(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.answers.put(line)
        self.answers.put(None)  # the process is gone

    def _read_errors(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if line.strip():
                self.errors.append(line.strip())

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def ask(self, request: dict[str, Any], timeout: float) -> str:
        """Send one request; the results, or SimulationFailed. The ``timeout`` counts from
        when the worker is ready: a new worker's imports are not the task's time."""
        assert self.process.stdin is not None
        if not self.ready:
            self._next_line(
                _START_SECONDS, f"the simulator did not start within {_START_SECONDS:g} s"
            )
            self.ready = True
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except OSError:
            raise SimulationFailed(self.death()) from None
        line = self._next_line(
            timeout, f"the simulation ran longer than the {timeout:g} s allowed; it was stopped"
        )
        answer = json.loads(line)
        if "error" in answer:
            raise SimulationFailed(answer["error"])
        return answer["ok"]

    def _next_line(self, timeout: float, late: str) -> str:
        """The worker's next line; SimulationFailed if it died, or if none came within
        ``timeout`` seconds (``late`` says so; the worker is stopped)."""
        try:
            line = self.answers.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise SimulationFailed(late) from None
        if line is None:
            raise SimulationFailed(self.death())
        return line

    def death(self) -> str:
        """Why the process ended, as a task's failure reason."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
        last = f": {self.errors[-1]}" if self.errors else ""
        return f"the simulator process died ({how}){last}"

    def stop(self) -> None:
        if self.alive():
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


class SimulatorProcesses:
    """At most ``settings.simulator_workers`` simulations at once, each in a worker process,
    started on first use and kept for the next task.

    Args:
        settings: Read at each task: the number of workers and the time limit.
    """

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self._lock = threading.Condition()
        self._idle: list[_Worker] = []
        self._busy: dict[int, tuple[str, _Worker]] = {}  # worker pid -> task ARN, worker
        self._epoch = 0  # counted up by each reset: a worker of an earlier one is not counted
        self._running = 0
        self._closed = False
        self.started = 0  # worker processes started, for the health endpoint
        self.replaced = 0  # workers that died or were stopped mid-task

    def run(self, request: dict[str, Any], on_start: Any = None) -> str:
        """Simulate one task (blocking until a worker is free); its ``results.json`` text.

        Args:
            request: See :func:`covalent_braket_plugin.emulator.circuits.simulation.simulate`.
            on_start: Called when a worker takes the task, before it runs; if it returns
                False (the task was cancelled meanwhile) nothing is simulated and None is
                returned.

        Raises:
            SimulationFailed: with the task's failure reason.
        """
        with self._lock:
            while not self._closed and self._running >= max(1, self.settings.simulator_workers):
                self._lock.wait()
            if self._closed:
                raise SimulationFailed("the emulator is shutting down")
            self._running += 1
            worker = self._idle.pop() if self._idle else None
            epoch = self._epoch
        try:
            if on_start is not None and on_start() is False:
                return None  # type: ignore[return-value]
            if worker is None or not worker.alive():
                worker = _Worker()
                with self._lock:
                    self.started += 1
            with self._lock:
                self._busy[worker.pid] = (request.get("taskArn", ""), worker)
            try:
                return worker.ask(request, self.settings.task_time_limit_seconds)
            finally:
                with self._lock:
                    self._busy.pop(worker.pid, None)
        finally:
            with self._lock:
                self._running -= 1
                if worker is not None and worker.alive() and not self._closed:
                    self._idle.append(worker)
                elif worker is not None:
                    if epoch == self._epoch:
                        self.replaced += 1
                    worker.stop()
                self._lock.notify()

    def describe(self) -> dict[str, Any]:
        """Workers for the health endpoint: idle and busy (with their task), started, replaced."""
        with self._lock:
            return {
                "limit": self.settings.simulator_workers,
                "idle": [worker.pid for worker in self._idle],
                "busy": [
                    {"pid": pid, "quantumTaskArn": arn} for pid, (arn, _) in self._busy.items()
                ],
                "started": self.started,
                "replaced": self.replaced,
            }

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._lock.notify_all()
        for worker in idle:
            worker.stop()

    def reset(self) -> None:
        """Stop the simulations under way (their tasks were forgotten) and count afresh; the
        idle workers are kept for the next tasks."""
        with self._lock:
            self._epoch += 1
            self.started = 0
            self.replaced = 0
            for _, worker in self._busy.values():  # its task's thread sees it die, stops it
                if worker.alive():
                    worker.process.kill()
