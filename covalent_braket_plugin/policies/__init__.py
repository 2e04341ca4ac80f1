"""The AWS access the product needs, as IAM policy documents, written once.

The templates beside this module are the one source for Terraform (``infra/terraform``, through
``infra/policies``), for ``covalent-braket setup`` (the job role's inline policy), for
``covalent-braket doctor`` (what the role and the caller must be allowed) and for the
least-privilege tests. They take ``string.Template`` variables, the same names Terraform's
``templatefile`` fills:

- ``submitter-policy``: whoever runs the Covalent server (the executor's calls);
- ``job-role-policy``: the role Braket assumes for the job (the runner's and the SDK's calls):
  it reads the task's objects and writes only results, outputs and checkpoints (never an input
  or a runner another job would run), and creates quantum tasks only on the job's devices;
- ``kms-policy``: both, only when ``kms_key_id`` is set: ``kms:GenerateDataKey`` and
  ``kms:Decrypt`` on that key, through S3 only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from importlib import resources
from string import Template
from typing import Any

from ..location import S3_PREFIX
from ..service import MANAGED_IMAGE_REGISTRY, SV1_ARN

SUBMITTER = "submitter-policy"
JOB_ROLE = "job-role-policy"
KMS = "kms-policy"
#: The principal that assumes the job role.
BRAKET_PRINCIPAL = "braket.amazonaws.com"
#: The job role's trust policy: Braket may assume it. No ``aws:SourceAccount`` condition:
#: Braket is not documented to send one, and a condition it does not meet fails every job.
TRUST_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": BRAKET_PRINCIPAL},
            "Action": "sts:AssumeRole",
        }
    ],
}
#: The name of the inline policy ``setup`` puts on the job role.
JOB_ROLE_POLICY_NAME = "covalent-braket-job"


@dataclass(frozen=True)
class Variables:
    """What the templates are filled with."""

    partition: str
    region: str
    account: str
    bucket: str
    job_role_arn: str
    #: The ECR repository of the job image; Amazon's managed images are granted apart.
    repository_arn: str
    prefix: str = S3_PREFIX
    #: The KMS key's ARN (``kms-policy`` only).
    kms_key_arn: str = ""
    #: The devices a job may create quantum tasks on (``device_arns`` in the templates: a
    #: JSON list): the configured ``quantum_device``, and any other a job's code uses.
    devices: tuple[str, ...] = (SV1_ARN,)

    def values(self) -> dict[str, str]:
        """The templates' variables."""
        found = asdict(self)
        found["device_arns"] = json.dumps(sorted(set(found.pop("devices"))))
        return found


def repository_arn(image_uri: str, partition: str = "aws") -> str:
    """The ARN of the ECR repository an image URI names (Amazon's managed repositories for an
    empty URI: the job role is granted those anyway)."""
    if not image_uri:
        return f"arn:{partition}:ecr:*:{MANAGED_IMAGE_REGISTRY}:repository/amazon-braket-*"
    registry, _, rest = image_uri.partition(".dkr.ecr.")
    region, _, path = rest.partition(".amazonaws.com/")
    repository = path.split("@", 1)[0].split(":", 1)[0]
    return f"arn:{partition}:ecr:{region}:{registry}:repository/{repository}"


def template(name: str) -> str:
    """The text of the policy template ``name``."""
    return resources.files(__name__).joinpath(f"{name}.json.tpl").read_text(encoding="utf-8")


def render(name: str, variables: Variables) -> dict[str, Any]:
    """The policy document ``name`` filled with ``variables``."""
    return json.loads(Template(template(name)).substitute(variables.values()))


def documents(variables: Variables) -> dict[str, dict[str, Any]]:
    """The submitter's and the job role's policies, each with the KMS statement when a key
    is configured (and without any KMS action otherwise)."""
    out = {SUBMITTER: render(SUBMITTER, variables), JOB_ROLE: render(JOB_ROLE, variables)}
    if variables.kms_key_arn:
        extra = render(KMS, variables)["Statement"]
        for document in out.values():
            document["Statement"].extend(extra)
    return out


def granted_buckets(document: dict[str, Any] | None) -> list[str]:
    """The buckets a job-role policy of this project grants (its ``ListOwnPrefixes``
    statement's buckets), in order; none for no policy."""
    found: list[str] = []
    for statement in (document or {}).get("Statement", []):
        if statement.get("Sid") != "ListOwnPrefixes":
            continue
        resources = statement.get("Resource", [])
        for resource in [resources] if isinstance(resources, str) else resources:
            name = str(resource).rsplit(":", 1)[-1]
            if name and "/" not in name and name not in found:
                found.append(name)
    return found


def job_role_policy(variables: Variables, buckets: list[str]) -> dict[str, Any]:
    """The job role's policy for ``variables.bucket`` and the other ``buckets`` too: each
    statement's resources for every bucket (a role that ``setup`` gave another bucket keeps
    it)."""
    names = list(dict.fromkeys([*buckets, variables.bucket]))
    rendered = [documents(replace(variables, bucket=name))[JOB_ROLE] for name in names]
    merged = rendered[-1]
    for index, statement in enumerate(merged["Statement"]):
        resources: list[str] = []
        for document in rendered:
            found = document["Statement"][index].get("Resource", [])
            resources += [found] if isinstance(found, str) else found
        resources = list(dict.fromkeys(resources))
        statement["Resource"] = resources[0] if len(resources) == 1 else resources
    return merged


def trusts_braket(document: dict[str, Any]) -> bool:
    """Whether a trust policy lets Braket assume the role unconditionally (Braket sends no
    condition keys). An explicit deny of Braket wins."""
    statements = document.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    allowed = False
    for statement in statements:
        principal = statement.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else principal
        services = [services] if isinstance(services, str) else services
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not (BRAKET_PRINCIPAL in services or "*" in services):
            continue
        if not any(action in ("sts:AssumeRole", "sts:*", "*") for action in actions):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or not statement.get("Condition")
    return allowed
