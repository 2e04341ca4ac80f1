"""The request journal: every client request that went over the wire, by service and
operation, with its status and error code (for tests, benchmarks and named faults)."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from .api import urls
from .aws_services import s3
from .aws_services.identity import Scope
from .wsgi import peek_body

#: Requests kept (oldest dropped first).
JOURNAL_SIZE = 10_000


def operation_name(environ: dict[str, Any], service: str) -> str | None:
    """A readable operation name: the Braket operation, the S3 operation, the X-Amz-Target
    action, the query ``Action``, or None."""
    if service == "braket":
        found = urls.route(environ.get("REQUEST_METHOD", ""), urls.raw_path(environ))
        return urls.operation_of(found[0]) if found else None
    if service == "s3":
        return s3.operation(environ)
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if not action and environ.get("CONTENT_TYPE", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        # Query-protocol services (STS, IAM) send Action in the body: read it, then put it back.
        raw = peek_body(environ)
        action = parse_qs(raw.decode("utf-8", "replace")).get("Action")
    return action[0] if action else None


class Journal:
    """A bounded, thread-safe record of requests, and of the emulator's own events (the
    warm launcher's forks, zygotes started and replaced, cold fallbacks)."""

    def __init__(self, size: int = JOURNAL_SIZE) -> None:
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    @staticmethod
    def entry(environ: dict[str, Any], scope: Scope | None, service: str) -> dict[str, Any]:
        """A new entry for a request (recorded once its answer is known)."""
        return {
            "time": time.time(),
            "service": service,
            "region": scope.region if scope else None,
            "accessKeyId": scope.access_key if scope else None,
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO", ""),
            "query": environ.get("QUERY_STRING", ""),
            "operation": operation_name(environ, service),
        }

    def event(self, source: str) -> Callable[[dict[str, Any]], None]:
        """A callback that records the events of ``source`` (``{"event": NAME, ...}``)."""

        def record(event: dict[str, Any]) -> None:
            with self._lock:
                self._events.append({"time": time.time(), "source": source, **event})

        return record

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._events.clear()
