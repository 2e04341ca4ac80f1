"""Typed settings of the Braket executor: defaults, merging with covalent.conf, validation."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import stat
from collections.abc import Callable, Mapping
from typing import Any

from .service import (
    CONCURRENT_JOBS_QUOTA,
    HYPERPARAMETERS_MAX,
    MAX_RUNTIME_SECONDS,
    MAX_TAGS_PER_RESOURCE,
    SV1_ARN,
    arn_region,
    instance_types,
)

#: The most electrons in one packed job: each is one of the job's hyperparameters, and the
#: runner's own take a dozen.
MAX_PACKED = HYPERPARAMETERS_MAX - 36

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


def _number(setting: str, value: Any, allowed: str, fits: Callable[[float], bool]) -> float:
    """``value`` as a number that ``fits``, or an error naming the setting (NaN never fits)."""
    if isinstance(value, bool):
        raise InvalidSettingError(setting, value, allowed)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidSettingError(setting, value, allowed) from None
    if not fits(number):
        raise InvalidSettingError(setting, value, allowed)
    return number


def _float(setting: str, value: Any, low_exclusive: float, unit: str) -> float:
    allowed = f"a number of {unit} greater than {low_exclusive:g}"
    return _number(setting, value, allowed, lambda n: low_exclusive < n < float("inf"))


def _seconds(setting: str, value: Any, low: float, high: float) -> float:
    allowed = f"a number of seconds from {low:g} to {high:g}"
    return _number(setting, value, allowed, lambda n: low <= n <= high)


def _str(setting: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidSettingError(setting, value, "a string")
    return value.strip()


#: What a bucket's name must start with for Braket to write quantum task results to it.
BRAKET_BUCKET_PREFIX = "amazon-braket-"


def check_bucket_name(value: Any) -> str:
    name = _str("s3_bucket_name", value)
    if not _BUCKET_RE.match(name) or ".." in name or _IP_RE.match(name):
        raise InvalidSettingError(
            "s3_bucket_name",
            value,
            "an S3 bucket name: 3-63 characters of lowercase letters, digits, '.' and '-', "
            "starting and ending with a letter or digit (no underscores, not an IP address)",
        )
    if not name.startswith(BRAKET_BUCKET_PREFIX):
        raise InvalidSettingError(
            "s3_bucket_name",
            value,
            f"a bucket whose name starts with {BRAKET_BUCKET_PREFIX}: the quantum tasks the "
            "job creates write their results to it (the job's output bucket), and Amazon "
            "Braket writes them through its service-linked role, whose policy "
            "(AmazonBraketServiceRolePolicy) allows only buckets named amazon-braket-* in your "
            "account (Braket developer guide, 'Service-linked role for Amazon Braket'). For "
            "example amazon-braket-covalent-<region>-<account>, which covalent-braket setup "
            "creates",
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
        return uri  # Amazon's managed base jobs image of the job's Region
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


#: ``cache_dir``'s default before it was private to the user, as many covalent.conf files hold
#: it (Covalent writes the plugin's defaults there): taken as unset.
SHARED_CACHE_DIR = "/tmp/covalent"


def default_cache_dir() -> str:
    """The per-user cache directory: ``$XDG_CACHE_HOME/covalent-braket``, else
    ``~/.cache/covalent-braket``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "covalent-braket")


def private_cache_dir(value: str) -> str:
    """The directory ``cache_dir`` names (empty, or the old shared default: the per-user
    one), made with mode 0700 if it is not there, and checked to be this user's and
    writable by no one else: spill files of task inputs and results live there.

    Raises:
        InvalidSettingError: the directory cannot be made, is someone else's, or group or
            others may write to it.
    """
    path = os.path.expanduser(value) if value and value != SHARED_CACHE_DIR else ""
    path = path or default_cache_dir()
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        found = os.stat(path)
    except OSError as exc:
        raise InvalidSettingError(
            "cache_dir", value, f"a directory this user can make: {exc}"
        ) from exc
    if not stat.S_ISDIR(found.st_mode):
        problem = "is not a directory"
    elif found.st_uid != os.getuid():
        problem = f"is owned by uid {found.st_uid}, not by this user (uid {os.getuid()})"
    elif found.st_mode & 0o022:
        problem = f"is writable by group or others (mode {oct(stat.S_IMODE(found.st_mode))})"
    else:
        return path
    raise InvalidSettingError(
        "cache_dir",
        value,
        f"a directory of this user's that no one else may write to, but {path} {problem}. "
        f"Run chmod 700 {path} if it is yours, or set cache_dir to another directory (empty: "
        f"{default_cache_dir()}, made with mode 0700)",
    )


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


