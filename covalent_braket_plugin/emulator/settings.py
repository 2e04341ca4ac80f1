"""The emulator's knobs, changeable at run time over the control API."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RuntimeSettings:
    """How the emulated service paces and runs work. A reset returns to the values the
    emulator was started with."""

    #: Seconds a job stays QUEUED before it may start.
    queue_seconds: float = 0.0
    #: Jobs that may run at once; more wait in QUEUED, as on the real service.
    max_concurrent_jobs: int = 32
    #: Seconds a quantum task stays QUEUED before it runs.
    task_queue_seconds: float = 0.0
    #: Image-mode jobs: container image URI -> the command (argv) that stands in for it.
    image_commands: dict[str, list[str]] = field(default_factory=dict)
