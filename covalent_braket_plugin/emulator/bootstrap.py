"""The emulated job container's entry point: what Amazon's job image runs, in our own words.

Run as ``python -m covalent_braket_plugin.emulator.bootstrap`` in a job's working directory,
it plays two parts, as the real image does:

- the training toolkit around the script: the ``Training Env`` it logs (``"user_entry_point":
  "braket_container.py"``), ``Invoking script with the following command:``, and at the end
  ``Reporting training SUCCESS`` or ``FAILURE``;
- the Braket container script: it downloads ``AMZN_BRAKET_SCRIPT_S3_URI`` into
  ``customer_code/original`` under its own file name, unpacks it by that name (a ``.tar.gz``
  as gzip tar, a ``.zip`` as zip: the format is read from the name, not from
  ``compressionType``) with nothing let out of ``customer_code/extracted``, honours every
  ``requirements.txt`` in the tree (see :func:`check_requirements`: pip's exit status is not
  checked, as the real container does not), imports ``module:function`` (or runs a module as
  ``python -m`` would) and runs it in a child process, with the hyperparameters bound to its
  parameters when they fit.

Setup failures are written to the failure file and end the process with status 0, as the real
container's do; the customer code's exception is appended to it, and the process ends with the
child's status. The service reports the failure file as the job's ``failureReason``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import multiprocessing
import os
import runpy
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

#: What the real image's toolkit is told to run.
CONTAINER_SCRIPT = "braket_container.py"


class _SetupFailed(Exception):
    """A setup step failed; its text is already in the failure file."""


def _failure_file() -> Path:
    return Path(os.environ["BRAKET_EMULATOR_FAILURE_FILE"])


def _log_failure_and_exit(text: str) -> None:
    path = _failure_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
    print(text, flush=True)
    raise _SetupFailed(text)


def _code_setup() -> tuple[str, str, str]:
    """The script's S3 URI, entry point and compression type (``SM_HPS`` as a fallback)."""
    uri = os.environ.get("AMZN_BRAKET_SCRIPT_S3_URI")
    entry_point = os.environ.get("AMZN_BRAKET_SCRIPT_ENTRY_POINT")
    compression = os.environ.get("AMZN_BRAKET_SCRIPT_COMPRESSION_TYPE", "")
    if not uri or not entry_point:
        try:
            hyperparameters = json.loads(os.environ.get("SM_HPS", "{}"))
        except ValueError:
            _log_failure_and_exit("Hyperparameters not specified in env")
        uri = uri or hyperparameters.get("AMZN_BRAKET_SCRIPT_S3_URI")
        entry_point = entry_point or hyperparameters.get("AMZN_BRAKET_SCRIPT_ENTRY_POINT")
        compression = compression or hyperparameters.get("AMZN_BRAKET_SCRIPT_COMPRESSION_TYPE", "")
    if not uri:
        _log_failure_and_exit("No customer script specified")
    if not entry_point:
        _log_failure_and_exit("No customer entry point specified")
    return str(uri), str(entry_point), str(compression or "")


def _download(uri: str, original: Path) -> Path:
    import boto3

    parsed = urlparse(uri)
    local = original / os.path.basename(parsed.path)
    if not local.exists():
        try:
            boto3.client("s3").download_file(parsed.netloc, parsed.path.lstrip("/"), str(local))
        except Exception as exc:
            _log_failure_and_exit(f"Unable to download code.\nException: {exc}")
    return local


def _unpack(local: Path, extracted: Path, compression: str) -> None:
    if compression.strip().lower() in ("gzip", "zip"):
        try:
            try:  # tar members that would land outside (``../``, links out) are refused
                shutil.unpack_archive(str(local), str(extracted), filter="data")
            except TypeError:  # a zip: shutil itself skips members that would land outside
                shutil.unpack_archive(str(local), str(extracted))
        except Exception as exc:
            _log_failure_and_exit(
                f"Got an exception while trying to unpack archive: {local} of type: "
                f"{compression}.\nException: {exc}"
            )
    else:
        shutil.copy(local, extracted)
    if str(extracted) not in sys.path:
        sys.path.append(str(extracted))


