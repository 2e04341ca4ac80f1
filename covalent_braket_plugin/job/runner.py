"""The job runner: the entry point that runs inside a Braket hybrid job.

This module is uploaded in the job's script archive as ``covalent_braket_runner.py`` (script
mode, entry point ``covalent_braket_runner:main``, see :mod:`covalent_braket_plugin.job`) and
is imported by the Braket container's bootstrap. It depends only on the standard library, boto3 and
cloudpickle; the electron arrives unwrapped from Covalent's wrapper (a
:class:`~covalent_braket_plugin.job.calls.ElectronCall`, pickled by value), so it runs on
Amazon's managed image as it is, and on any image built from it.

What it does:

1. reads the task location and the client's Python version from the job's hyperparameters;
2. refuses to run when the job's Python minor version differs from the client's, or when a
   package the electron needs is missing or at another version than the one pinned (the
   container installs the archive's ``requirements.txt`` but ignores pip's exit status);
3. downloads ``input.pkl`` (``(function, args, kwargs)``) from its own task prefix;
4. calls the function with stdout and stderr captured (and still echoed to the job log),
   and, when the Braket SDK is there, inside a ``braket.tracking.Tracker``, whose counts of
   the quantum tasks (per device: tasks, shots, billed simulator time) go with the result;
5. uploads ``result.pkl`` with the return value, or the exception and its traceback, after a
   header that authenticates it (:func:`result_header`: the task, the job and an HMAC-SHA256
   with the attempt's key, which only the executor and this job know), so that the executor
   unpickles nothing another job may have put there;
6. raises on failure, so the bootstrap records a ``failureReason`` and the job ends FAILED.

A *packed* job runs several electrons ("members"): its hyperparameters name them
(:data:`HP_MEMBER_PREFIX` ``0``, ``1``, ...). After the same checks of the image,
:func:`main` hands over to the member runner (``covalent_braket_members.py`` beside this file,
:mod:`covalent_braket_plugin.job.members` in the package), which runs each member in a process
of its own and uploads each member's result, authenticated with its :func:`member_key`; the
job itself then ends COMPLETED whatever the members came to. A *warm* packed job
(:data:`HP_WARM_SECONDS`) takes more members as they arrive (:data:`MORE_PREFIX`, each vouched
for by its :func:`more_mac`) and ends only once none arrived for its idle window.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import io
import json
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Iterable, Iterator
from typing import IO, Any
from urllib.parse import urlparse

INPUT_KEY = "input.pkl"
RESULT_KEY = "result.pkl"
HP_TASK_URI = "covalent_task_s3_uri"
HP_PYTHON_VERSION = "covalent_python_version"
HP_INPUT_SHA256 = "covalent_input_sha256"
HP_KMS_KEY_ID = "covalent_kms_key_id"
HP_BUCKET_OWNER = "covalent_bucket_owner"
HP_REQUIRED = "covalent_required"
#: The attempt's key (hex), which authenticates its result.
HP_RESULT_KEY = "covalent_result_key"
#: Hyperparameters ``covalent_member_0``, ``covalent_member_1``, ...: the members of a packed
#: job, each a JSON object ``{"uri": ..., "sha256": ..., "time_limit": ...}``.
HP_MEMBER_PREFIX = "covalent_member_"
#: How many members of a packed job run at once (decimal; "0" or none: one per CPU).
HP_PACK_PARALLEL = "covalent_pack_parallel"
#: The idle window (seconds, decimal, may be fractional) of a *warm* packed job: once its
#: members are done it takes more (see :data:`MORE_PREFIX`) until none arrived for so long.
#: Missing or "0": off, the job ends once its members are done.
HP_WARM_SECONDS = "covalent_warm_seconds"
#: Where a warm job's new members arrive: objects ``<member 0's prefix>/more/<name>.json``,
#: each taken once, in the order of their keys as they are listed (one may land after a later
#: one), each ``{"member": <entry>, "mac": more_mac(key, entry)}`` with ``<entry>`` a member's
#: JSON as in a :data:`HP_MEMBER_PREFIX` hyperparameter.
MORE_PREFIX = "more"
#: How a warm job closes (see :data:`MORE_PREFIX`): it writes ``<member 0's prefix>/closed.json``
#: ``{"closing": true}``, then lists ``more/`` once more and runs what it finds, then writes it
#: again with ``"taken"``: the keys of every ``more/`` object it ran. A sender that finds no
#: ``closed.json`` after writing its ``more/`` object knows the job will run it; one that
#: finds ``"taken"`` without its key knows the job never will.
CLOSED_KEY = "closed.json"
#: What a new member's MAC is computed for (see :func:`more_mac`).
MORE_LABEL = "covalent-braket more"
#: Where a packed job's members are cancelled, each alone: an object
#: ``<member 0's prefix>/cancels/<cancel_name(member's prefix)>`` cancels that member. The job
#: lists this one prefix to look for them all (usually empty).
CANCELS_PREFIX = "cancels"
#: The object ``<member 0's prefix>/done.json`` a packed job keeps up to date as its members
#: get their results: ``{"done": [<member's s3:// prefix>, ...]}``, the members whose
#: ``result.pkl`` is there, so that the server reads one small object per poll, not a listing.
DONE_KEY = "done.json"
#: An attempt's prefix is ``<electron's prefix>/attempt-<n>``; the electron's checkpoints,
#: shared by its attempts, are ``<electron's prefix>/checkpoints`` (see :func:`checkpoints_of`).
ATTEMPT_SEGMENT = "/attempt-"
CHECKPOINTS_KEY = "checkpoints"
#: What a member's key is derived for (see :func:`member_key`).
MEMBER_LABEL = "covalent-braket member"
#: The member runner's module beside this one in the job (in the package: ``job.members``).
MEMBERS_MODULE = "covalent_braket_members"
#: The member runner's gauge of the instance's cores, beside it (in the package: ``job.cores``).
CORES_MODULE = "covalent_braket_cores"
REQUIREMENTS_FILE = "requirements.txt"
#: The ``requirements`` setting's lines, in a folder of their own: the container runs pip once
#: per ``requirements.txt``, so these need no hashes when the top one pins by hash.
USER_REQUIREMENTS_FILE = "user-requirements/requirements.txt"
RESULT_FORMAT = 2
#: The first line of ``result.pkl``; the second is the header's JSON, then the pickle.
RESULT_MAGIC = f"covalent-braket result {RESULT_FORMAT}\n".encode()
#: The most a result header's JSON line may take.
MAX_RESULT_HEADER = 16 * 1024
_CHUNK = 1 << 20


def checkpoints_of(attempt_prefix: str) -> str:
    """The checkpoints' prefix of the electron whose attempt has ``attempt_prefix``."""
    return f"{attempt_prefix.rsplit(ATTEMPT_SEGMENT, 1)[0]}/{CHECKPOINTS_KEY}"


