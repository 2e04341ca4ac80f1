"""Shipping a job's output to CloudWatch Logs, as the service does."""

from __future__ import annotations

import threading
import time
from typing import Any

from ...service import LOG_GROUP, log_stream_prefix
from ..api.models import Job
from ..aws_services.own_clients import InternalClients

_FLUSH_SECONDS = 0.5


class LogShipper:
    """Copies a job's output lines to its stream in ``/aws/braket/jobs``, in small batches."""

    def __init__(self, clients: InternalClients, job: Job) -> None:
        self.logs = clients.get("logs", job.region)
        self.stream = f"{log_stream_prefix(job.name, job.arn)}algo-1-{int(time.time())}"
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._ensure_stream()

    def _ensure_stream(self) -> None:
        try:
            self.logs.create_log_group(logGroupName=LOG_GROUP)
        except self.logs.exceptions.ResourceAlreadyExistsException:
            pass
        self.logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=self.stream)

    def pump(self, stream: Any) -> None:
        """Read the process's output until it closes (run on a thread of its own)."""
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._lock:
                self._pending.append({"timestamp": int(time.time() * 1000), "message": line or " "})
            if time.monotonic() - self._last_flush > _FLUSH_SECONDS:
                self.flush()
        stream.close()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._last_flush = time.monotonic()
        for start in range(0, len(batch), 1000):
            try:
                self.logs.put_log_events(
                    logGroupName=LOG_GROUP,
                    logStreamName=self.stream,
                    logEvents=batch[start : start + 1000],
                )
            except Exception:  # logs are best effort; the job's state is not
                return

    def close(self) -> None:
        self.flush()
