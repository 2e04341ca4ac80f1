"""What a job on Amazon's managed image installs at start: before and after the cut.

Amazon's container runs ``pip install -r requirements.txt`` for the job's archive at every job
start, billed and inside the time limit. Before, the executor's archive asked for covalent and
cloudpickle at the server's versions (covalent brings two dozen packages the image lacks);
now the electron travels unwrapped from Covalent's wrapper and the job asks only for
cloudpickle at the server's version, pinned by its hashes.

The image's environment is rebuilt here from the requirements of
``amazon-braket-base-jobs:1.0-cpu-py312`` (amazon-braket-containers,
``base/jobs/docker/1.0/py3/requirements.txt`` at a3669cb, 2026-08-19; ``mpi4py`` left out, it
needs an MPI compiler), on Python 3.12 as the image: afresh before every timed run (uv, from
its cache), since pip may upgrade or replace what the image has. Each run then times the
container's pip installing the job's archive's ``requirements.txt`` into that environment, as
each version of the executor writes it, with pip's cache off as in a fresh container. The kinds
alternate, run after run; "nothing to install" (an empty file) is pip's own start-up, for
scale.

    python benchmarks/managed_start.py [--python python3.12] [--runs 3]

It needs PyPI (and a few minutes the first time, to fill uv's cache with the image's packages).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from _common import machine, table

from covalent_braket_plugin.images import CLOUDPICKLE_SHA256

#: amazon-braket-base-jobs:1.0-cpu-py312's requirements (see the module's docstring).
IMAGE_PACKAGES = [
    "amazon-braket-default-simulator==1.40.0",
    "amazon-braket-pennylane-plugin==1.35.1",
    "amazon-braket-schemas==1.32.1",
    "amazon-braket-sdk==1.125.0",
    "awscli==1.46.0",
    "botocore==1.43.72",
    "boto3==1.43.72",
    "dask==2024.8.0",
    "matplotlib==3.11.1",
    "numpy==2.2.6",
    "pandas==2.3.3",
    "pennylane==0.45.1",
    "pennylane-lightning==0.45.0",
    "qiskit==2.5.2",
    "qiskit-braket-provider==0.22.1",
    "sagemaker-training==5.1.1",
    "scikit-learn==1.9.0",
    "scipy==1.18.0",
]


def image_environment(python: str, home: Path) -> Path:
    """A fresh copy of the image's environment (a virtualenv with pip) in ``home``."""
    shutil.rmtree(home, ignore_errors=True)
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "--quiet", "--seed", "--python", python, str(home)], check=True)
    subprocess.run(
        [*uv, "pip", "install", "--quiet", "--link-mode", "copy", "--python",
         str(home / "bin" / "python"), *IMAGE_PACKAGES, "cloudpickle==2.2.1"],
        check=True,
    )  # fmt: skip
    return home


def requirements_files(folder: Path) -> dict[str, Path]:
    """The archive's ``requirements.txt`` as each version of the executor writes it."""
    pickler = metadata.version("cloudpickle")
    hashes = "".join(f" --hash=sha256:{digest}" for digest in CLOUDPICKLE_SHA256[pickler])
    texts = {
        "before: covalent and cloudpickle pinned": (
            f"covalent=={metadata.version('covalent')}\ncloudpickle=={pickler}\n"
        ),
        "after: cloudpickle pinned by hash": f"--require-hashes\ncloudpickle=={pickler}{hashes}\n",
        "nothing to install (pip's start-up)": "",
    }
    files = {}
    for number, (name, text) in enumerate(texts.items()):
        path = folder / f"requirements-{number}.txt"
        path.write_text(text)
        files[name] = path
    return files


def timed_install(environment: Path, requirements: Path) -> tuple[float, int]:
    """Seconds of the container's pip for ``requirements``, and how many packages it put in."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(environment / "bin" / "python"), "-m", "pip", "install", "--no-cache-dir",
         "--disable-pip-version-check", "-r", str(requirements)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    installed = [line for line in done.stdout.splitlines() if line.startswith("Successfully inst")]
    return seconds, len(installed[0].split()) - 2 if installed else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", default="python3.12", help="the image's Python (3.12)")
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        files = requirements_files(Path(folder))
        seconds: dict[str, list[float]] = {name: [] for name in files}
        packages: dict[str, int] = {}
        for _ in range(options.runs):
            for name, path in files.items():
                environment = image_environment(options.python, Path(folder) / "image")
                took, packages[name] = timed_install(environment, path)
                seconds[name].append(took)
    before = statistics.median(seconds[next(iter(files))])
    rows = [
        [
            name,
            packages[name],
            f"{statistics.median(times):.1f}",
            f"{min(times):.1f}-{max(times):.1f}",
            f"{statistics.median(times) / before:.3f}",
        ]
        for name, times in seconds.items()
    ]
    title = (
        f"Managed-image job start: pip in the image's environment (server {machine()}; image "
        f"Python {options.python}; {options.runs} runs each, pip's cache off, PyPI over this "
        "machine's network)"
    )
    header = ["the job's requirements.txt", "packages installed", "median s", "range s", "/ before"]
    print(table(title, header, rows))


if __name__ == "__main__":
    main()
