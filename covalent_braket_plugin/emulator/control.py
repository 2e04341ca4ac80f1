"""The emulator's own control API under ``/_emulator``: health, reset, settings, devices,
faults, IAM policies, the request journal, and killing a job's process.

Every operation is a method named in :data:`ROUTES`; each takes the request's JSON body (or
None) and returns the answer's JSON body. Every operation needs the emulator's per-run token
(the ``X-Emulator-Token`` header); without it the request is refused (403) before its body is
read, and only ``GET /_emulator/health`` answers, with nothing but ``{"status": "ok"}``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from .api.backend import BraketBackends
from .api.devices import parse_catalogue
from .aws_services.identity import TOKEN_HEADER
from .exceptions import (
    AccessDeniedException,
    BraketError,
    ResourceNotFoundException,
    ValidationException,
)
from .faults import FaultInjector
from .journal import Journal
from .runtime.environments import check_spec
from .runtime.lifecycle import JobRuntime
from .settings import RuntimeSettings
from .wsgi import StartResponse, error_response, json_response, read_json

PREFIX = "/_emulator"

#: (HTTP method, path under :data:`PREFIX`) -> (method of :class:`ControlApi`, body kind:
#: "object", "list" or None for no body).
ROUTES: dict[tuple[str, str], tuple[str, str | None]] = {
    ("GET", "/health"): ("health", None),
    ("POST", "/reset"): ("reset", None),
    ("GET", "/settings"): ("settings", None),
    ("POST", "/settings"): ("change_settings", "object"),
    ("POST", "/devices"): ("add_devices", "list"),
    ("GET", "/faults"): ("faults", None),
    ("POST", "/faults"): ("change_faults", "object"),
    ("DELETE", "/faults"): ("clear_faults", None),
    ("GET", "/journal"): ("journal", None),
    ("DELETE", "/journal"): ("clear_journal", None),
    ("GET", "/iam"): ("policies", None),
    ("POST", "/iam"): ("enforce_policy", "object"),
    ("DELETE", "/iam"): ("clear_policies", None),
    ("POST", "/jobs/kill"): ("kill_job", "object"),
}


class ControlApi:
    """The control operations, over the emulator's parts.

    Args:
        backends: Braket state (for health and devices).
        runtime: The job runtime (its settings; killing a job's process).
        journal: The request journal.
        faults: The fault injector.
        policies: IAM policies enforced per access key id.
        reset: Returns the whole emulator to its starting state.
    """

    def __init__(
        self,
        backends: BraketBackends,
        runtime: JobRuntime,
        journal: Journal,
        faults: FaultInjector,
        policies: dict[str, dict[str, Any]],
        reset: Callable[[], None],
    ) -> None:
        self.backends = backends
        self.runtime = runtime
        self._journal = journal
        self._faults = faults
        self._policies = policies
        self._reset = reset

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse, trusted: bool = False
    ) -> Iterable[bytes]:
        """Answer a control request; ``trusted``: it carries the emulator's token."""
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")[len(PREFIX) :]
        try:
            if not trusted:
                if (method, path) == ("GET", "/health"):
                    return json_response(start_response, 200, {"status": "ok"})
                raise AccessDeniedException(
                    f"{PREFIX}{path} needs the emulator's token (the {TOKEN_HEADER} header)"
                )
            found = ROUTES.get((method, path))
            if found is None:
                raise ValidationException(f"no control operation {method} {PREFIX}{path}")
            name, kind = found
            if kind is None:
                answer = getattr(self, name)()
            else:
                body = read_json(environ, {} if kind == "object" else [])
                if kind == "object" and not isinstance(body, dict):
                    raise ValidationException("request body must be a JSON object")
                answer = getattr(self, name)(body)
            return json_response(start_response, 200, answer)
        except BraketError as error:
            return error_response(start_response, error)
        except (TypeError, ValueError) as exc:
            return error_response(start_response, ValidationException(str(exc)))

    def health(self) -> dict[str, Any]:
        jobs = self.backends.jobs()
        return {
            "status": "ok",
            "jobs": len(jobs),
            "running": sum(job.status == "RUNNING" for job in jobs),
            "quantumTasks": len(self.backends.tasks()),
            "simulators": self._simulators(),
            "launcher": self.runtime.launcher.describe(),
        }

    def _simulators(self) -> dict[str, Any] | None:
        runner = self.backends.task_runner
        simulators = getattr(runner, "simulators", None)
        return simulators.describe() if simulators is not None else None

    def reset(self) -> dict[str, Any]:
        self._reset()
        return {"status": "reset"}

    def settings(self) -> dict[str, Any]:
        return dataclasses.asdict(self.runtime.settings)

    def change_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        settings = self.runtime.settings
        values = {key: _setting(settings, key, value) for key, value in changes.items()}
        for key, value in values.items():
            setattr(settings, key, value)
        return self.settings()

    def add_devices(self, entries: Any) -> dict[str, Any]:
        added = parse_catalogue(entries, source="request")
        for device in added:
            self.backends.devices.add(device)
        return {"added": [device.arn for device in added]}

    def faults(self) -> dict[str, Any]:
        return self._faults.describe()

    def change_faults(self, changes: dict[str, Any]) -> dict[str, Any]:
        return self._faults.configure(changes)

    def clear_faults(self) -> dict[str, Any]:
        self._faults.reset()
        return self._faults.describe()

    def journal(self) -> dict[str, Any]:
        return {"requests": self._journal.entries(), "events": self._journal.events()}

    def clear_journal(self) -> dict[str, Any]:
        self._journal.clear()
        return {"requests": [], "events": []}

    def policies(self) -> dict[str, Any]:
        return {"policies": self._policies}

    def enforce_policy(self, body: dict[str, Any]) -> dict[str, Any]:
        key, policy = body.get("accessKeyId"), body.get("policy")
        if not isinstance(key, str) or not isinstance(policy, dict):
            raise ValidationException("POST /_emulator/iam takes {accessKeyId, policy}")
        self._policies[key] = policy
        return self.policies()

    def clear_policies(self) -> dict[str, Any]:
        self._policies.clear()
        return self.policies()

    def kill_job(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = body.get("jobArn", "")
        if not self.runtime.kill(arn):
            raise ResourceNotFoundException(f"no running job process for {arn!r}")
        return {"killed": arn}


#: Settings that may be None (the service's default).
_OPTIONAL_INTS = frozenset({"concurrent_jobs_quota"})


def _setting(settings: RuntimeSettings, key: str, value: Any) -> Any:
    """A setting's new ``value``, of the setting's type (checked before any is changed)."""
    if not hasattr(settings, key):
        raise ValidationException(f"unknown emulator setting {key!r}")
    current = getattr(settings, key)
    if key in _OPTIONAL_INTS:
        return None if value is None else int(value)
    if isinstance(current, dict) and not isinstance(value, dict):
        raise ValidationException(f"emulator setting {key!r} takes an object")
    if key == "instance_quotas":
        return {str(kind): int(count) for kind, count in value.items()}
    if key == "image_environments":
        try:
            return {str(image): check_spec(str(image), spec) for image, spec in value.items()}
        except ValueError as exc:
            raise ValidationException(str(exc)) from exc
    return type(current)(value)
