"""Braket-in-a-box: a local emulator of the Amazon Braket API on one loopback endpoint.

Braket hybrid jobs, devices and quantum tasks are served by this package; S3, STS, IAM,
CloudWatch Logs, ECR and the rest by moto's server app behind the same port. Jobs run as
subprocesses of the current Python environment under the Braket job container's contract.
See ``docs/architecture.md`` for its rooms.

Needs the ``emulator`` extra: ``pip install 'covalent-braket-plugin[emulator]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import BraketEmulator
    from .settings import RuntimeSettings

__all__ = ["BraketEmulator", "RuntimeSettings"]


def __getattr__(name: str) -> Any:
    """The two names, imported when first asked for: a job that runs in its image's own
    environment imports the job runtime from this package, without moto or the server."""
    if name == "BraketEmulator":
        from .server import BraketEmulator

        return BraketEmulator
    if name == "RuntimeSettings":
        from .settings import RuntimeSettings

        return RuntimeSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
