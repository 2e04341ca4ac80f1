"""The doctor's verdicts: one :class:`Check` per line, the :class:`Report` that collects them
(and makes the executor's own pre-flight checks, one at a time), and the report as text or
JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

from .. import aws, preflight
from ..config import BraketSettings, InvalidSettingError

OK, PROBLEM, UNKNOWN, SKIPPED = "ok", "problem", "unknown", "skipped"
#: Not a problem of the setup, but something to act on (jobs billed for no one, say).
WARNING = "warning"


@dataclass
class Check:
    """One check's verdict."""

    name: str
    status: str
    detail: str
    fix: str = ""


class Report:
    """The checks made so far, in order."""

    def __init__(self) -> None:
        self.checks: list[Check] = []

    def add(self, name: str, status: str, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, status, detail, fix))

    def preflight(
        self,
        name: str,
        check: Callable[[BraketSettings], None],
        settings: BraketSettings,
        detail: str,
    ) -> bool:
        """One of the executor's own pre-flight checks: ``detail`` if it passes."""
        try:
            with preflight.denials() as denied:
                check(settings)
        except InvalidSettingError as exc:
            self.add(name, PROBLEM, str(exc), f"change {exc.setting}, or create what it names")
            return False
        except aws.AwsError as exc:
            self.add(name, UNKNOWN, could_not(exc, ""))
            return False
        if denied:  # the executor goes on without a verdict; the doctor has none to give
            self.add(name, UNKNOWN, f"unknown (not allowed to look: {', '.join(denied)})")
            return True
        self.add(name, OK, detail)
        return True


def could_not(exc: aws.AwsError, action: str) -> str:
    """Why a check has no verdict: the caller may not look (``action``), or the look failed."""
    if exc.code in aws.DENIED and action:
        return f"unknown (not allowed to look: {action})"
    return f"could not check: {exc}"


def region(settings: BraketSettings) -> str:
    """The Region that the settings' clients call."""
    return aws.clients_for(settings).region


def render(checks: list[Check]) -> str:
    """One line per check (and a fix under each problem)."""
    width = max(len(check.name) for check in checks)
    lines = []
    for check in checks:
        lines.append(f"{check.status:<8} {check.name:<{width}}  {check.detail}")
        if check.fix and check.status in (PROBLEM, WARNING):
            lines.append(f"{'':<8} {'':<{width}}  fix: {check.fix}")
    problems = sum(check.status == PROBLEM for check in checks)
    lines.append(
        f"{problems} problem{'s' if problems != 1 else ''} found"
        if problems
        else "No problems found"
    )
    return "\n".join(lines)


def as_json(checks: list[Check]) -> str:
    return json.dumps([asdict(check) for check in checks], indent=2)
