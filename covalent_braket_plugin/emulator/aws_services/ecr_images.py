"""Amazon's managed hybrid-job images in the emulated ECR.

``AwsQuantumJob.create`` and ``@hybrid_job`` default to Amazon's base jobs image, and find
its Python by its full tag (``1.0-cpu-py312-ubuntu24.04``) through ECR ``BatchGetImage``. The
emulator puts those repositories (registry ``292282985366``) into each Region of an account
the first time a client of that account calls ECR there, tagged with the Python the emulated
jobs really run on (the ``managed_image_python`` setting, the emulator's own by default, so
that a mismatch can be staged).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from ...service import MANAGED_IMAGE_REGISTRY, MANAGED_IMAGE_REPOSITORIES
from ..settings import RuntimeSettings
from .own_clients import InternalClients

#: A stand-in manifest (no layers): what ECR stores is not run here.
_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 0,
        "digest": "sha256:" + "0" * 64,
    },
    "layers": [],
}


def full_tag(python: str) -> str:
    """The managed image's full tag for a Python ``major.minor``."""
    return f"1.0-cpu-py{python.replace('.', '')}-ubuntu24.04"


class ManagedImages:
    """Seeds the managed images into (account, Region)s on demand, once per reset.

    Args:
        clients: The emulator's own clients.
        settings: ``managed_image_python``, read when a Region is seeded.
    """

    def __init__(self, clients: InternalClients, settings: RuntimeSettings) -> None:
        self.clients = clients
        self.settings = settings
        self._lock = threading.Lock()
        self._seeded: dict[tuple[str, str], str] = {}  # (account, region) -> python tagged

    def ensure(self, account: str, region: str) -> None:
        """Make sure the managed images are in ``account``'s ECR in ``region``."""
        python = self.settings.managed_image_python
        with self._lock:
            if self._seeded.get((account, region)) == python:
                return
            self._seed(account, region, python)
            self._seeded[(account, region)] = python

    def forget(self) -> None:
        """After a reset: seed again on the next ECR call."""
        with self._lock:
            self._seeded.clear()

    def _seed(self, account: str, region: str, python: str) -> None:
        ecr = self.clients.get("ecr", region, account=account)
        manifest = json.dumps({**_MANIFEST, "annotations": {"python": python}})
        for repository in MANAGED_IMAGE_REPOSITORIES:
            target: dict[str, Any] = {
                "registryId": MANAGED_IMAGE_REGISTRY,
                "repositoryName": repository,
            }
            try:
                ecr.create_repository(**target)
            except ecr.exceptions.RepositoryAlreadyExistsException:
                # Tagged for another Python before: those tags go (moto gives every stand-in
                # manifest one digest, so an old full tag would still answer for it).
                old = ecr.list_images(**target).get("imageIds", [])
                if old:
                    ecr.batch_delete_image(imageIds=old, **target)
            for tag in ("latest", full_tag(python)):
                try:
                    ecr.put_image(imageManifest=manifest, imageTag=tag, **target)
                except ecr.exceptions.ImageAlreadyExistsException:
                    pass