class CovalentTaskError(RuntimeError):
    """The electron raised; its traceback is in the result object and in the job log."""


class RunnerSetupError(RuntimeError):
    """The job cannot run the electron (bad inputs, Python mismatch, missing object)."""


class _Tee(io.TextIOBase):
    """A text stream that keeps a copy of everything written and forwards it to another."""

    def __init__(self, forward: io.TextIOBase) -> None:
        self._forward = forward
        self._buffer = io.StringIO()

    def write(self, text: str) -> int:
        self._buffer.write(text)
        self._forward.write(text)
        return len(text)

    def flush(self) -> None:
        self._forward.flush()

    def getvalue(self) -> str:
        return self._buffer.getvalue()


def _hyperparameters() -> dict[str, str]:
    path = os.environ.get("AMZN_BRAKET_HP_FILE")
    if not path or not os.path.exists(path):
        raise RunnerSetupError("AMZN_BRAKET_HP_FILE is not set or does not exist")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _split_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise RunnerSetupError(f"{HP_TASK_URI} must be an s3:// URI, got {uri!r}")
    return parsed.netloc, parsed.path.strip("/")


def _check_python(expected: str | None) -> None:
    actual = f"{sys.version_info.major}.{sys.version_info.minor}"
    if expected and expected != actual:
        raise RunnerSetupError(
            f"Python version mismatch: the electron was pickled with Python {expected} but this "
            f"job image runs Python {actual}; use an image whose Python matches the client's"
        )


