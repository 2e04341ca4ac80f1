"""Typed settings of the Braket executor: defaults, merging with covalent.conf, validation."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Mapping
from typing import Any

from .service import MAX_RUNTIME_SECONDS, instance_types

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}$")
_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/([\w+=,.@/-]+)$")
_DEVICE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:braket:[a-z0-9-]*:\d{0,12}:device/.+$")
_IMAGE_URI_RE = re.compile(
    r"^\d{10,14}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9._/-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$"
)
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class InvalidSettingError(ValueError):
    """A BraketExecutor setting has a value it cannot use.

    Attributes:
        setting: The name of the setting (constructor argument and covalent.conf key).
        value: The value that was given.
        allowed: What the setting accepts.
    """

    def __init__(self, setting: str, value: Any, allowed: str) -> None:
        self.setting = setting
        self.value = value
        self.allowed = allowed
        super().__init__(f"BraketExecutor setting {setting}={value!r} is invalid: {allowed}")


def _int(setting: str, value: Any, low: int, high: int | None, unit: str) -> int:
    allowed = f"an integer {unit} from {low}" + (f" to {high}" if high else " or more")
    if isinstance(value, bool):
        raise InvalidSettingError(setting, value, allowed)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidSettingError(setting, value, allowed) from None
    if number != value and str(number) != str(value).strip():
        raise InvalidSettingError(setting, value, allowed)
    if number < low or (high is not None and number > high):
        raise InvalidSettingError(setting, value, allowed)
    return number


def _float(setting: str, value: Any, low_exclusive: float, unit: str) -> float:
    allowed = f"a number of {unit} greater than {low_exclusive:g}"
    if isinstance(value, bool):
        raise InvalidSettingError(setting, value, allowed)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidSettingError(setting, value, allowed) from None
    if not number > low_exclusive or number != number or number == float("inf"):
        raise InvalidSettingError(setting, value, allowed)
    return number


def _str(setting: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidSettingError(setting, value, "a string")
    return value.strip()


def check_bucket_name(value: Any) -> str:
    name = _str("s3_bucket_name", value)
    if not _BUCKET_RE.match(name) or ".." in name or _IP_RE.match(name):
        raise InvalidSettingError(
            "s3_bucket_name",
            value,
            "an S3 bucket name: 3-63 characters of lowercase letters, digits, '.' and '-', "
            "starting and ending with a letter or digit (no underscores, not an IP address)",
        )
    return name


def check_role(value: Any) -> str:
    role = _str("braket_job_execution_role_name", value)
    if role.startswith("arn:"):
        if not _ROLE_ARN_RE.match(role):
            raise InvalidSettingError(
                "braket_job_execution_role_name",
                value,
                "an IAM role name or a role ARN like arn:aws:iam::123456789012:role/NAME",
            )
    elif not _ROLE_NAME_RE.match(role):
        raise InvalidSettingError(
            "braket_job_execution_role_name",
            value,
            "an IAM role name (1-64 of letters, digits and +=,.@_-) or a role ARN",
        )
    return role


def check_device(value: Any) -> str:
    device = _str("quantum_device", value)
    if not _DEVICE_ARN_RE.match(device):
        raise InvalidSettingError(
            "quantum_device",
            value,
            "a Braket device ARN such as arn:aws:braket:::device/quantum-simulator/amazon/sv1",
        )
    return device


def check_image(value: Any) -> str:
    uri = _str("ecr_image_uri", value)
    if not uri:
        raise InvalidSettingError(
            "ecr_image_uri",
            value,
            "required: the URI of the job image in ECR, "
            "e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/covalent-braket:latest",
        )
    if not _IMAGE_URI_RE.match(uri):
        raise InvalidSettingError(
            "ecr_image_uri",
            value,
            "an ECR image URI ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY:TAG "
            "(or @sha256:DIGEST)",
        )
    return uri


def check_classical_device(value: Any) -> str:
    instance = _str("classical_device", value)
    allowed = instance_types()
    if instance not in allowed:
        raise InvalidSettingError(
            "classical_device", value, "one of the Braket instance types: " + ", ".join(allowed)
        )
    return instance


def check_region(value: Any) -> str:
    region = _str("region", value)
    if region and not _REGION_RE.match(region):
        raise InvalidSettingError(
            "region", value, "an AWS region name such as us-east-1, or empty for the AWS chain"
        )
    return region


def check_path(setting: str, value: Any) -> str:
    return _str(setting, value)


def check_credentials(value: Any) -> str:
    path = _str("credentials", value)
    if path and path != DEFAULTS["credentials"]:
        full = os.path.expanduser(path)
        if not os.path.isfile(full) or not os.access(full, os.R_OK):
            raise InvalidSettingError(
                "credentials", value, "the path of a readable AWS shared credentials file"
            )
    return path


def check_profile(value: Any) -> str:
    profile = _str("profile", value)
    if profile and not re.match(r"^[\w+=,.@:/-]{1,128}$", profile):
        raise InvalidSettingError("profile", value, "an AWS profile name")
    return profile


def check_kms_key(value: Any) -> str:
    key = _str("kms_key_id", value)
    if key and not re.match(
        r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[\w/-]+|alias/[\w/-]+|[0-9a-f-]{36})$",
        key,
    ):
        raise InvalidSettingError(
            "kms_key_id", value, "empty (SSE-S3), or a KMS key id, key ARN, alias/NAME or alias ARN"
        )
    return key


def check_bool(setting: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise InvalidSettingError(setting, value, "true or false")


def _setting(default: Any, check: Any) -> Any:
    """A field of :class:`BraketSettings`: its documented default and its check."""
    return dataclasses.field(default=default, metadata={"check": check})


@dataclasses.dataclass(frozen=True)
class BraketSettings:
    """The executor's settings after merging and validation.

    Each setting is declared here once, with the product documentation's default and the
    check its values go through; :data:`DEFAULTS` and :func:`check_setting` are read off it.
    """

    credentials: str = _setting("~/.aws/credentials", check_credentials)
    braket_job_execution_role_name: str = _setting("CovalentBraketJobsExecutionRole", check_role)
    profile: str = _setting("default", check_profile)
    region: str = _setting("", check_region)
    s3_bucket_name: str = _setting("amazon-braket-covalent-job-resources", check_bucket_name)
    ecr_image_uri: str = _setting("", check_image)
    quantum_device: str = _setting(
        "arn:aws:braket:::device/quantum-simulator/amazon/sv1", check_device
    )
    classical_device: str = _setting("ml.m5.large", check_classical_device)
    storage: int = _setting(30, lambda v: _int("storage", v, 1, None, "of GB"))
    time_limit: int = _setting(
        300, lambda v: _int("time_limit", v, 1, MAX_RUNTIME_SECONDS, "of seconds")
    )
    poll_freq: float = _setting(30, lambda v: _float("poll_freq", v, 0, "seconds"))
    cache_dir: str = _setting("/tmp/covalent", lambda v: check_path("cache_dir", v))
    # Beyond the original plugin's settings:
    kms_key_id: str = _setting("", check_kms_key)
    cleanup: bool = _setting(True, lambda v: check_bool("cleanup", v))
    freeze_heap: bool = _setting(True, lambda v: check_bool("freeze_heap", v))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> BraketSettings:
        """Validate every setting in ``values`` (missing ones take their defaults).

        The same values give the same (immutable) settings: a validated set is reused, so the
        check costs the event loop next to nothing per task. File-system checks (the
        credentials file) are repeated, as the file may change.
        """
        merged = tuple((name, values.get(name, DEFAULTS[name])) for name in DEFAULTS)
        try:
            settings = _validated(merged)
        except TypeError:  # an unhashable value: validate it (and fail) uncached
            settings = cls(**{name: check_setting(name, value) for name, value in merged})
        check_credentials(settings.credentials)
        return settings

    @property
    def credentials_file(self) -> str | None:
        """The shared credentials file to use, or None to let the AWS chain decide.

        The documented default path is left to the chain, so ``AWS_SHARED_CREDENTIALS_FILE``
        and the standard location keep working; any other path is used as given.
        """
        if not self.credentials or self.credentials == DEFAULTS["credentials"]:
            return None
        return os.path.expanduser(self.credentials)

    @property
    def profile_name(self) -> str | None:
        """The profile to use, or None to let ``AWS_PROFILE`` and the chain decide."""
        if not self.profile or self.profile == DEFAULTS["profile"]:
            return None
        return self.profile

    @property
    def role_is_arn(self) -> bool:
        return self.braket_job_execution_role_name.startswith("arn:")

    @property
    def region_name(self) -> str | None:
        return self.region or None

    @property
    def encryption(self) -> dict[str, str]:
        """S3 ``ExtraArgs`` for every object written: SSE-KMS with ``kms_key_id``, else SSE-S3."""
        if self.kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {"ServerSideEncryption": "AES256"}


_FIELDS = dataclasses.fields(BraketSettings)
#: Defaults of every setting, as in the product documentation. They are also merged into
#: ``[executors.braket]`` of covalent.conf by Covalent's plugin loader.
DEFAULTS: dict[str, Any] = {field.name: field.default for field in _FIELDS}
_CHECKS: dict[str, Any] = {field.name: field.metadata["check"] for field in _FIELDS}


def check_setting(name: str, value: Any) -> Any:
    """Validate one setting and return its normalised value.

    Raises:
        InvalidSettingError: naming the setting, the value and what is allowed.
    """
    return _CHECKS[name](value)


def merged_settings(given: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting: the value given (checked at once, so that a bad argument fails in the
    user's code), else covalent.conf's, else the default. A given ``""`` means unset, as in
    covalent.conf; what a task needs is required when it runs."""
    values = read_covalent_config()
    for name, value in given.items():
        if value is None:
            continue
        if value != "":
            check_setting(name, value)
        values[name] = value
    return values


def read_covalent_config() -> dict[str, Any]:
    """Every setting of ``[executors.braket]`` in covalent.conf, the default where absent.

    One look-up of the section, not one per setting: the Covalent server builds an executor
    for each task it runs, on its event loop, and a call of covalent's ``get_config`` costs
    several microseconds (a setting at a time, 0.1 ms of each executor's construction).
    """
    from covalent._shared_files.config import get_config

    try:
        section = get_config("executors.braket")
    except (KeyError, TypeError, AttributeError):
        section = None
    if not isinstance(section, dict):
        section = {}
    values = {}
    for name, default in DEFAULTS.items():
        value = section.get(name)
        values[name] = default if value is None or (value == "" and default != "") else value
    return values


@functools.lru_cache(maxsize=256)
def _validated(merged: tuple[tuple[str, Any], ...]) -> BraketSettings:
    return BraketSettings(**{name: check_setting(name, value) for name, value in merged})