def check_requirements(path: Path) -> None:
    """What ``pip install -r path`` would do in the job, said as pip says it, without
    installing anything: the emulator's jobs run in the emulator's environment, which a job
    must not change. A requirement the environment does not satisfy is an error line, and the
    job goes on, as the real container goes on when pip fails."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            print(f"(emulator) pip option not applied: {line}", flush=True)
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            print(f"(emulator) not checked, the emulator installs nothing: {line}", flush=True)
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            print(
                f"Ignoring {requirement.name}: markers '{requirement.marker}' don't match your environment",
                flush=True,
            )
            continue
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            version = None
        if version is not None and requirement.specifier.contains(version, prereleases=True):
            print(f"Requirement already satisfied: {line} ({version})", flush=True)
            continue
        found = f"installed: {version}" if version else "from versions: none"
        print(
            f"ERROR: Could not find a version that satisfies the requirement {line} ({found})\n"
            f"ERROR: No matching distribution found for {line}",
            flush=True,
        )


def _requirements(extracted: Path) -> None:
    print("Checking for Additional Requirements", flush=True)
    for directory, _, files in os.walk(extracted):
        if "requirements.txt" in files:
            check_requirements(Path(directory) / "requirements.txt")
    print("Additional Requirements Check Finished", flush=True)


def _customer_code(entry_point: str) -> Callable[..., Any]:
    if ":" in entry_point:
        module_name, _, function_name = entry_point.partition(":")
        return getattr(importlib.import_module(module_name), function_name)
    return lambda: runpy.run_module(entry_point, run_name="__main__")


def _bound_hyperparameters(function: Callable[..., Any]) -> dict[str, Any]:
    path = os.environ.get("AMZN_BRAKET_HP_FILE")
    if not path or not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        hyperparameters = json.load(handle)
    try:
        inspect.signature(function).bind(**hyperparameters)
    except TypeError:
        return {}
    annotations = inspect.getfullargspec(function).annotations
    return {name: annotations.get(name, str)(value) for name, value in hyperparameters.items()}


def _wrapped(function: Callable[..., Any], extracted: str, **kwargs: Any) -> None:
    """The child process: run the customer code; its exception goes to the failure file."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler
    os.chdir(extracted)
    try:
        function(**kwargs)
    except Exception as exc:
        with _failure_file().open("a", encoding="utf-8") as handle:
            handle.write(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        raise


def _container() -> int:
    """The Braket container script; the customer code's exit status."""
    import boto3

    print("Boto3 Version: ", boto3.__version__, flush=True)
    print("Beginning Setup", flush=True)
    code = Path(os.environ["BRAKET_EMULATOR_CODE_DIR"])
    original, extracted = code / "original", code / "extracted"
    for path in (original, extracted):
        path.mkdir(parents=True, exist_ok=True)
    uri, entry_point, compression = _code_setup()
    local = _download(uri, original)
    _unpack(local, extracted, compression)
    _requirements(extracted)
    function = _customer_code(entry_point)
    kwargs = _bound_hyperparameters(function)
    print("Running Code As Process", flush=True)
    process = multiprocessing.get_context("fork").Process(
        target=_wrapped, args=(function, str(extracted)), kwargs=kwargs
    )
    process.start()

    def stop(signum: int, frame: Any) -> None:  # a stop: the child goes first, and is reaped
        process.terminate()
        process.join(timeout=2)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    process.join()
    print("Code Run Finished", flush=True)
    return process.exitcode or 0


def main() -> None:
    """The toolkit's part around the container script."""
    environment = {
        "user_entry_point": CONTAINER_SCRIPT,
        "job_name": os.environ.get("AMZN_BRAKET_JOB_NAME", ""),
        "hyperparameters": _hyperparameters(),
        "module_dir": os.environ.get("BRAKET_EMULATOR_CODE_DIR", ""),
    }
    print("Training Env:\n\n" + json.dumps(environment, indent=4, sort_keys=True) + "\n")
    print(f"Invoking script with the following command:\n\n{sys.executable} {CONTAINER_SCRIPT}\n")
    sys.stdout.flush()
    try:
        status = _container()
    except _SetupFailed:
        status = 0  # as the real container: the failure file says what went wrong
    except Exception as exc:  # an import error of the entry module, say: not caught there
        import traceback

        traceback.print_exc()
        with _failure_file().open("a", encoding="utf-8") as handle:
            handle.write(
                f'ExecuteUserScriptError:\nExitCode 1\nErrorMessage "{type(exc).__name__}: {exc}"'
            )
        status = 1
    if status == 0 and not _failure_file().exists():
        print("Reporting training SUCCESS", flush=True)
    else:
        print("Reporting training FAILURE", flush=True)
    sys.exit(status)


def _hyperparameters() -> dict[str, Any]:
    path = os.environ.get("AMZN_BRAKET_HP_FILE")
    if not path or not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


if __name__ == "__main__":
    main()