_RESERVATION_RE = re.compile(r"^arn:aws[a-z-]*:braket:[a-z0-9-]+:\d{12}:reservation/[\w-]{1,128}$")
#: Tag characters besides Unicode letters, numbers and separators.
_TAG_PUNCTUATION = frozenset("_.:/=+-@")
#: Tags the executor puts on every job itself, naming the attempt it runs; a ``tags`` setting
#: may not use their prefix.
OWN_TAG_PREFIX = "covalent:"
DISPATCH_TAG = f"{OWN_TAG_PREFIX}dispatch_id"
NODE_TAG = f"{OWN_TAG_PREFIX}node_id"
ATTEMPT_TAG = f"{OWN_TAG_PREFIX}attempt"
#: The electron's name (its function's), for ``covalent-braket jobs``.
NAME_TAG = f"{OWN_TAG_PREFIX}node_name"
OWN_TAGS = (DISPATCH_TAG, NODE_TAG, ATTEMPT_TAG, NAME_TAG)
#: Braket's most tags on a resource, less the executor's own.
MAX_TAGS = MAX_TAGS_PER_RESOURCE - len(OWN_TAGS)


def check_reservation(value: Any) -> str:
    arn = _str("reservation_arn", value)
    if arn and not _RESERVATION_RE.match(arn):
        raise InvalidSettingError(
            "reservation_arn",
            value,
            "empty, or a Braket Direct reservation ARN "
            "arn:aws:braket:REGION:ACCOUNT:reservation/ID",
        )
    return arn


def tag_character_ok(ch: str) -> bool:
    """One of AWS's tag characters: ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]`` (letters, separators
    such as spaces, numbers, and ``_.:/=+-@``; not tabs or newlines, which are control
    characters)."""
    import unicodedata

    return ch in _TAG_PUNCTUATION or unicodedata.category(ch)[0] in "LZN"


def _tag_text_ok(text: str) -> bool:
    return all(tag_character_ok(ch) for ch in text)


def check_tags(value: Any) -> tuple[tuple[str, str], ...]:
    """A mapping of tag keys to values, as AWS takes them: keys of 1-128 and values of 0-256
    Unicode letters, numbers, separators (spaces) and ``_.:/=+-@``, no key starting ``aws:``
    (AWS's) or ``covalent:`` (the executor's), in any case, and at most :data:`MAX_TAGS` tags
    (Braket's most on a job, less the executor's own). The error names the first tag that is
    not allowed."""
    allowed = (
        "a mapping of tag keys to values: keys of 1-128 and values of 0-256 Unicode letters, "
        f"numbers, spaces and _.:/=+-@, keys not starting with aws: or {OWN_TAG_PREFIX}, at most "
        f"{MAX_TAGS} tags (Braket's {MAX_TAGS_PER_RESOURCE} less the executor's {len(OWN_TAGS)})"
    )
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, (list, tuple)) and all(
        isinstance(item, (list, tuple)) and len(item) == 2 for item in value
    ):
        items = [tuple(item) for item in value]
    else:
        raise InvalidSettingError("tags", value, allowed)

    def refuse(problem: str) -> InvalidSettingError:
        return InvalidSettingError("tags", value, f"{problem}; allowed: {allowed}")

    if len(items) > MAX_TAGS:
        raise refuse(f"{len(items)} tags")
    seen: set[str] = set()
    for key, text in items:
        if not isinstance(key, str) or not isinstance(text, str):
            raise refuse(f"tag {key!r}: keys and values must be strings")
        if key in seen:
            raise refuse(f"tag {key!r} is given twice")
        seen.add(key)
        if not 1 <= len(key) <= 128:
            raise refuse(f"tag key {key!r} has {len(key)} characters")
        if len(text) > 256:
            raise refuse(f"tag {key!r} has a value of {len(text)} characters")
        if not _tag_text_ok(key) or not _tag_text_ok(text):
            raise refuse(f"tag {key!r}={text!r} has a character AWS does not take in tags")
        if key.lower().startswith(("aws:", OWN_TAG_PREFIX)):
            raise refuse(f"tag key {key!r} uses a reserved prefix")
    return tuple(sorted((str(k), str(v)) for k, v in items))


