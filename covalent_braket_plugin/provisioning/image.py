"""``setup``'s image: the ECR repository asked for (immutable tags, scanned on push) and, on
Braket-in-a-box, a placeholder image in it, so that a new user's own workflow runs there.
Without either, jobs run Amazon's managed image."""

from __future__ import annotations

import json

from .. import aws, policies
from .steps import Maker, current

#: The placeholder image registered on the emulator: its repository and its manifest (an image
#: with no layers: the emulator runs a job in its own environment whatever the image holds).
PLACEHOLDER_REPOSITORY = "covalent-braket"
PLACEHOLDER_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {},
    "layers": [],
}


def make_image(maker: Maker, account: str, partition: str) -> tuple[str, str]:
    """The repository (created if asked for) and, on the emulator, a placeholder image:
    ``(image URI for the section, repository ARN for the job role's policy)``."""
    name = maker.options.ecr_repository or (
        PLACEHOLDER_REPOSITORY if maker.outcome.emulator else ""
    )
    if not name:  # Amazon's managed image: the job role's policy grants it anyway
        return "", policies.repository_arn("", partition)
    ecr, region = maker.clients.ecr, maker.clients.region
    repository = aws.call_unless(
        frozenset({"RepositoryNotFoundException"}),
        ecr,
        "describe_repositories",
        repositoryNames=[name],
    )
    maker.step(
        "ecr",
        name,
        repository is None,
        lambda: aws.call(
            ecr,
            "create_repository",
            repositoryName=name,
            imageTagMutability="IMMUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
        ),
        "create",
    )
    uri = f"{account}.dkr.ecr.{region}.amazonaws.com/{name}"
    arn = f"arn:{partition}:ecr:{region}:{account}:repository/{name}"
    if not maker.outcome.emulator:
        return "", arn  # the user builds and pushes their image into it (README)
    image = current(
        repository is not None,
        "ImageNotFoundException",
        ecr,
        "describe_images",
        repositoryName=name,
        imageIds=[{"imageTag": "latest"}],
    )
    maker.step(
        "ecr",
        f"{name}:latest (emulator placeholder)",
        image is None,
        lambda: aws.call(
            ecr,
            "put_image",
            repositoryName=name,
            imageManifest=json.dumps(PLACEHOLDER_MANIFEST),
            imageTag="latest",
        ),
        "create",
    )
    return f"{uri}:latest", arn
