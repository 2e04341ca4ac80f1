"""The doctor's checks of the AWS resources a job uses, each after the executor's own
pre-flight check of it: the bucket's default encryption and public access, the job role's
trust, and the Python the image is tagged for."""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

from .. import aws, images, policies, preflight
from ..config import BraketSettings, InvalidSettingError
from .report import OK, PROBLEM, UNKNOWN, Report, could_not, region

_TAG_PYTHON = re.compile(r"(?:^|[-_.])py(\d)\.?(\d{1,2})(?:$|[-_.])")


def bucket(report: Report, settings: BraketSettings) -> None:
    """The bucket is the caller's, in the Region, encrypted by default, and not public."""
    name = settings.s3_bucket_name
    if not report.preflight(
        "bucket", preflight.check_bucket, settings, f"{name} is yours, in {region(settings)}"
    ):
        return
    s3 = aws.clients_for(settings).s3
    owned = aws.bucket_owner(settings)
    try:
        found = aws.call_unless(
            frozenset({"ServerSideEncryptionConfigurationNotFoundError"}),
            s3,
            "get_bucket_encryption",
            Bucket=name,
            **owned,
        )
    except aws.AwsError as exc:
        report.add("bucket encryption", UNKNOWN, could_not(exc, "s3:GetEncryptionConfiguration"))
    else:
        rules = (found or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        default = rules[0].get("ApplyServerSideEncryptionByDefault", {}) if rules else {}
        if not default:
            report.add(
                "bucket encryption",
                PROBLEM,
                f"{name} has no default encryption",
                "covalent-braket setup sets it",
            )
        else:
            report.add("bucket encryption", OK, f"default {default.get('SSEAlgorithm')}")
    _public(report, s3, name, owned)


def _public(report: Report, s3: Any, bucket: str, owned: dict[str, str]) -> None:
    """Not public: Block Public Access on, else no public policy and no public grant."""
    try:
        block = aws.call_unless(
            frozenset({"NoSuchPublicAccessBlockConfiguration"}),
            s3,
            "get_public_access_block",
            Bucket=bucket,
            **owned,
        )
        blocking = (block or {}).get("PublicAccessBlockConfiguration", {})
        if blocking and all(blocking.values()):
            report.add("bucket access", OK, "public access is blocked")
            return
        status = aws.call_unless(
            frozenset({"NoSuchBucketPolicy"}),
            s3,
            "get_bucket_policy_status",
            Bucket=bucket,
            **owned,
        )
        grants = aws.call(s3, "get_bucket_acl", Bucket=bucket, **owned).get("Grants", [])
    except aws.AwsError as exc:
        actions = "s3:GetBucketPublicAccessBlock, s3:GetBucketPolicyStatus, s3:GetBucketAcl"
        report.add("bucket access", UNKNOWN, could_not(exc, actions))
        return
    public_grants = [
        grant["Permission"]
        for grant in grants
        if grant.get("Grantee", {}).get("URI", "").endswith(("/AllUsers", "/AuthenticatedUsers"))
    ]
    if (status or {}).get("PolicyStatus", {}).get("IsPublic") or public_grants:
        why = (
            "its bucket policy is public"
            if not public_grants
            else ("its ACL grants " + ", ".join(public_grants) + " to everyone")
        )
        report.add(
            "bucket access",
            PROBLEM,
            f"{bucket} is public: {why}; anyone could read or replace task pickles",
            "block public access (covalent-braket setup does) and remove the public grant",
        )
        return
    report.add(
        "bucket access",
        OK,
        "not public (but public access is not blocked; covalent-braket setup blocks it)",
    )


def role(report: Report, settings: BraketSettings) -> str | None:
    """The job role exists and Braket may assume it. Returns its ARN when it could be read
    (its permissions are checked next), else None."""
    if not report.preflight(
        "job role",
        preflight.check_role,
        settings,
        f"{settings.braket_job_execution_role_name} exists",
    ):
        return None
    role_arn = aws.role_arn(settings)
    iam = aws.clients_for(settings).iam
    name = role_arn.rsplit("/", 1)[-1]
    try:
        found = aws.call(iam, "get_role", RoleName=name)["Role"]
    except aws.AwsError as exc:
        report.add("job role trust", UNKNOWN, could_not(exc, "iam:GetRole"))
        return None
    document = found["AssumeRolePolicyDocument"]
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    if not policies.trusts_braket(document):
        report.add(
            "job role trust",
            PROBLEM,
            f"{role_arn} does not let {policies.BRAKET_PRINCIPAL} assume it "
            "(unconditionally): every job would fail to start",
            f"add a trust statement for {policies.BRAKET_PRINCIPAL} (covalent-braket setup "
            "makes a role with it)",
        )
    else:
        report.add("job role trust", OK, f"{policies.BRAKET_PRINCIPAL} may assume it")
    return role_arn


def image(report: Report, settings: BraketSettings, python: str) -> None:
    """The image exists and is tagged for the server's Python (``major.minor``)."""
    uri = images.job_image(settings, region(settings))
    if not report.preflight("image", preflight.check_image, settings, f"{uri} exists"):
        return
    try:
        images.check_python(settings, uri, python)
    except InvalidSettingError as exc:
        report.add("image python", PROBLEM, str(exc), "see the two ways out above")
        return
    except aws.AwsError as exc:
        report.add("image python", UNKNOWN, f"could not read its tags: {exc}")
        return
    image_python = (
        images.managed_python(settings, uri) if images.is_managed(uri) else _tag_python(uri)
    )
    if image_python and image_python != python:
        report.add(
            "image python",
            PROBLEM,
            f"{uri} is tagged for Python {image_python}, the server runs {python}",
            f"build the image with --build-arg PYTHON_VERSION={python}",
        )
    elif image_python:
        report.add("image python", OK, f"Python {image_python}, as the server's")
    else:
        report.add(
            "image python",
            UNKNOWN,
            "its tag names no Python; the job checks it when it starts",
        )


def _tag_python(uri: str) -> str:
    """The Python an image's tag names (``py3.12-abc``, ``1.0-cpu-py312-ubuntu``), if any."""
    tag = uri.rsplit("/", 1)[-1].partition(":")[2]
    found = _TAG_PYTHON.search(tag)
    return f"{found.group(1)}.{found.group(2)}" if found else ""
