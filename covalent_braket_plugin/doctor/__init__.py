"""``covalent-braket doctor``: check a user's whole setup, one line per check.

Each check says ok, problem (with how to fix it), or unknown (the caller may not look), and
the command exits non-zero on any problem. The AWS checks are the executor's own pre-flight
checks (:mod:`covalent_braket_plugin.preflight`, :mod:`covalent_braket_plugin.images`), made
one at a time, plus what only a person setting up needs to know: the bucket's encryption and
public access, the role's trust and permissions and the caller's (IAM
``SimulatePrincipalPolicy``, where the caller may call it), the image's Python, covalent.conf,
and the installed covalent and FastAPI.

:class:`Doctor` makes the checks in order, those of the installed versions, covalent.conf and
the credentials itself; :mod:`.resources` checks the bucket, the job role and the image,
:mod:`.permissions` simulates the job role's and the caller's policies, :mod:`.job_limits` shows
the job quotas (the instance type's and the jobs at once), and :mod:`.report`
collects the verdicts and renders them.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import aws, preflight, signing
from ..config import DEFAULTS, BraketSettings, InvalidSettingError, check_setting
from . import job_limits, permissions, resources
from .report import OK, PROBLEM, SKIPPED, UNKNOWN, WARNING, Check, Report, as_json, render

__all__ = [
    "FASTAPI_BREAKS_COVALENT",
    "OK",
    "PROBLEM",
    "SKIPPED",
    "UNKNOWN",
    "WARNING",
    "Check",
    "Doctor",
    "as_json",
    "config_path",
    "render",
]

#: FastAPI from this version on rejects Covalent 0.240's dispatch request (HTTP 422).
FASTAPI_BREAKS_COVALENT = (0, 132)
_VERSION = re.compile(r"(\d+)\.(\d+)")


def config_path() -> Path:
    """covalent.conf, where Covalent looks for it (beside the server's secret)."""
    return Path(signing.config_dir()) / "covalent.conf"


class Doctor:
    """The checks, in order; a failed prerequisite skips what depends on it.

    Args:
        overrides: Settings that take precedence over covalent.conf (``--region``, ...).
        python: The Covalent server's Python ``major.minor`` (this interpreter's by default).
    """

    def __init__(self, overrides: dict[str, Any] | None = None, python: str = "") -> None:
        self.overrides = {k: v for k, v in (overrides or {}).items() if v not in (None, "")}
        self.python = python or "{}.{}".format(*sys.version_info[:2])
        self.report = Report()
        self.settings: BraketSettings | None = None
        self.identity = ""

    @property
    def checks(self) -> list[Check]:
        return self.report.checks

    def run(self) -> list[Check]:
        self._versions()
        self._covalent_conf()
        settings = self.settings
        if settings is None:
            return self.checks
        if not self._credentials(settings):
            for name in (
                "region",
                "quotas",
                "bucket",
                "job role",
                "permissions",
                "image",
                "device",
            ):
                self.report.add(name, SKIPPED, "needs credentials")
            return self.checks
        if not self.report.preflight(
            "region", preflight.check_region, settings, "Braket is offered here"
        ):
            return self.checks
        job_limits.instance(self.report, settings)
        job_limits.concurrent_jobs(self.report, settings)
        job_limits.orphans(self.report, settings)
        resources.bucket(self.report, settings)
        role_arn = resources.role(self.report, settings)
        if role_arn is not None:
            permissions.job_role(self.report, settings, role_arn)
        permissions.caller(self.report, settings, self.identity)
        resources.image(self.report, settings, self.python)
        self.report.preflight(
            "device", preflight.check_device, settings, f"{settings.quantum_device} is ONLINE"
        )
        return self.checks

    # ------------------------------------------------------------------ local checks
    def _versions(self) -> None:
        try:
            covalent = metadata.version("covalent")
            fastapi = metadata.version("fastapi")
        except metadata.PackageNotFoundError as exc:
            self.report.add(
                "versions",
                PROBLEM,
                f"{exc.name} is not installed",
                "pip install covalent-braket-plugin",
            )
            return
        found = _VERSION.match(fastapi)
        if found and (int(found.group(1)), int(found.group(2))) >= FASTAPI_BREAKS_COVALENT:
            self.report.add(
                "versions",
                PROBLEM,
                f"FastAPI {fastapi} rejects the dispatches of Covalent {covalent} (HTTP 422)",
                "pip install 'fastapi<0.132'",
            )
            return
        self.report.add("versions", OK, f"covalent {covalent}, fastapi {fastapi}")

    def _covalent_conf(self) -> None:
        """covalent.conf has an ``[executors.braket]`` section whose every value validates;
        the checks that follow use it (with ``overrides``), defaults where it is silent."""
        import toml

        path = config_path()
        section: dict[str, Any] = {}
        problems: list[str] = []
        fix = "covalent-braket setup prints a section to paste"
        if not path.exists():
            problems.append(f"{path} does not exist")
        else:
            try:
                loaded = toml.load(path)
            except (toml.TomlDecodeError, OSError) as exc:
                problems.append(f"{path} cannot be read: {exc}")
                loaded = {}
            found = (loaded.get("executors") or {}).get("braket")
            if not isinstance(found, dict):
                problems.append(f"{path} has no [executors.braket] section")
            else:
                section = found
        values: dict[str, Any] = {}
        for name, value in section.items():
            if name not in DEFAULTS:
                problems.append(f"unknown setting {name!r} (a typo?)")
                continue
            if value == "":
                continue  # unset, as covalent.conf writes it
            try:
                check_setting(name, value)
            except InvalidSettingError as exc:
                problems.append(str(exc))
                fix = f"correct {name} in {path}"
                continue
            values[name] = value
        values.update(self.overrides)
        try:
            self.settings = BraketSettings.from_mapping(values).for_job()
        except InvalidSettingError as exc:
            problems.append(str(exc))
            self.settings = None
        if problems:
            self.report.add("covalent.conf", PROBLEM, "; ".join(problems), fix)
        else:
            self.report.add("covalent.conf", OK, f"[executors.braket] in {path} validates")

    def _credentials(self, settings: BraketSettings) -> bool:
        try:
            clients = aws.clients_for(settings)
            identity = aws.call(clients.sts, "get_caller_identity")
        except (aws.AwsError, InvalidSettingError) as exc:
            self.report.add(
                "credentials",
                PROBLEM,
                f"no usable AWS credentials: {exc}",
                "configure credentials (aws configure, AWS_PROFILE, or the credentials and "
                "profile settings)",
            )
            return False
        self.identity = identity["Arn"]
        self.report.add("credentials", OK, f"{identity['Arn']} (account {identity['Account']})")
        return True
