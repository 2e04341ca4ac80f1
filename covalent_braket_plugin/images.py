"""The job's image: the one configured, or, with ``ecr_image_uri`` left empty, Amazon's managed
base jobs image of the job's Region; and the Python a managed image runs.

A managed image runs one Python (3.12 since January 2026), and cloudpickle is not portable
across Python minor versions: the server's Python must be the image's. Its full tag names the
Python (``1.0-cpu-py312-ubuntu24.04``), found as the Braket SDK finds it: ECR ``BatchGetImage``
by the ``latest`` tag gives the image's digest, and ``BatchGetImage`` by digest its other tags.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from . import aws
from .config import BraketSettings, InvalidSettingError
from .covalent_loader import server_log
from .service import MANAGED_IMAGE_REGISTRY, MANAGED_IMAGE_REPOSITORIES, managed_image_uri

_PYTHON_TAG = re.compile(r"-py(\d)(\d+)-")
_lock = threading.Lock()
_pythons: dict[tuple[Any, str], str | None] = {}
aws.on_reset(_pythons.clear)


def job_image(settings: BraketSettings, region: str) -> str:
    """The URI of the image the job runs on, in the job's ``region``."""
    return settings.ecr_image_uri or managed_image_uri(MANAGED_IMAGE_REPOSITORIES[0], region)


