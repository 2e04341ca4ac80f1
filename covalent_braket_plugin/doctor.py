"""``covalent-braket doctor``: check a user's whole setup, one line per check.

Each check says ok, problem (with how to fix it), or unknown (the caller may not look), and
the command exits non-zero on any problem. The AWS checks are the executor's own pre-flight
checks (:mod:`covalent_braket_plugin.preflight`, :mod:`covalent_braket_plugin.images`), made
one at a time, plus what only a person setting up needs to know: the bucket's encryption and
public access, the role's trust and permissions and the caller's (IAM
``SimulatePrincipalPolicy``, where the caller may call it), the image's Python, covalent.conf,
and the installed covalent and FastAPI.
"""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from . import aws, images, policies, preflight
from .config import DEFAULTS, BraketSettings, InvalidSettingError, check_setting
from .location import S3_PREFIX
from .service import LOG_GROUP

OK, PROBLEM, UNKNOWN, SKIPPED = "ok", "problem", "unknown", "skipped"
#: FastAPI from this version on rejects Covalent 0.240's dispatch request (HTTP 422).
FASTAPI_BREAKS_COVALENT = (0, 132)
_VERSION = re.compile(r"(\d+)\.(\d+)")
_TAG_PYTHON = re.compile(r"(?:^|[-_.])py(\d)\.?(\d{1,2})(?:$|[-_.])")


@dataclass
class Check:
    """One check's verdict."""

    name: str
    status: str
    detail: str
    fix: str = ""


def config_path() -> Path:
    """covalent.conf, where Covalent looks for it."""
    directory = (
        os.environ.get("COVALENT_CONFIG_DIR")
        or os.environ.get("XDG_CONFIG_DIR")
        or os.path.join(os.path.expanduser("~"), ".config", "covalent")
    )
    return Path(directory) / "covalent.conf"


