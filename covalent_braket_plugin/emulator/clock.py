"""The emulated service's clock: this machine's, moved by the ``clock_offset_seconds`` setting.

A real client's clock is never exactly the service's. Every time an emulated service tells (a
job's or task's ``createdAt``, ``startedAt``, ``endedAt``, an event's time, the ``Date`` header
of each answer) comes from its :class:`Clock`, so a test can set the service behind or ahead
of the client and see what the client makes of it. Each emulator has its own (several may run
in one process).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any


def machine_now() -> datetime:
    """This machine's time (UTC)."""
    return datetime.now(timezone.utc)


class Clock:
    """One emulator's clock, its offset read from its settings at each call.

    Args:
        settings: the emulator's run-time settings (their ``clock_offset_seconds``).
    """

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def now(self) -> datetime:
        """The service's time (UTC)."""
        offset = float(getattr(self.settings, "clock_offset_seconds", 0.0) or 0.0)
        return machine_now() + timedelta(seconds=offset)

    def http_date(self) -> str:
        """The service's time as an HTTP ``Date`` header says it."""
        return format_datetime(self.now().replace(microsecond=0), usegmt=True)
