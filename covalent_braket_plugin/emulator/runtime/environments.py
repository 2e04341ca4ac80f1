"""Image environments: a job image's Python packages, for the jobs that run on that image.

On AWS a job runs in its container image and sees only what the image holds: an electron that
imports a package the image lacks fails. Braket-in-a-box runs jobs as processes on this
machine; an image registered with an environment (the ``image_environments`` setting, image URI
-> spec) runs its jobs in that environment only. A spec is one of:

- ``{"venv": DIR}``: a virtualenv that exists (its ``bin/python``);
- ``{"python": EXE, "requirements": [FILE, ...]}``: a virtualenv built once from a Python and
  requirements files (pip's syntax), cached under the cache directory by what it was built
  from, and rebuilt only when that changes.

Each job gets a thin virtualenv of its own (:func:`job_layer`) on top of the image's: the image's
packages are seen, and what the job's ``requirements.txt`` installs (with ``pip``, for real, as
Amazon's container does at every start) goes into the layer and dies with the job, as it dies
with the container on AWS. The image's environment is never changed by a job.

What this module cannot stand in for: the image's operating system and its non-Python files.
This plugin's own code is put on the job's ``PYTHONPATH`` (:func:`plugin_path`), as a job
image built from the project's Dockerfile has it installed.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Where built environments are kept unless the ``environments_cache_dir`` setting says.
DEFAULT_CACHE_DIR = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "covalent-braket"
    / "image-environments"
)
_READY = ".covalent-braket-ready"


class ImageEnvironmentError(Exception):
    """An image environment that cannot be used or built; the message says why."""


def check_spec(image: str, spec: Any) -> dict[str, Any]:
    """A registered spec, checked (before any job runs on it).

    Raises:
        ValueError: It is not one of the two forms, naming the image and what is allowed.
    """
    if not isinstance(spec, dict) or set(spec) - {"venv", "python", "requirements"}:
        raise ValueError(
            f"image_environments[{image!r}] must be {{'venv': DIR}} or "
            f"{{'python': EXE, 'requirements': [FILE, ...]}}, got {spec!r}"
        )
    if "venv" in spec:
        if set(spec) != {"venv"}:
            raise ValueError(f"image_environments[{image!r}]: 'venv' goes alone, got {spec!r}")
        return {"venv": str(spec["venv"])}
    requirements = spec.get("requirements") or []
    if isinstance(requirements, str):
        requirements = [requirements]
    return {
        "python": str(spec.get("python") or sys.executable),
        "requirements": [str(path) for path in requirements],
    }


def python_of(spec: dict[str, Any], cache_dir: Path) -> Path:
    """The Python of a spec's environment, built first if it is not in the cache.

    Raises:
        ImageEnvironmentError: The venv has no Python, a requirements file is missing, or the
            build failed (pip's last lines in the message).
    """
    if "venv" in spec:
        python = Path(spec["venv"]) / "bin" / "python"
        if not python.exists():
            raise ImageEnvironmentError(f"the image environment {spec['venv']} has no bin/python")
        return python
    where = Path(cache_dir) / _key(spec)
    where.parent.mkdir(parents=True, exist_ok=True)
    with open(str(where) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build, whoever asks first
        if not (where / _READY).exists():
            _build(spec, where)
    return where / "bin" / "python"


def _key(spec: dict[str, Any]) -> str:
    """What an environment is built from: its Python's version and path, the requirements."""
    digest = hashlib.sha256()
    python = spec["python"]
    try:
        version = subprocess.run(
            [python, "-c", "import sys; print(sys.version)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        message = f"the image environment's Python {python} does not run: {exc}"
        raise ImageEnvironmentError(message) from exc
    digest.update(json.dumps([os.path.realpath(python), version]).encode())
    for path in spec["requirements"]:
        try:
            digest.update(Path(path).read_bytes())
        except OSError as exc:
            message = f"the image environment's requirements {path}: {exc}"
            raise ImageEnvironmentError(message) from exc
    return digest.hexdigest()[:20]


def _build(spec: dict[str, Any], where: Path) -> None:
    shutil.rmtree(where, ignore_errors=True)
    steps = [[spec["python"], "-m", "venv", str(where)]]
    if spec["requirements"]:
        files = [arg for path in spec["requirements"] for arg in ("-r", path)]
        uv = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
        python = str(where / "bin" / "python")
        steps.append(
            [uv, "pip", "install", "--python", python, *files]
            if uv
            else [python, "-m", "pip", "install", "--disable-pip-version-check", *files]
        )
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            shutil.rmtree(where, ignore_errors=True)
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            message = f"building the image environment failed ({step[0]}):\n{tail}"
            raise ImageEnvironmentError(message)
    (where / _READY).write_text(json.dumps(spec))


@functools.lru_cache(maxsize=64)
def _layout(image_python: Path) -> tuple[str, str, str, str]:
    """An environment's base interpreter, its two site-packages and its Python ``X.Y``, asked
    of it once (every job on the image would ask the same)."""
    base, purelib, platlib, version = subprocess.run(
        [
            str(image_python),
            "-c",
            "import sys, sysconfig; print(sys._base_executable); "
            "print(sysconfig.get_path('purelib')); print(sysconfig.get_path('platlib')); "
            "print('%d.%d' % sys.version_info[:2])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return os.path.realpath(base), purelib, platlib, version


def job_layer(image_python: Path, root: Path) -> Path:
    """A virtualenv of the job's own in ``root`` that sees the image environment's packages
    (through a ``.pth`` file) and installs into itself; its Python."""
    base, purelib, platlib, version = _layout(image_python)
    site = root / "lib" / f"python{version}" / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    (root / "bin").mkdir(exist_ok=True)
    python = root / "bin" / "python"
    if not python.exists():
        python.symlink_to(base)
    (root / "pyvenv.cfg").write_text(
        f"home = {os.path.dirname(base)}\ninclude-system-site-packages = false\n"
        f"version = {version}\n"
    )
    dirs = list(dict.fromkeys([purelib, platlib]))
    (site / "_image_environment.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({d!r})" for d in dirs) + "\n"
    )
    return python


def plugin_path(cache_dir: Path) -> Path:
    """A directory with only this plugin's package in it (a link), for a job's PYTHONPATH."""
    package = Path(__file__).resolve().parents[2]
    shim = Path(cache_dir) / "plugin" / hashlib.sha256(str(package).encode()).hexdigest()[:12]
    link = shim / package.name
    if not link.exists():
        shim.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to(package, target_is_directory=True)
        except FileExistsError:
            pass
    return shim
