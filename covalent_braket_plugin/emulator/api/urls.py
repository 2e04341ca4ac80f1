"""The Braket route table: (HTTP method, raw-path pattern, handler name).

Patterns match the raw (still percent-encoded) path, since ARNs arrive encoded; captured
groups are unquoted before they reach the handler.
"""

from __future__ import annotations

import re

from ..wsgi import raw_path

__all__ = ["ROUTES", "operation_of", "raw_path", "route"]

ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/job$"), "create_job"),
    ("GET", re.compile(r"^/job/(?P<arn>[^/]+)$"), "get_job"),
    ("PUT", re.compile(r"^/job/(?P<arn>[^/]+)/cancel$"), "cancel_job"),
    ("POST", re.compile(r"^/jobs$"), "search_jobs"),
    ("GET", re.compile(r"^/device/(?P<arn>[^/]+)$"), "get_device"),
    ("POST", re.compile(r"^/devices$"), "search_devices"),
    ("POST", re.compile(r"^/quantum-task$"), "create_quantum_task"),
    ("GET", re.compile(r"^/quantum-task/(?P<arn>[^/]+)$"), "get_quantum_task"),
    ("PUT", re.compile(r"^/quantum-task/(?P<arn>[^/]+)/cancel$"), "cancel_quantum_task"),
    ("POST", re.compile(r"^/quantum-tasks$"), "search_quantum_tasks"),
    ("GET", re.compile(r"^/tags/(?P<arn>[^/]+)$"), "list_tags_for_resource"),
    ("POST", re.compile(r"^/tags/(?P<arn>[^/]+)$"), "tag_resource"),
    ("DELETE", re.compile(r"^/tags/(?P<arn>[^/]+)$"), "untag_resource"),
]


def route(method: str, raw_path: str) -> tuple[str, re.Match[str]] | None:
    """The handler name and the path's match for a request, or None if no operation fits."""
    for route_method, pattern, handler in ROUTES:
        match = pattern.match(raw_path)
        if match and route_method == method:
            return handler, match
    return None


def operation_of(handler: str) -> str:
    """The Braket operation a handler serves: ``create_job`` -> ``CreateJob``."""
    return "".join(part.title() for part in handler.split("_"))
