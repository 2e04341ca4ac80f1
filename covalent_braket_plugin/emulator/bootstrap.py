"""The emulated job container's entry point (the counterpart of Braket's ``braket_container.py``).

Run as ``python -m covalent_braket_plugin.emulator.bootstrap`` inside a job's working
directory. It downloads ``AMZN_BRAKET_SCRIPT_S3_URI``, unpacks it (GZIP), installs a
``requirements.txt`` if the archive has one, imports ``module:function`` from
``AMZN_BRAKET_SCRIPT_ENTRY_POINT`` (binding hyperparameters to the function's parameters when
they fit) and calls it. A failure's text goes to the failure file, which the service reports
as the job's ``failureReason``; the process then exits non-zero.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import runpy
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


def _fail(text: str, code: int = 1) -> None:
    path = Path(os.environ["BRAKET_EMULATOR_FAILURE_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
    print(text, flush=True)
    sys.exit(code)


def _download_code(code_dir: Path) -> Path:
    import boto3

    uri = os.environ.get("AMZN_BRAKET_SCRIPT_S3_URI", "")
    parsed = urlparse(uri)
    original = code_dir / "original"
    original.mkdir(parents=True, exist_ok=True)
    local = original / os.path.basename(parsed.path)
    try:
        boto3.client("s3").download_file(parsed.netloc, parsed.path.lstrip("/"), str(local))
    except Exception as exc:
        _fail(f"Unable to download code.\nException: {exc}")
    return local


def _unpack(local: Path, code_dir: Path) -> Path:
    extracted = code_dir / "extracted"
    extracted.mkdir(parents=True, exist_ok=True)
    compression = (os.environ.get("AMZN_BRAKET_SCRIPT_COMPRESSION_TYPE") or "").strip().lower()
    if compression in ("gzip", "zip"):
        try:
            shutil.unpack_archive(
                str(local), str(extracted), format="gztar" if compression == "gzip" else "zip"
            )
        except Exception as exc:
            _fail(
                f"Got an exception while trying to unpack archive: {local.name} of type: {compression}.\nException: {exc}"
            )
    else:
        shutil.copy(local, extracted)
    return extracted


def _install_requirements(extracted: Path) -> None:
    for requirements in extracted.rglob("requirements.txt"):
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-r", str(requirements)], cwd=extracted
        )
        if done.returncode != 0:
            _fail(f"Unable to install requirements from {requirements.name}")


def _entry(entry_point: str) -> Callable[..., Any]:
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


def main() -> None:
    code_dir = Path(os.environ["BRAKET_EMULATOR_CODE_DIR"])
    entry_point = os.environ.get("AMZN_BRAKET_SCRIPT_ENTRY_POINT")
    if not os.environ.get("AMZN_BRAKET_SCRIPT_S3_URI"):
        _fail("No customer script specified")
    if not entry_point:
        _fail("No customer entry point specified")
    extracted = _unpack(_download_code(code_dir), code_dir)
    _install_requirements(extracted)
    sys.path.insert(0, str(extracted))
    print("Running Code As Process", flush=True)
    try:
        function = _entry(entry_point)
        function(**_bound_hyperparameters(function))
    except Exception as exc:
        import traceback

        traceback.print_exc()
        _fail(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    print("Code Run Finished", flush=True)


if __name__ == "__main__":
    main()