class Doctor:
    """The checks, in order; a failed prerequisite skips what depends on it.

    Args:
        overrides: Settings that take precedence over covalent.conf (``--region``, ...).
        python: The Covalent server's Python ``major.minor`` (this interpreter's by default).
    """

    def __init__(self, overrides: dict[str, Any] | None = None, python: str = "") -> None:
        self.overrides = {k: v for k, v in (overrides or {}).items() if v not in (None, "")}
        self.python = python or "{}.{}".format(*sys.version_info[:2])
        self.checks: list[Check] = []
        self.settings: BraketSettings | None = None
        self.identity = ""

    def _add(self, name: str, status: str, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, status, detail, fix))

    def run(self) -> list[Check]:
        self._versions()
        self._covalent_conf()
        if self.settings is None:
            return self.checks
        if not self._credentials():
            for name in ("region", "bucket", "job role", "permissions", "image", "device"):
                self._add(name, SKIPPED, "needs credentials")
            return self.checks
        if not self._preflight("region", preflight.check_region, "Braket is offered here"):
            return self.checks
        self._bucket()
        self._role()
        self._permissions()
        self._image()
        self._preflight("device", preflight.check_device, self._device_detail())
        return self.checks

    # ------------------------------------------------------------------ local checks
    def _versions(self) -> None:
        try:
            covalent = metadata.version("covalent")
            fastapi = metadata.version("fastapi")
        except metadata.PackageNotFoundError as exc:
            self._add(
                "versions",
                PROBLEM,
                f"{exc.name} is not installed",
                "pip install covalent-braket-plugin",
            )
            return
        found = _VERSION.match(fastapi)
        if found and (int(found.group(1)), int(found.group(2))) >= FASTAPI_BREAKS_COVALENT:
            self._add(
                "versions",
                PROBLEM,
                f"FastAPI {fastapi} rejects the dispatches of Covalent {covalent} (HTTP 422)",
                "pip install 'fastapi<0.132'",
            )
            return
        self._add("versions", OK, f"covalent {covalent}, fastapi {fastapi}")

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
            self._add("covalent.conf", PROBLEM, "; ".join(problems), fix)
        else:
            self._add("covalent.conf", OK, f"[executors.braket] in {path} validates")

    # ------------------------------------------------------------------ AWS checks
    def _credentials(self) -> bool:
        assert self.settings is not None
        try:
            clients = aws.clients_for(self.settings)
            identity = aws.call(clients.sts, "get_caller_identity")
        except (aws.AwsError, InvalidSettingError) as exc:
            self._add(
                "credentials",
                PROBLEM,
                f"no usable AWS credentials: {exc}",
                "configure credentials (aws configure, AWS_PROFILE, or the credentials and "
                "profile settings)",
            )
            return False
        self.identity = identity["Arn"]
        self._add("credentials", OK, f"{identity['Arn']} (account {identity['Account']})")
        return True

    def _preflight(self, name: str, check: Callable[[BraketSettings], None], detail: str) -> bool:
        """One of the executor's own pre-flight checks."""
        assert self.settings is not None
        try:
            check(self.settings)
        except InvalidSettingError as exc:
            self._add(name, PROBLEM, str(exc), f"change {exc.setting}, or create what it names")
            return False
        except aws.AwsError as exc:
            self._add(name, UNKNOWN, f"could not check: {exc}")
            return False
        self._add(name, OK, detail)
        return True

    def _device_detail(self) -> str:
        assert self.settings is not None
        return f"{self.settings.quantum_device} is ONLINE"

    def _bucket(self) -> None:
        assert self.settings is not None
        bucket = self.settings.s3_bucket_name
        if not self._preflight(
            "bucket", preflight.check_bucket, f"{bucket} is yours, in {self._region}"
        ):
            return
        s3 = aws.clients_for(self.settings).s3
        owned = aws.bucket_owner(self.settings)
        try:
            found = aws.call_unless(
                frozenset({"ServerSideEncryptionConfigurationNotFoundError"}),
                s3,
                "get_bucket_encryption",
                Bucket=bucket,
                **owned,
            )
        except aws.AwsError as exc:
            self._add("bucket encryption", UNKNOWN, f"could not check: {exc}")
        else:
            rules = (found or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
            default = rules[0].get("ApplyServerSideEncryptionByDefault", {}) if rules else {}
            if not default:
                self._add(
                    "bucket encryption",
                    PROBLEM,
                    f"{bucket} has no default encryption",
                    "covalent-braket setup sets it",
                )
            else:
                self._add("bucket encryption", OK, f"default {default.get('SSEAlgorithm')}")
        self._public(s3, bucket, owned)

    def _public(self, s3: Any, bucket: str, owned: dict[str, str]) -> None:
        """Not public: Block Public Access on, else no public policy and no public grant."""
        try:
            block = aws.call_unless(
                frozenset({"NoSuchPublicAccessBlockConfiguration"}),
                s3,
                "get_public_access_block",
                Bucket=bucket,
                **owned,
            )
            settings = (block or {}).get("PublicAccessBlockConfiguration", {})
            if settings and all(settings.values()):
                self._add("bucket access", OK, "public access is blocked")
                return
            status = aws.call_unless(
                frozenset({"NoSuchBucketPolicy"}),
                s3,
                "get_bucket_policy_status",
                Bucket=bucket,
                **owned,
            )
            grants = aws.call(s3, "get_bucket_acl", Bucket=bucket, **owned).get("Grants", [])
        except aws.AwsError as exc:
            self._add("bucket access", UNKNOWN, f"could not check: {exc}")
            return
        public_grants = [
            grant["Permission"]
            for grant in grants
            if grant.get("Grantee", {})
            .get("URI", "")
            .endswith(("/AllUsers", "/AuthenticatedUsers"))
        ]
        if (status or {}).get("PolicyStatus", {}).get("IsPublic") or public_grants:
            why = (
                "its bucket policy is public"
                if not public_grants
                else ("its ACL grants " + ", ".join(public_grants) + " to everyone")
            )
            self._add(
                "bucket access",
                PROBLEM,
                f"{bucket} is public: {why}; anyone could read or replace task pickles",
                "block public access (covalent-braket setup does) and remove the public grant",
            )
            return
        self._add(
            "bucket access",
            OK,
            "not public (but public access is not blocked; covalent-braket setup blocks it)",
        )

    @property
    def _region(self) -> str:
        assert self.settings is not None
        return aws.clients_for(self.settings).region

    def _role(self) -> None:
        assert self.settings is not None
        if not self._preflight(
            "job role",
            preflight.check_role,
            f"{self.settings.braket_job_execution_role_name} exists",
        ):
            return
        role_arn = aws.role_arn(self.settings)
        iam = aws.clients_for(self.settings).iam
        name = role_arn.rsplit("/", 1)[-1]
        try:
            role = aws.call(iam, "get_role", RoleName=name)["Role"]
        except aws.AwsError as exc:
            self._add("job role trust", UNKNOWN, f"could not read {role_arn}: {exc}")
            return
        document = role["AssumeRolePolicyDocument"]
        if isinstance(document, str):
            document = json.loads(urllib.parse.unquote(document))
        if not policies.trusts_braket(document):
            self._add(
                "job role trust",
                PROBLEM,
                f"{role_arn} does not let {policies.BRAKET_PRINCIPAL} assume it "
                "(unconditionally): every job would fail to start",
                f"add a trust statement for {policies.BRAKET_PRINCIPAL} (covalent-braket setup "
                "makes a role with it)",
            )
        else:
            self._add("job role trust", OK, f"{policies.BRAKET_PRINCIPAL} may assume it")
        self._simulate(
            "job role permissions", role_arn, self._job_needs(role_arn), "the job role's"
        )

    def _variables(self, role_arn: str) -> policies.Variables:
        assert self.settings is not None
        account, partition = aws.caller_account(self.settings)
        key = self.settings.kms_key_id
        if key and not key.startswith("arn:"):
            key = f"arn:{partition}:kms:{self._region}:{account}:key/{key}"
        return policies.Variables(
            partition=partition,
            region=self._region,
            account=account,
            bucket=self.settings.s3_bucket_name,
            job_role_arn=role_arn,
            repository_arn=policies.repository_arn(
                images.job_image(self.settings, self._region), partition
            ),
            kms_key_arn=key,
        )

    def _job_needs(self, role_arn: str) -> list[tuple[list[str], str, dict[str, str]]]:
        """What a job does: (actions, resource, context) as IAM evaluates them."""
        v = self._variables(role_arn)
        task = f"arn:{v.partition}:s3:::{v.bucket}/{S3_PREFIX}/task/input.pkl"
        group = f"arn:{v.partition}:logs:{v.region}:{v.account}:log-group:{LOG_GROUP}"
        needs = [
            (["s3:GetObject", "s3:PutObject"], task, {}),
            (["braket:CreateQuantumTask", "braket:GetQuantumTask"], "*", {}),
            (["logs:CreateLogStream", "logs:PutLogEvents"], f"{group}:log-stream:x", {}),
            (
                ["ecr:BatchGetImage"],
                v.repository_arn,
                {},
            ),
        ]
        return needs + self._kms_needs(v)

    def _kms_needs(self, v: policies.Variables) -> list[tuple[list[str], str, dict[str, str]]]:
        if not v.kms_key_arn:
            return []
        via = {"kms:ViaService": f"s3.{v.region}.amazonaws.com"}
        return [(["kms:GenerateDataKey", "kms:Decrypt"], v.kms_key_arn, via)]

    def _permissions(self) -> None:
        """The caller may do what the executor does."""
        assert self.settings is not None
        try:
            role_arn = aws.role_arn(self.settings)
        except (aws.AwsError, InvalidSettingError):
            role_arn = self.settings.braket_job_execution_role_name
        v = self._variables(role_arn)
        job = f"arn:{v.partition}:braket:{v.region}:{v.account}:job/covalent-x"
        task = f"arn:{v.partition}:s3:::{v.bucket}/{S3_PREFIX}/task/input.pkl"
        needs = [
            (["braket:CreateJob"], self.settings.quantum_device, {}),
            (["braket:GetJob", "braket:CancelJob"], job, {}),
            (["braket:SearchJobs", "braket:GetDevice"], "*", {}),
            (["iam:PassRole"], role_arn, {"iam:PassedToService": policies.BRAKET_PRINCIPAL}),
            (["s3:PutObject", "s3:GetObject", "s3:DeleteObject"], task, {}),
            (["s3:ListBucket"], f"arn:{v.partition}:s3:::{v.bucket}", {}),
        ]
        principal = _principal_arn(self.identity)
        self._simulate("permissions", principal, needs + self._kms_needs(v), "your")

    def _simulate(
        self,
        name: str,
        principal: str,
        needs: list[tuple[list[str], str, dict[str, str]]],
        whose: str,
    ) -> None:
        assert self.settings is not None
        iam = aws.clients_for(self.settings).iam
        denied = []
        try:
            for actions, resource, context in needs:
                entries = [
                    {"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "string"}
                    for k, v in context.items()
                ]
                answer = aws.call(
                    iam,
                    "simulate_principal_policy",
                    PolicySourceArn=principal,
                    ActionNames=actions,
                    ResourceArns=[resource],
                    **({"ContextEntries": entries} if entries else {}),
                )
                denied += [
                    f"{result['EvalActionName']} on {resource}"
                    for result in answer.get("EvaluationResults", [])
                    if result.get("EvalDecision") != "allowed"
                ]
        except aws.AwsError as exc:
            self._add(name, UNKNOWN, f"could not simulate {principal}'s policies ({exc.code})")
            return
        if denied:
            self._add(
                name,
                PROBLEM,
                f"{whose} policies do not allow: " + "; ".join(denied),
                "grant the policies of covalent_braket_plugin/policies (covalent-braket setup "
                "puts the job role's on the role it makes)",
            )
        else:
            self._add(
                name,
                OK,
                f"{whose} policies allow what {'a job' if 'role' in name else 'the executor'} does",
            )

    def _image(self) -> None:
        assert self.settings is not None
        uri = images.job_image(self.settings, self._region)
        if not self._preflight("image", preflight.check_image, f"{uri} exists"):
            return
        try:
            images.check_python(self.settings, uri, self.python)
        except InvalidSettingError as exc:
            self._add("image python", PROBLEM, str(exc), "see the two ways out above")
            return
        except aws.AwsError as exc:
            self._add("image python", UNKNOWN, f"could not read its tags: {exc}")
            return
        image_python = (
            images.managed_python(self.settings, uri)
            if images.is_managed(uri)
            else _tag_python(uri)
        )
        if image_python and image_python != self.python:
            self._add(
                "image python",
                PROBLEM,
                f"{uri} is tagged for Python {image_python}, the server runs {self.python}",
                f"build the image with --build-arg PYTHON_VERSION={self.python}",
            )
        elif image_python:
            self._add("image python", OK, f"Python {image_python}, as the server's")
        else:
            self._add(
                "image python",
                UNKNOWN,
                "its tag names no Python; the job checks it when it starts",
            )


def _tag_python(uri: str) -> str:
    """The Python an image's tag names (``py3.12-abc``, ``1.0-cpu-py312-ubuntu``), if any."""
    tag = uri.rsplit("/", 1)[-1].partition(":")[2]
    found = _TAG_PYTHON.search(tag)
    return f"{found.group(1)}.{found.group(2)}" if found else ""


def _principal_arn(identity: str) -> str:
    """The IAM principal of a caller: an assumed role's session is its role."""
    parts = identity.split(":")
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        role = parts[5].split("/")[1]
        return f"arn:{parts[1]}:iam::{parts[4]}:role/{role}"
    return identity


def render(checks: list[Check]) -> str:
    """One line per check (and a fix under each problem)."""
    width = max(len(check.name) for check in checks)
    lines = []
    for check in checks:
        lines.append(f"{check.status:<8} {check.name:<{width}}  {check.detail}")
        if check.fix and check.status == PROBLEM:
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
