"""The job runner: the entry point that runs inside a Braket hybrid job.

This module is uploaded in the job's script archive as ``covalent_braket_runner.py`` (script
mode, entry point ``covalent_braket_runner:main``, see :mod:`covalent_braket_plugin.job`) and
is imported by the Braket container's bootstrap. It depends only on the standard library, boto3 and
cloudpickle (plus covalent, which the pickled electron itself needs), so it works on any image
built from the Braket base jobs image with covalent installed.

What it does:

1. reads the task location and the client's Python version from the job's hyperparameters;
2. refuses to run when the job's Python minor version differs from the client's;
3. downloads ``input.pkl`` (``(function, args, kwargs)``) from its own task prefix;
4. calls the function with stdout and stderr captured (and still echoed to the job log);
5. uploads ``result.pkl`` with the return value, or the exception and its traceback;
6. raises on failure, so the bootstrap records a ``failureReason`` and the job ends FAILED.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tempfile
import traceback
from typing import Any
from urllib.parse import urlparse

INPUT_KEY = "input.pkl"
RESULT_KEY = "result.pkl"
HP_TASK_URI = "covalent_task_s3_uri"
HP_PYTHON_VERSION = "covalent_python_version"
HP_INPUT_SHA256 = "covalent_input_sha256"
HP_KMS_KEY_ID = "covalent_kms_key_id"
RESULT_FORMAT = 1


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


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    """Run the electron stored under the task prefix named in the hyperparameters."""
    import boto3
    import cloudpickle
    from botocore.config import Config

    hyperparameters = _hyperparameters()
    task_uri = hyperparameters.get(HP_TASK_URI)
    if not task_uri:
        raise RunnerSetupError(f"hyperparameter {HP_TASK_URI} is missing")
    bucket, prefix = _split_s3_uri(task_uri)
    _check_python(hyperparameters.get(HP_PYTHON_VERSION))

    s3 = boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 10}))
    kms_key = hyperparameters.get(HP_KMS_KEY_ID)
    encryption = (
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key}
        if kms_key
        else {"ServerSideEncryption": "AES256"}
    )
    job_name = os.environ.get("AMZN_BRAKET_JOB_NAME", "")
    with tempfile.TemporaryDirectory(prefix="covalent-braket-") as scratch:
        bundled = os.path.join(os.path.dirname(os.path.abspath(__file__)), INPUT_KEY)
        if os.path.exists(bundled):  # a small input travels inside the job's script archive
            input_path = bundled
        else:
            input_path = os.path.join(scratch, INPUT_KEY)
            try:
                s3.download_file(bucket, f"{prefix}/{INPUT_KEY}", input_path)
            except Exception as exc:
                raise RunnerSetupError(
                    f"cannot download s3://{bucket}/{prefix}/{INPUT_KEY}: {exc}"
                ) from exc
        expected = hyperparameters.get(HP_INPUT_SHA256)
        if not expected or _sha256(input_path) != expected:
            raise RunnerSetupError(
                f"s3://{bucket}/{prefix}/{INPUT_KEY} does not match the digest the executor recorded; "
                "refusing to unpickle it"
            )
        with open(input_path, "rb") as handle:
            function, args, kwargs = cloudpickle.load(handle)

        outcome = _run_captured(function, args, kwargs)
        outcome["format"] = RESULT_FORMAT
        outcome["job_name"] = job_name
        outcome["task_uri"] = task_uri

        result_path = os.path.join(scratch, RESULT_KEY)
        with open(result_path, "wb") as handle:
            cloudpickle.dump(outcome, handle)
        s3.upload_file(
            result_path,
            bucket,
            f"{prefix}/{RESULT_KEY}",
            ExtraArgs=encryption,
        )

    if not outcome["ok"]:
        raise CovalentTaskError(
            f"the electron raised {outcome['exception_type']}: {outcome['exception']}"
        )


if __name__ == "__main__":
    main()