def _installed(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _requirement(line: str) -> tuple[str, str] | None:
    """``(name, specifier)`` of one ``requirements.txt`` line; None for what is not a
    package requirement (comments, options, URLs, local paths)."""
    line = re.split(r"\s(?:#|-)", line, maxsplit=1)[0].strip()  # a comment, --hash options
    if not line or line.startswith(("#", "-")) or "://" in line or line.startswith((".", "/")):
        return None
    line = line.split(";", 1)[0].strip()  # environment markers are pip's business
    match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)", line)
    if not match:
        return None
    return match.group(1), match.group(3).strip()


def _satisfies(version: str, specifier: str) -> bool | None:
    """Whether ``version`` meets ``specifier``; None when it cannot be told here."""
    if not specifier:
        return True
    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
    except ImportError:  # without packaging only an exact pin can be checked
        if specifier.startswith("==") and "," not in specifier and "*" not in specifier:
            return version == specifier[2:].strip()
        return None
    try:
        return SpecifierSet(specifier).contains(version, prereleases=True)
    except InvalidSpecifier:
        return None


def _check_requirements(pins: str | None, requirements: str) -> None:
    """Refuse to unpickle when a package the job needs is missing or at the wrong version.

    ``pins`` are the executor's (``"covalent==X cloudpickle==Y"``: the versions the pickle
    was written with); ``requirements`` is the text of the archive's ``requirements.txt``.
    """
    wanted = [item for item in (pins or "").split() if item]
    wanted += requirements.splitlines()
    problems = []
    for line in wanted:
        parsed = _requirement(line)
        if parsed is None:
            continue
        name, specifier = parsed
        found = _installed(name)
        if found is None:
            problems.append(f"{name} (wanted {specifier or 'any version'}, found none installed)")
        elif _satisfies(found, specifier) is False:
            problems.append(f"{name} (wanted {specifier}, found {found})")
    if problems:
        raise RunnerSetupError(
            "the job's image lacks what the electron needs: "
            + "; ".join(problems)
            + ". The job's requirements.txt did not install them (see the pip lines in the "
            "job's log); fix the requirements setting, or use an image that has them"
        )


def _run_captured(function: Any, args: Any, kwargs: Any) -> dict[str, Any]:
    out, err = _Tee(sys.stdout), _Tee(sys.stderr)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        value = function(*args, **kwargs)
        outcome: dict[str, Any] = {"ok": True, "result": value}
    except BaseException as exc:  # the electron's failure is data for the client
        outcome = {
            "ok": False,
            "exception_type": type(exc).__name__,
            "exception": str(exc),
            "traceback": traceback.format_exc(),
        }
        traceback.print_exc()
    finally:
        sys.stdout, sys.stderr = saved
    outcome["stdout"] = out.getvalue()
    outcome["stderr"] = err.getvalue()
    return outcome


def _start_tracker() -> Any:
    """A started ``braket.tracking.Tracker``, or None when the SDK is not in the job (or its
    tracker cannot start): tracking never stops the electron."""
    try:
        from braket.tracking import Tracker

        return Tracker().start()
    except Exception:
        return None


def _milliseconds(span: Any) -> int:
    return int(span.total_seconds() * 1000) if span is not None else 0


def _tracked_tasks(tracker: Any) -> dict[str, dict[str, Any]] | None:
    """The tracker's quantum tasks per device: tasks by state, shots, execution and billed
    time of simulations (ms), and what a QPU bills (tasks and shots neither failed,
    cancelled nor in a reservation); None if it cannot tell."""
    if tracker is None:
        return None
    try:
        tracker.stop()
        counted: dict[str, dict[str, Any]] = {}
        for device, figures in tracker.quantum_tasks_statistics().items():
            counted[str(device)] = {
                "tasks": {str(k): int(v) for k, v in (figures.get("tasks") or {}).items()},
                "shots": int(figures.get("shots") or 0),
                "execution_ms": _milliseconds(figures.get("execution_duration")),
                "billed_execution_ms": _milliseconds(figures.get("billed_execution_duration")),
            }
        per_task = getattr(tracker, "_resources", None)  # what the Tracker prices QPUs by
        if isinstance(per_task, dict):
            for entry in counted.values():
                entry["billable_tasks"] = entry["billable_shots"] = 0
            for details in per_task.values():
                entry = counted.get(str(details.get("device")))
                billed = details.get("status") not in ("FAILED", "CANCELLED") and not details.get(
                    "has_reservation_arn"
                )
                if entry is not None and billed:
                    entry["billable_tasks"] += 1
                    entry["billable_shots"] += int(details.get("shots") or 0)
        return counted
    except Exception:
        return None


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def member_key(pack_key: bytes, uri: str) -> bytes:
    """The key that authenticates one member's result in a packed job.

    Args:
        pack_key: the packed job's attempt key (its hyperparameter ``covalent_result_key``).
        uri: the member's ``s3://`` task prefix.
    """
    return hmac.new(pack_key, json.dumps([MEMBER_LABEL, uri]).encode(), hashlib.sha256).digest()


