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


@dataclass(frozen=True)
class JobImage:
    """The image a task's job runs on, and what the job must install on it."""

    uri: str
    managed: bool
    #: ``requirements.txt`` for the job's archive (empty: none).
    requirements: str
    #: The versions the runner checks before it unpickles: ``"covalent==X cloudpickle==Y"``.
    pins: str


def prepare(settings: BraketSettings, client_python: str) -> JobImage:
    """The job's image, its Python checked, and the requirements it needs (blocking).

    On Amazon's managed image the job installs covalent and cloudpickle at the server's
    versions (and the runner checks them); on any image it installs the ``requirements``
    setting's packages, as ``@hybrid_job(dependencies=...)`` does.

    Raises:
        InvalidSettingError: a managed image whose Python is not the client's.
    """
    uri = job_image(settings, aws.clients_for(settings).region)
    managed = is_managed(uri)
    if managed:
        check_python(settings, uri, client_python)
    pins = [f"{name}=={metadata.version(name)}" for name in ("covalent", "cloudpickle")]
    lines = pins if managed else []
    if isinstance(settings.requirements, str) and settings.requirements:
        path = os.path.expanduser(settings.requirements)
        with open(path, encoding="utf-8") as handle:
            lines = [*lines, *(line.rstrip() for line in handle if line.strip())]
    elif settings.requirements:
        lines = [*lines, *settings.requirements]
    _warn_of_other_indexes(lines)
    text = "\n".join(lines) + "\n" if lines else ""
    return JobImage(uri, managed, text, " ".join(pins) if managed else "")


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