def check_requirements(value: Any) -> str | tuple[str, ...]:
    """The job's own packages, as ``@hybrid_job(dependencies=...)`` takes them: a list of
    requirement lines, or the path of a requirements file ("" for none)."""
    allowed = "a list of requirements (pip's syntax), or the path of a requirements file"
    if isinstance(value, str):
        path = value.strip()
        if path and not os.path.isfile(os.path.expanduser(path)):
            raise InvalidSettingError("requirements", value, allowed + " that exists")
        return path
    if isinstance(value, (list, tuple)) and all(
        isinstance(line, str) and line.strip() and "\n" not in line for line in value
    ):
        return tuple(line.strip() for line in value)
    raise InvalidSettingError("requirements", value, allowed)


def check_include_modules(value: Any) -> tuple[str, ...] | bool:
    """Modules to ship with the electron besides the user's own (a name or a list of names;
    ``True`` or empty: only the automatic rule), or ``False``: ship nothing by this rule."""
    if isinstance(value, bool):
        return value
    return _module_names("include_modules", value, "or false to ship none of your modules")


def check_exclude_modules(value: Any) -> tuple[str, ...]:
    """Modules never shipped by value (installed in the image instead)."""
    return _module_names("exclude_modules", value, "")


def _module_names(setting: str, value: Any, more: str) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    pattern = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
    if isinstance(names, (list, tuple)) and all(
        isinstance(name, str) and (name == "" or re.fullmatch(pattern, name)) for name in names
    ):
        return tuple(name for name in names if name)
    allowed = "a module or package name (mypkg.sub), or a list of them" + (
        f", {more}" if more else ""
    )
    raise InvalidSettingError(setting, value, allowed)


_CHANNEL = re.compile(r"[A-Za-z0-9.\-_]{1,64}")
_S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?")


def check_input_data(value: Any) -> tuple[tuple[str, str], ...]:
    """Files for the job's input channels: a source, or a mapping of channel names to
    sources; each an ``s3://bucket/prefix`` URI or a local file or directory that exists.
    As (channel, source) pairs, a local source made absolute; one source is channel
    ``input``."""
    allowed = (
        "a local file or directory, or an s3://bucket/prefix URI, or a mapping of channel "
        "names (1-64 letters, digits, '.', '-', '_') to them"
    )
    if value in ("", None, (), {}):
        return ()
    if isinstance(value, (str, os.PathLike)):
        pairs = [("input", os.fspath(value))]
    elif isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)) and all(
        isinstance(item, (list, tuple)) and len(item) == 2 for item in value
    ):
        pairs = [(item[0], item[1]) for item in value]
    else:
        raise InvalidSettingError("input_data", value, allowed)
    found = []
    for name, source in pairs:
        source = os.fspath(source) if isinstance(source, os.PathLike) else source
        if not isinstance(name, str) or not _CHANNEL.fullmatch(name) or not isinstance(source, str):
            raise InvalidSettingError("input_data", value, allowed)
        if source.startswith("s3://"):
            if not _S3_URI.fullmatch(source):
                raise InvalidSettingError("input_data", source, allowed)
            found.append((name, source))
            continue
        local = os.path.realpath(os.path.expanduser(source))
        if not (os.path.isfile(local) or os.path.isdir(local)):
            raise InvalidSettingError(
                "input_data", source, allowed + f" (channel {name}: no such file or directory)"
            )
        found.append((name, local))
    return tuple(sorted(found))