def cancel_name(uri: str) -> str:
    """The name, under the job's ``cancels/`` (see :data:`CANCELS_PREFIX`), of the object that
    cancels the member whose ``s3://`` task prefix is ``uri``."""
    return hashlib.sha256(uri.encode()).hexdigest()[:40]


def more_mac(pack_key: bytes, entry: str) -> str:
    """The MAC (HMAC-SHA256, hex) that vouches for a new member of a warm job.

    Args:
        pack_key: the packed job's attempt key (its hyperparameter ``covalent_result_key``).
        entry: the member's JSON string, as in a :data:`HP_MEMBER_PREFIX` hyperparameter.
    """
    return hmac.new(pack_key, json.dumps([MORE_LABEL, entry]).encode(), hashlib.sha256).hexdigest()


def _members_module() -> Any:
    """The member runner: the module beside this one in the job, ``job.members`` in the
    package. It is imported by name, and only when a packed job starts: a job of one electron
    does not load it, and the arrow between the two modules is the member runner's import of
    this one."""
    if __package__:
        return importlib.import_module(f"{__package__}.members")
    return importlib.import_module(MEMBERS_MODULE)


def _run_pack(hyperparameters: dict[str, str]) -> None:
    """Run a packed job: check the image as for one electron, then run every member.

    Args:
        hyperparameters: the job's hyperparameters (with :data:`HP_MEMBER_PREFIX` ``0``).

    Raises:
        RunnerSetupError: the job cannot run its members at all.
    """
    key = _result_key(hyperparameters)
    _check_python(hyperparameters.get(HP_PYTHON_VERSION))
    here = os.path.dirname(os.path.abspath(__file__))
    _check_requirements(hyperparameters.get(HP_REQUIRED), _listed_requirements(here))
    _members_module().run_pack(hyperparameters, key)


def main() -> None:
    """Run the electron stored under the task prefix named in the hyperparameters (or, in a
    packed job, every member the hyperparameters name)."""
    import boto3
    import cloudpickle
    from botocore.config import Config

    hyperparameters = _hyperparameters()
    if f"{HP_MEMBER_PREFIX}0" in hyperparameters:
        _run_pack(hyperparameters)
        return
    task_uri, bucket, prefix = _task_location(hyperparameters)
    key = _result_key(hyperparameters)
    _check_python(hyperparameters.get(HP_PYTHON_VERSION))
    here = os.path.dirname(os.path.abspath(__file__))
    _check_requirements(hyperparameters.get(HP_REQUIRED), _listed_requirements(here))

    s3 = boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 10}))
    owner = hyperparameters.get(HP_BUCKET_OWNER)  # S3 refuses the bucket of another account
    owned = {"ExpectedBucketOwner": owner} if owner else {}
    job_name = os.environ.get("AMZN_BRAKET_JOB_NAME", "")
    with tempfile.TemporaryDirectory(prefix="covalent-braket-") as scratch:
        input_path = _input_file(s3, bucket, prefix, owned, os.path.join(here, INPUT_KEY), scratch)
        _check_digest(input_path, hyperparameters.get(HP_INPUT_SHA256), bucket, prefix)
        with open(input_path, "rb") as handle:
            function, args, kwargs = cloudpickle.load(handle)

        outcome = _run_tracked(function, args, kwargs)
        outcome["format"] = RESULT_FORMAT
        outcome["job_name"] = job_name
        outcome["task_uri"] = task_uri
        extra = {**_encryption(hyperparameters.get(HP_KMS_KEY_ID)), **owned}
        result_path = _write_result(outcome, scratch, key)
        s3.upload_file(result_path, bucket, f"{prefix}/{RESULT_KEY}", ExtraArgs=extra)

    if not outcome["ok"]:
        raise CovalentTaskError(
            f"the electron raised {outcome['exception_type']}: {outcome['exception']}"
        )


