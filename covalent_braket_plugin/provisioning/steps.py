"""What ``setup`` is asked to make (:class:`Options`), what it did (:class:`Step`,
:class:`Outcome`), and the :class:`Maker` that makes a resource, or plans to, only when it is
missing or differs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import aws
from ..config import DEFAULTS


@dataclass(frozen=True)
class Options:
    """What ``setup`` is asked to make."""

    region: str = ""
    profile: str = ""
    credentials: str = ""
    #: Empty: ``amazon-braket-covalent-<region>-<account>``, a name of the caller's own.
    bucket: str = ""
    role_name: str = str(DEFAULTS["braket_job_execution_role_name"])
    kms_key_id: str = ""
    #: An ECR repository to create for the user's own image (empty: none).
    ecr_repository: str = ""
    expiry_days: int = 30
    #: The devices the job role may create quantum tasks on.
    devices: tuple[str, ...] = (str(DEFAULTS["quantum_device"]),)
    dry_run: bool = False


@dataclass
class Step:
    """One resource (or one property of it) and what was done about it."""

    resource: str
    name: str
    #: ``created``, ``set``, ``found``, ``would create``, ``would set``.
    action: str

    @property
    def changed(self) -> bool:
        return self.action in ("created", "set")


@dataclass
class Outcome:
    """What ``setup`` did and the settings that use it."""

    account: str
    identity: str
    region: str
    steps: list[Step] = field(default_factory=list)
    section: dict[str, Any] = field(default_factory=dict)
    emulator: bool = False
    #: The policy for whoever runs the Covalent server, filled for what was made.
    submitter_policy: dict[str, Any] = field(default_factory=dict)

    def report(self) -> str:
        """What was found, made or planned, one line each."""
        width = max((len(step.name) for step in self.steps), default=0)
        lines = [f"Account {self.account} ({self.identity}), Region {self.region}"]
        lines += [
            f"  {step.resource:<10} {step.name:<{width}}  {step.action}" for step in self.steps
        ]
        if not any(step.changed or step.action.startswith("would") for step in self.steps):
            lines.append("Everything was already there; nothing was created or changed.")
        return "\n".join(lines)

    def section_text(self) -> str:
        """The ``[executors.braket]`` keys that use what was made, as covalent.conf has them."""
        lines = ["[executors.braket]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in self.section.items()]
        return "\n".join(lines)


class Maker:
    """What each resource's maker needs: the options, the clients, and the outcome that its
    steps go into."""

    def __init__(self, options: Options, clients: aws.AwsClients, outcome: Outcome) -> None:
        self.options = options
        self.clients = clients
        self.outcome = outcome

    def step(
        self, resource: str, name: str, missing: bool, make: Callable[[], Any], verb: str
    ) -> None:
        """Record ``name`` as found, or make it (``verb``: ``create`` or ``set``)."""
        if not missing:
            self.outcome.steps.append(Step(resource, name, "found"))
            return
        if self.options.dry_run:
            self.outcome.steps.append(Step(resource, name, f"would {verb}"))
            return
        make()
        self.outcome.steps.append(Step(resource, name, "created" if verb == "create" else verb))


def current(
    exists: bool, missing: str, client: Any, operation: str, **params: Any
) -> dict[str, Any] | None:
    """What a resource has now: ``operation``'s answer, or None when the resource does not
    exist yet (a dry run plans it) or the call answers ``missing`` (nothing set)."""
    if not exists:
        return None
    return aws.call_unless(frozenset({missing}), client, operation, **params)