def is_managed(uri: str) -> bool:
    """Whether ``uri`` names one of Amazon's managed job images."""
    registry, _, rest = uri.partition(".dkr.ecr.")
    repository = rest.split("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    return registry == MANAGED_IMAGE_REGISTRY and repository in MANAGED_IMAGE_REPOSITORIES


def managed_python(settings: BraketSettings, uri: str) -> str | None:
    """The Python ``major.minor`` of a managed image, from its full tag; None when it cannot
    be read (the caller may not call ECR, or no tag names a Python). Blocking."""
    key = (aws.client_key(settings), uri)
    with _lock:
        if key in _pythons:
            return _pythons[key]
    registry = uri.partition(".dkr.ecr.")[0]
    repository, _, tag = uri.split("/", 1)[1].partition(":")
    ecr = aws.clients_for(settings).ecr
    target = {"registryId": registry, "repositoryName": repository}
    python = None
    try:
        images = aws.call(
            ecr, "batch_get_image", imageIds=[{"imageTag": tag or "latest"}], **target
        )
        found = images.get("images") or []
        if found:
            digest = found[0]["imageId"]["imageDigest"]
            same = aws.call(ecr, "batch_get_image", imageIds=[{"imageDigest": digest}], **target)
            for image in same.get("images") or []:
                match = _PYTHON_TAG.search(image["imageId"].get("imageTag", ""))
                if match:
                    python = f"{match.group(1)}.{match.group(2)}"
                    break
    except aws.AwsError as exc:
        if exc.transient or exc.expired:
            raise
        python = None  # no verdict: the job's runner checks the Python again
    with _lock:
        _pythons[key] = python
    return python


#: The SHA-256 of each file PyPI serves for the cloudpickle releases this package allows (the
#: wheel, then the sdist), from PyPI's JSON API (https://pypi.org/pypi/cloudpickle/json, read
#: 2026-12-07). A managed image's job installs cloudpickle pinned by them, in pip's
#: hash-checking mode: no index, mirror or proxy can hand it other code under that name.
CLOUDPICKLE_SHA256: dict[str, tuple[str, ...]] = {
    "2.2.0": (
        "7428798d5926d8fcbfd092d18d01a2a03daf8237d8fcdc8095d256b8490796f0",
        "3f4219469c55453cfe4737e564b67c2a149109dabf7f242478948b895f61106f",
    ),
    "2.2.1": (
        "61f594d1f4c295fa5cd9014ceb3a1fc4a70b0de1164b94fbc2d854ccba056f9f",
        "d89684b8de9e34a2a43b3460fbca07d09d6e25ce858df4d5a44240403b6178f5",
    ),
    "3.0.0": (
        "246ee7d0c295602a036e86369c77fecda4ab17b506496730f2f576d9016fd9c7",
        "996d9a482c6fb4f33c1a35335cf8afd065d2a56e973270364840712d9131a882",
    ),
    "3.1.0": (
        "fe11acda67f61aaaec473e3afe030feb131d78a43461b718185363384f1ba12e",
        "81a929b6e3c7335c863c771d673d105f02efdb89dfaba0c90495d1c64796601b",
    ),
    "3.1.1": (
        "c8c5a44295039331ee9dad40ba100a9c7297b6f988e50e87ccdf3765a668350e",
        "b216fa8ae4019d5482a8ac3c95d8f6346115d8835911fd4aefd1a445e4242c64",
    ),
    "3.1.2": (
        "9acb47f6afd73f60dc1df93bb801b472f05ff42fa6c84167d25cb206be1fbf4a",
        "7fda9eb655c9c230dab534f1983763de5835249750e85fbcef43aaa30a9a2414",
    ),
    "3.1.3": (
        "1654f4f18e416447210a63c5c25a135d65a292156aa5fa519dfa4baf7726dddb",
        "cbe9fde14429a5db009ea05ce94e5182cf998c97b96918d50c10f73f9c2f4f33",
    ),
}


@dataclass(frozen=True)
class JobImage:
    """The image a task's job runs on, and what the job must install on it."""

    uri: str
    managed: bool
    #: ``requirements.txt`` at the archive's top (empty: none): on a managed image, cloudpickle
    #: at the server's version, pinned by its hashes (pip's hash-checking mode).
    requirements: str
    #: The versions the runner checks before it unpickles: ``"cloudpickle==Y"`` (and
    #: ``covalent==X`` when the electron's hooks need covalent in the job).
    pins: str
    #: ``user-requirements/requirements.txt`` (:data:`~covalent_braket_plugin.job.runner.
    #: USER_REQUIREMENTS_FILE`): the ``requirements`` setting's lines (and, on a managed
    #: image, covalent when the electron needs it); pip installs each file on its own, so
    #: these need no hashes.
    user_requirements: str = ""

    @property
    def installs(self) -> str:
        """Everything the job installs (what jobs that share an image must agree on)."""
        return self.requirements + self.user_requirements


def prepare(settings: BraketSettings, client_python: str, needs_covalent: bool = False) -> JobImage:
    """The job's image, its Python checked, and the requirements it needs (blocking).

    On Amazon's managed image the job installs cloudpickle at the server's version, pinned by
    its hashes (the electron travels unwrapped, :mod:`~covalent_braket_plugin.electron_call`,
    so the job needs nothing else of the server's), and covalent only when ``needs_covalent``;
    the runner checks their versions. On any image it installs the ``requirements`` setting's
    packages, as ``@hybrid_job(dependencies=...)`` does.

    Raises:
        InvalidSettingError: a managed image whose Python is not the client's, or a
            cloudpickle whose hashes this release does not know.
    """
    uri = job_image(settings, aws.clients_for(settings).region)
    managed = is_managed(uri)
    if managed:
        check_python(settings, uri, client_python)
    lines: list[str] = []
    if isinstance(settings.requirements, str) and settings.requirements:
        path = os.path.expanduser(settings.requirements)
        with open(path, encoding="utf-8") as handle:
            lines = [line.rstrip() for line in handle if line.strip()]
    elif settings.requirements:
        lines = list(settings.requirements)
    _warn_of_other_indexes(lines)
    if not managed:
        return JobImage(uri, False, "", "", _text(lines))
    pickler = f"cloudpickle=={metadata.version('cloudpickle')}"
    pins = [pickler] + ([f"covalent=={metadata.version('covalent')}"] if needs_covalent else [])
    return JobImage(
        uri,
        True,
        _text(["--require-hashes", _hashed(settings, pickler)]),
        " ".join(pins),
        _text(pins[1:] + lines),
    )


def _text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


def _hashed(settings: BraketSettings, pin: str) -> str:
    """``cloudpickle==V`` with the hashes of its files on PyPI.

    Raises:
        InvalidSettingError: this release does not know them.
    """
    version = pin.partition("==")[2]
    hashes = CLOUDPICKLE_SHA256.get(version)
    if hashes is None:
        raise InvalidSettingError(
            "ecr_image_uri",
            settings.ecr_image_uri,
            "an image with this server's cloudpickle installed (this project's image), as "
            f"Amazon's managed image would have to install cloudpickle {version}, and this "
            "release pins it by hash only for cloudpickle "
            f"{', '.join(CLOUDPICKLE_SHA256)}. Install one of those in the Covalent server's "
            "environment, or set ecr_image_uri to an image of your own",
        )
    return pin + "".join(f" --hash=sha256:{digest}" for digest in hashes)


#: pip options in a requirements file that fetch packages from somewhere other than PyPI.
_INDEX_OPTIONS = frozenset(
    {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host"}
)
_warned: set[str] = set()


def _warn_of_other_indexes(lines: list[str]) -> None:
    """Say once, in the server log, that the job will install from another index than PyPI:
    whoever serves that index chooses the code the job runs (with the job role's access), and
    ``--extra-index-url`` lets it shadow a package of PyPI's by name."""
    for line in lines:
        option = line.strip().split("=", 1)[0].split(" ", 1)[0]
        if option in _INDEX_OPTIONS and line not in _warned:
            _warned.add(line)
            server_log.warning(
                f"The job's requirements name another package index ({line.strip()!r}): it "
                "chooses the code the job runs, and an extra index can shadow a PyPI package "
                "by name. Prefer pinned versions from PyPI, or an image with them installed."
            )


def check_python(settings: BraketSettings, uri: str, client_python: str) -> None:
    """Refuse, before anything is created, a managed image whose Python is not the client's.

    Raises:
        InvalidSettingError: naming both versions and the two ways out.
    """
    if not is_managed(uri):
        return
    image_python = managed_python(settings, uri)
    if image_python is None or image_python == client_python:
        return
    raise InvalidSettingError(
        "ecr_image_uri",
        settings.ecr_image_uri,
        f"an image whose Python is the Covalent server's: Amazon's managed image {uri} runs "
        f"Python {image_python}, the server Python {client_python} (pickles do not travel "
        f"between Python versions). Run the Covalent server on Python {image_python}, or "
        f"build this project's image for Python {client_python} (the Dockerfile's "
        "PYTHON_VERSION build argument) and set ecr_image_uri to it",
    )