def _task_location(hyperparameters: dict[str, str]) -> tuple[str, str, str]:
    """Where the task's objects are.

    Args:
        hyperparameters: the job's hyperparameters.

    Returns:
        The task's ``s3://`` URI, its bucket and its prefix.

    Raises:
        RunnerSetupError: the hyperparameter is missing or not an ``s3://`` URI.
    """
    task_uri = hyperparameters.get(HP_TASK_URI)
    if not task_uri:
        raise RunnerSetupError(f"hyperparameter {HP_TASK_URI} is missing")
    bucket, prefix = _split_s3_uri(task_uri)
    return task_uri, bucket, prefix


def _result_key(hyperparameters: dict[str, str]) -> bytes:
    """The attempt's key, with which the result is authenticated.

    Args:
        hyperparameters: the job's hyperparameters.

    Raises:
        RunnerSetupError: the hyperparameter is missing or not a key.
    """
    try:
        key = bytes.fromhex(hyperparameters.get(HP_RESULT_KEY) or "")
    except ValueError:
        key = b""
    if len(key) != 32:
        raise RunnerSetupError(
            f"hyperparameter {HP_RESULT_KEY} is missing or not a key: the job was not created "
            "by this version of the Braket executor, whose result it could not authenticate"
        )
    return key


def _signed_fields(task_uri: str, job_name: str) -> bytes:
    return json.dumps({"job_name": job_name, "task_uri": task_uri}, sort_keys=True).encode()


def result_mac(key: bytes, task_uri: str, job_name: str, payload: Iterable[Any]) -> str:
    """The MAC (HMAC-SHA256, hex) of a result: its header's task and job, and its payload.

    Args:
        key: the attempt's key.
        task_uri: the task's ``s3://`` URI.
        job_name: the job's name.
        payload: the pickle's bytes, in chunks.
    """
    mac = hmac.new(key, RESULT_MAGIC + _signed_fields(task_uri, job_name) + b"\n", hashlib.sha256)
    for chunk in payload:
        mac.update(chunk)
    return mac.hexdigest()


def result_header(task_uri: str, job_name: str, mac: str) -> bytes:
    """The header before a result's pickle: :data:`RESULT_MAGIC`, then one line of JSON with
    ``task_uri``, ``job_name`` and ``mac`` (no pickle: a reader that unpickles the object as
    it is fails at its first byte). Its length does not depend on the MAC's hex digits."""
    fields = {"job_name": job_name, "mac": mac, "task_uri": task_uri}
    return RESULT_MAGIC + json.dumps(fields, sort_keys=True).encode() + b"\n"


def read_result_header(stream: IO[bytes]) -> dict[str, str]:
    """The header's fields, read off the start of a result; ``stream`` is left at the pickle.

    Raises:
        ValueError: the stream does not start with a well-formed header.
    """
    if stream.readline(len(RESULT_MAGIC)) != RESULT_MAGIC:
        raise ValueError("it does not start with the header the job runner writes")
    line = stream.readline(MAX_RESULT_HEADER)
    if not line.endswith(b"\n"):
        raise ValueError("its header is cut short or too long")
    try:
        fields = json.loads(line)
    except ValueError:
        raise ValueError("its header is not JSON") from None
    names = ("job_name", "mac", "task_uri")
    if not isinstance(fields, dict) or not all(isinstance(fields.get(n), str) for n in names):
        raise ValueError("its header lacks the task, the job or the MAC")
    return {name: fields[name] for name in names}


def chunks(stream: IO[bytes]) -> Iterator[bytes]:
    """What is left of ``stream``, a MiB at a time."""
    return iter(lambda: stream.read(_CHUNK), b"")


