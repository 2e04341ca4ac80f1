"""The emulated service's clock: this machine's, moved by the ``clock_offset_seconds`` setting.

A real client's clock is never exactly the service's. Every time the emulated service tells
(a job's or task's ``createdAt``, ``startedAt``, ``endedAt``, an event's time, the ``Date``
header of each answer) comes from :func:`now`, so a test can set the service behind or ahead of
the client and see what the client makes of it. The offset is read from the settings of the
emulator that started last in this process (:func:`follow`).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

_followed: Any = None


def follow(settings: Any) -> None:
    """Take the offset from ``settings`` (its ``clock_offset_seconds``, read at each call)."""
    global _followed
    _followed = settings


def offset() -> float:
    return float(getattr(_followed, "clock_offset_seconds", 0.0) or 0.0)


def now() -> datetime:
    """The service's time (UTC)."""
    return datetime.now(timezone.utc) + timedelta(seconds=offset())


def http_date() -> str:
    """The service's time as an HTTP ``Date`` header says it."""
    return format_datetime(now().replace(microsecond=0), usegmt=True)
