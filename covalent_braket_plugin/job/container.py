"""The job container's entry script: what Amazon's ``braket_container.py`` does, in our words.

One implementation of the container's contract, for two hosts:

- a "bring your own container" (BYOC) image, whose ``SAGEMAKER_PROGRAM`` runs
  ``python -m covalent_braket_plugin.job.container`` (see the repository's ``Dockerfile``):
  there it works on the real ``/opt`` tree and installs every ``requirements.txt`` with pip;
- Braket-in-a-box, whose :mod:`covalent_braket_plugin.emulator.runtime.bootstrap` calls :func:`run`
  with the paths of a job's working directory and a requirements check that installs nothing.

What :func:`run` does, in the container's order and with its log lines: it makes
``/opt/braket`` a link to ``/opt/ml``; downloads ``AMZN_BRAKET_SCRIPT_S3_URI`` into
``customer_code/original`` under its own file name; unpacks it by that name (a ``.tar.gz`` as
gzip tar, a ``.zip`` as zip: the format is read from the name, not from ``compressionType``)
with nothing let out of ``customer_code/extracted``; honours every ``requirements.txt`` in the
tree (pip's exit status is not checked, as the real container does not); imports
``module:function`` in this process (or runs a plain module as ``python -m`` would) and runs it
in a child process, with the hyperparameters bound to its parameters when they fit.

Exit status, as the real container's: a setup failure is written to the failure file and the
status is 0 (the service reads the failure file); the customer code's exception is appended to
the failure file, and the status is the child's. An exception :func:`run` does not catch (an
import error of the entry module, say) is left to the caller, as the real script leaves it to
the training toolkit around it.

Only the standard library and boto3 are used: the module runs in any image with Python and
boto3, and the job runner's archive needs nothing else of the package. Command-line arguments
are ignored: the training toolkit passes the hyperparameters as ``--name value`` arguments.
"""

from __future__ import annotations

import errno
import importlib
import inspect
import json
import multiprocessing
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

#: The name the training toolkit runs the container script under (``SAGEMAKER_PROGRAM``).
CONTAINER_SCRIPT = "braket_container.py"
#: The container's tree: ``/opt/braket`` is made a link to ``/opt/ml``.
OPT_ML = "opt/ml"
OPT_BRAKET = "opt/braket"
#: Where the customer code goes (``original``: as downloaded; ``extracted``: unpacked).
CODE_DIR = f"{OPT_BRAKET}/code/customer_code"
#: What the service reports as the job's ``failureReason``.
FAILURE_FILE = f"{OPT_ML}/output/failure"
#: Where :func:`main` finds the container's tree (``/`` unless set): a test's scratch directory.
ROOT_VARIABLE = "COVALENT_BRAKET_CONTAINER_ROOT"


class SetupFailed(Exception):
    """A setup step failed; its text is already in the failure file."""


def record_failure(failure_file: Path, text: str) -> None:
    """Append ``text`` to the failure file (made with its directory if need be)."""
    failure_file.parent.mkdir(parents=True, exist_ok=True)
    with failure_file.open("a", encoding="utf-8") as handle:
        handle.write(text)


def _log_failure_and_exit(failure_file: Path, text: str) -> None:
    record_failure(failure_file, text)
    print(text, flush=True)
    raise SetupFailed(text)


def hyperparameters() -> dict[str, Any]:
    """The job's hyperparameters (``AMZN_BRAKET_HP_FILE``); empty if there is no file."""
    path = os.environ.get("AMZN_BRAKET_HP_FILE")
    if not path or not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def install_requirements(path: Path, code: Path) -> None:
    """``python -m pip install -r path`` into this image, run in the unpacked ``code`` (where
    a local path in the file starts), as the real container runs it: pip's exit status is not
    checked, so a requirement pip cannot meet does not stop the job."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-r", str(path)], cwd=code)


def _symlink(link: Path, target: Path, failure_file: Path) -> None:
    try:
        os.symlink(target, link)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            print(f"Got unexpected exception: {exc}", flush=True)
            _log_failure_and_exit(failure_file, f"Symlink failure.\n Exception: {exc}")


def _code_setup(failure_file: Path) -> tuple[str, str, str]:
    """The script's S3 URI, entry point and compression type (``SM_HPS`` as a fallback)."""
    uri = os.environ.get("AMZN_BRAKET_SCRIPT_S3_URI")
    entry_point = os.environ.get("AMZN_BRAKET_SCRIPT_ENTRY_POINT")
    compression = os.environ.get("AMZN_BRAKET_SCRIPT_COMPRESSION_TYPE", "")
    if not uri or not entry_point:
        try:
            given = json.loads(os.environ.get("SM_HPS", "{}"))
        except ValueError:
            _log_failure_and_exit(failure_file, "Hyperparameters not specified in env")
        uri = uri or given.get("AMZN_BRAKET_SCRIPT_S3_URI")
        entry_point = entry_point or given.get("AMZN_BRAKET_SCRIPT_ENTRY_POINT")
        compression = compression or given.get("AMZN_BRAKET_SCRIPT_COMPRESSION_TYPE", "")
    if not uri:
        _log_failure_and_exit(failure_file, "No customer script specified")
    if not entry_point:
        _log_failure_and_exit(failure_file, "No customer entry point specified")
    return str(uri), str(entry_point), str(compression or "")