def _listed_requirements(here: str) -> str:
    """The text of the archive's ``requirements.txt`` beside this file and of the user's
    (:data:`USER_REQUIREMENTS_FILE`), "" without either.

    Args:
        here: the folder the job's script archive was unpacked in.
    """
    text = ""
    for name in (REQUIREMENTS_FILE, USER_REQUIREMENTS_FILE):
        listed = os.path.join(here, name)
        if os.path.exists(listed):
            with open(listed, encoding="utf-8") as handle:
                text += handle.read() + "\n"
    return text


def _encryption(kms_key: str | None) -> dict[str, str]:
    """The ``ExtraArgs`` that encrypt the result as every object of the task is encrypted.

    Args:
        kms_key: the executor's KMS key id, or None for S3's own keys (SSE-S3).
    """
    if kms_key:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key}
    return {"ServerSideEncryption": "AES256"}


def _input_file(
    s3: Any, bucket: str, prefix: str, owned: dict[str, str], bundled: str, scratch: str
) -> str:
    """The path of ``input.pkl``: inside the job's script archive (a small input travels
    there), or downloaded from the task prefix into ``scratch``.

    Args:
        s3: the S3 client.
        bucket: the task's bucket.
        prefix: the task's prefix.
        owned: ``ExpectedBucketOwner`` when the executor named the bucket's owner.
        bundled: where the archive's copy would be.
        scratch: a folder for the download.

    Raises:
        RunnerSetupError: the input cannot be downloaded.
    """
    if os.path.exists(bundled):
        return bundled
    input_path = os.path.join(scratch, INPUT_KEY)
    try:
        s3.download_file(bucket, f"{prefix}/{INPUT_KEY}", input_path, ExtraArgs=owned)
    except Exception as exc:
        raise RunnerSetupError(
            f"cannot download s3://{bucket}/{prefix}/{INPUT_KEY}: {exc}"
        ) from exc
    return input_path


def _check_digest(input_path: str, expected: str | None, bucket: str, prefix: str) -> None:
    """Refuse to unpickle an input whose SHA-256 is not the one the executor recorded.

    Args:
        input_path: the input's file.
        expected: the digest the executor recorded (hex), or None.
        bucket: the task's bucket (for the message).
        prefix: the task's prefix (for the message).

    Raises:
        RunnerSetupError: no digest was recorded, or the input's differs.
    """
    if not expected or _sha256(input_path) != expected:
        raise RunnerSetupError(
            f"s3://{bucket}/{prefix}/{INPUT_KEY} does not match the digest the executor "
            "recorded; refusing to unpickle it"
        )


def _write_result(outcome: dict[str, Any], scratch: str, key: bytes) -> str:
    """Write the task's ``result.pkl`` into ``scratch``: the header, then the outcome's pickle.

    The pickle is written once, after a header whose MAC is a placeholder; the MAC is then
    computed reading the pickle back a MiB at a time, and written in its place.

    Args:
        outcome: what the electron's run came to (with its ``task_uri`` and ``job_name``).
        scratch: a folder for the file.
        key: the attempt's key.

    Returns:
        The file's path.
    """
    import cloudpickle

    task_uri, job_name = outcome["task_uri"], outcome["job_name"]
    placeholder = result_header(task_uri, job_name, "0" * 64)
    result_path = os.path.join(scratch, RESULT_KEY)
    with open(result_path, "w+b") as handle:
        handle.write(placeholder)
        cloudpickle.dump(outcome, handle)
        handle.seek(len(placeholder))
        mac = result_mac(key, task_uri, job_name, chunks(handle))
        handle.seek(0)
        handle.write(result_header(task_uri, job_name, mac))  # as long as the placeholder
    return result_path


def _run_tracked(function: Any, args: Any, kwargs: Any) -> dict[str, Any]:
    """Call the electron with its output captured, counting its quantum tasks when the
    Braket SDK is in the job.

    Args:
        function: the electron's function.
        args: its positional arguments.
        kwargs: its keyword arguments.

    Returns:
        The outcome (see :func:`_run_captured`), with ``quantum_tasks`` when they were
        counted.
    """
    tracker = _start_tracker()
    outcome = _run_captured(function, args, kwargs)
    counted = _tracked_tasks(tracker)
    if counted is not None:
        outcome["quantum_tasks"] = counted
    return outcome


if __name__ == "__main__":
    main()