def check_checkpoint_from(value: Any) -> str:
    """The id of the dispatch whose checkpoints an electron starts from ("" for none)."""
    text = value.strip() if isinstance(value, str) else None
    if text is None or (text and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", text)):
        raise InvalidSettingError(
            "checkpoint_from",
            value,
            "empty, or the id of an earlier dispatch of this workflow (a Covalent dispatch id)",
        )
    return text


def check_bool(setting: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise InvalidSettingError(setting, value, "true or false")


def _setting(default: Any, check: Any, written: Any = None) -> Any:
    """A field of :class:`BraketSettings`: its documented default and its check (and, for a
    mapping, the default as covalent.conf writes it: a table)."""
    metadata = {"check": check, "written": default if written is None else written}
    return dataclasses.field(default=default, metadata=metadata)


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
    quantum_device: str = _setting(SV1_ARN, check_device)
    classical_device: str = _setting("ml.m5.large", check_classical_device)
    storage: int = _setting(30, lambda v: _int("storage", v, 1, None, "of GB"))
    time_limit: int = _setting(
        300, lambda v: _int("time_limit", v, 1, MAX_RUNTIME_SECONDS, "of seconds")
    )
    poll_freq: float = _setting(30, lambda v: _float("poll_freq", v, 0, "seconds"))
    #: Empty: the per-user :func:`default_cache_dir` (see :func:`private_cache_dir`).
    cache_dir: str = _setting("", lambda v: check_path("cache_dir", v))
    # Beyond the original plugin's settings:
    kms_key_id: str = _setting("", check_kms_key)
    cleanup: bool = _setting(True, lambda v: check_bool("cleanup", v))
    freeze_heap: bool = _setting(True, lambda v: check_bool("freeze_heap", v))
    pacing: bool = _setting(True, lambda v: check_bool("pacing", v))
    requirements: str | tuple[str, ...] = _setting("", check_requirements)
    reservation_arn: str = _setting("", check_reservation)
    tags: tuple[tuple[str, str], ...] = _setting((), check_tags, written={})
    #: Hybrid jobs of the account and Region running at once, when Service Quotas cannot say
    #: (the caller may not read it): Braket's default concurrent-jobs quota.
    max_concurrent_jobs: int = _setting(
        CONCURRENT_JOBS_QUOTA[1], lambda v: _int("max_concurrent_jobs", v, 1, None, "of jobs")
    )
    #: Electrons that wait for a job slot share one job with compatible ones (same image,
    #: device, instance, role, bucket, Region, Python, requirements, reservation and key).
    pack: bool = _setting(True, lambda v: check_bool("pack", v))
    #: The most electrons one packed job runs (each is one of the job's hyperparameters).
    pack_max: int = _setting(
        32, lambda v: _int("pack_max", v, 1, MAX_PACKED, "of electrons in one job")
    )
    #: Members a packed job runs at once; 0 for as many as its instance has cores.
    pack_parallel: int = _setting(
        0, lambda v: _int("pack_parallel", v, 0, 256, "of electrons at once (0: one per core)")
    )
    #: How long a job whose electrons are done waits for compatible ones (they reach it through
    #: the bucket, with no job start); its instance is billed meanwhile. 0: it ends at once.
    warm_seconds: float = _setting(0, lambda v: _seconds("warm_seconds", v, 0, 3600))
    #: Modules shipped by value with each electron besides the user's own (found by the
    #: automatic rule: see :mod:`~covalent_braket_plugin.local_code`); False: none at all.
    include_modules: tuple[str, ...] | bool = _setting((), check_include_modules, written=[])
    #: Modules never shipped by value.
    exclude_modules: tuple[str, ...] = _setting((), check_exclude_modules, written=[])
    #: A dispatch whose electrons' checkpoints an electron starts from, when it has none yet
    #: (a redispatch of a failed run, as ``copy_checkpoint_from_job`` does).
    checkpoint_from: str = _setting("", check_checkpoint_from)
    #: Files the electron reads, mounted as the job's input channels (see
    #: :mod:`~covalent_braket_plugin.input_data`).
    input_data: tuple[tuple[str, str], ...] = _setting((), check_input_data, written={})

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> BraketSettings:
        """Validate every setting in ``values`` (missing ones take their defaults).

        The same values give the same (immutable) settings: a validated set is reused, so the
        check costs the event loop next to nothing per task. File-system checks (the
        credentials file) are repeated, as the file may change.
        """
        merged = tuple((name, _hashable(values.get(name, DEFAULTS[name]))) for name in DEFAULTS)
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
    def device_region(self) -> str:
        """The Region in ``quantum_device``'s ARN; empty for the managed simulators, which
        every Braket Region serves."""
        return arn_region(self.quantum_device)

    def in_region(self, region: str) -> BraketSettings:
        """These settings with ``region`` for the job's Region (unchanged if empty)."""
        if not region or region == self.region:
            return self
        return dataclasses.replace(self, region=region)

    def for_job(self) -> BraketSettings:
        """These settings in the Region the job runs in: its device's, or the configured one
        for a simulator. A QPU's jobs, quantum tasks and queue are in its own Region."""
        return self.in_region(self.device_region)

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
DEFAULTS: dict[str, Any] = {field.name: field.metadata["written"] for field in _FIELDS}
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


def _hashable(value: Any) -> Any:
    """A mapping or list setting as a tuple, so that validated settings can be reused."""
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    return value


@functools.lru_cache(maxsize=256)
def _validated(merged: tuple[tuple[str, Any], ...]) -> BraketSettings:
    return BraketSettings(**{name: check_setting(name, value) for name, value in merged})