def _download(uri: str, original: Path, failure_file: Path) -> Path:
    import boto3

    parsed = urlparse(uri)
    local = original / os.path.basename(parsed.path)
    if not local.exists():
        try:
            boto3.client("s3").download_file(parsed.netloc, parsed.path.lstrip("/"), str(local))
        except Exception as exc:
            _log_failure_and_exit(failure_file, f"Unable to download code.\nException: {exc}")
    return local


def _unpack_archive(local: Path, extracted: Path) -> None:
    try:  # tar members that would land outside (``../``, links out) are refused
        shutil.unpack_archive(str(local), str(extracted), filter="data")
    except TypeError:
        # A zip (shutil itself skips members that would land outside), or a Python without
        # extraction filters, where only a zip may be unpacked.
        if not hasattr(tarfile, "data_filter") and not local.name.lower().endswith(".zip"):
            raise RuntimeError(
                "this Python cannot unpack a tar archive safely (no extraction filters); "
                "use Python 3.10.12, 3.11.4, 3.12 or later"
            ) from None
        shutil.unpack_archive(str(local), str(extracted))


def _unpack(local: Path, extracted: Path, compression: str, failure_file: Path) -> None:
    if compression.strip().lower() in ("gzip", "zip"):
        try:
            _unpack_archive(local, extracted)
        except Exception as exc:
            _log_failure_and_exit(
                failure_file,
                f"Got an exception while trying to unpack archive: {local} of type: "
                f"{compression}.\nException: {exc}",
            )
    else:
        shutil.copy(local, extracted)
    if str(extracted) not in sys.path:
        sys.path.append(str(extracted))


def _requirements(
    extracted: Path, requirements: Callable[[Path, Path], None], failure: Path
) -> None:
    print("Checking for Additional Requirements", flush=True)
    try:
        for directory, _, files in os.walk(extracted):
            if "requirements.txt" in files:
                requirements(Path(directory) / "requirements.txt", extracted)
    except Exception as exc:
        _log_failure_and_exit(failure, f"Unable to install requirements.\nException: {exc}")
    print("Additional Requirements Check Finished", flush=True)


def _customer_code(entry_point: str) -> Callable[..., Any]:
    if ":" in entry_point:
        module_name, _, function_name = entry_point.partition(":")
        return getattr(importlib.import_module(module_name), function_name)
    return lambda: runpy.run_module(entry_point, run_name="__main__")


def _bound_hyperparameters(function: Callable[..., Any]) -> dict[str, Any]:
    given = hyperparameters()
    if not given:
        return {}
    try:
        inspect.signature(function).bind(**given)
    except TypeError:
        return {}
    annotations = inspect.getfullargspec(function).annotations
    return {name: annotations.get(name, str)(value) for name, value in given.items()}


def _wrapped(function: Callable[..., Any], extracted: str, failure: str, **kwargs: Any) -> None:
    """The child process: run the customer code; its exception goes to the failure file."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler
    os.chdir(extracted)
    try:
        function(**kwargs)
    except Exception as exc:
        record_failure(
            Path(failure), f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        )
        raise


def run(
    code_dir: Path,
    failure_file: Path,
    requirements: Callable[[Path, Path], None] = install_requirements,
    link: tuple[Path, Path] | None = None,
) -> int:
    """Run the job's script as the container does; return the container's exit status.

    Args:
        code_dir: The ``customer_code`` directory (``/opt/braket/code/customer_code``).
        failure_file: The failure file (``/opt/ml/output/failure``).
        requirements: What is done with each ``requirements.txt`` found in the unpacked code,
            called with the file and the unpacked code's directory: :func:`install_requirements`
            in a real image.
        link: ``(link, target)``: the link made first (``/opt/braket`` to ``/opt/ml``), or None.
    """
    import boto3

    print("Boto3 Version: ", boto3.__version__, flush=True)
    print("Beginning Setup", flush=True)
    try:
        if link is not None:
            _symlink(*link, failure_file)
        original, extracted = code_dir / "original", code_dir / "extracted"
        for path in (original, extracted):
            path.mkdir(parents=True, exist_ok=True)
        uri, entry_point, compression = _code_setup(failure_file)
        local = _download(uri, original, failure_file)
        _unpack(local, extracted, compression, failure_file)
        _requirements(extracted, requirements, failure_file)
    except SetupFailed:
        return 0  # as the real container: the failure file says what went wrong
    function = _customer_code(entry_point)
    kwargs = _bound_hyperparameters(function)
    print("Running Code As Process", flush=True)
    process = multiprocessing.get_context("fork").Process(
        target=_wrapped, args=(function, str(extracted), str(failure_file)), kwargs=kwargs
    )
    process.start()
    process.join()  # no signal handler, as Amazon's: a SIGTERM here is not passed on
    print("Code Run Finished", flush=True)
    return process.exitcode or 0


def main() -> None:
    """The BYOC image's entry: :func:`run` on the container's tree (under
    ``$COVALENT_BRAKET_CONTAINER_ROOT``, ``/`` unless set), requirements installed with pip."""
    root = Path(os.environ.get(ROOT_VARIABLE) or "/")
    status = run(
        root / CODE_DIR,
        root / FAILURE_FILE,
        requirements=install_requirements,
        link=(root / OPT_BRAKET, root / OPT_ML),
    )
    sys.exit(status)


if __name__ == "__main__":
    main()
