"""``setup``'s bucket: the caller's own, in the Region, encrypted by default (SSE-S3, or
SSE-KMS with the key given, which is looked up first; a bucket's SSE-KMS is kept), public
access blocked, and a
lifecycle rule that expires the task prefix (the bucket's other rules are kept)."""

from __future__ import annotations

from typing import Any

from .. import aws
from ..config import InvalidSettingError
from ..location import S3_PREFIX
from .steps import Maker, Step, current

#: The ID of the lifecycle rule for the task prefix (other rules of the bucket are kept).
LIFECYCLE_RULE_ID = "covalent-braket-task-artifacts"
#: The rule for the results of the quantum tasks the executor's jobs create: the service writes
#: them under the job's output bucket at ``jobs/<job name>/tasks/`` (the SDK's
#: ``AMZN_BRAKET_TASK_RESULTS_S3_URI``), and the executor's job names start with ``cov-``.
TASK_RESULTS_RULE_ID = "covalent-braket-quantum-task-results"
TASK_RESULTS_PREFIX = "jobs/cov-"
#: What a dry run says of a new bucket's encryption and public access block: S3 gives every
#: new bucket SSE-S3 and Block Public Access (since 2023), so the real run finds them.
NEW_BUCKET_DEFAULT = "S3's default for a new bucket"


def kms_key(maker: Maker) -> str:
    """The ARN of the KMS key given (which must exist in the Region)."""
    try:
        arn = aws.kms_key_arn(maker.clients, maker.options.kms_key_id)
    except aws.AwsError as exc:
        if exc.code in ("NotFoundException", "InvalidArnException"):
            raise InvalidSettingError(
                "kms_key_id", maker.options.kms_key_id, f"a KMS key in {maker.clients.region}"
            ) from exc
        raise
    maker.outcome.steps.append(Step("kms key", arn, "found"))
    return arn


def make_bucket(maker: Maker, bucket: str, account: str, key_arn: str) -> str:
    """The bucket and its encryption, public access block and lifecycle rule; the KMS key its
    objects are encrypted with (``key_arn``, or the one the bucket had: SSE-KMS is kept, not
    weakened to SSE-S3), "" for none of the caller's."""
    s3, region = maker.clients.s3, maker.clients.region
    owned = {"ExpectedBucketOwner": account}
    try:
        head = aws.call(s3, "head_bucket", Bucket=bucket, **owned)
    except aws.AwsError as exc:
        if exc.code in aws.DENIED:
            raise InvalidSettingError(
                "s3_bucket_name",
                bucket,
                f"a bucket name of your own: {bucket} belongs to another account, or you "
                "may not read it (a bucket name is global: choose another with --bucket)",
            ) from exc
        if exc.code not in ("404", "NoSuchBucket", "NotFound"):
            raise
        head = None
    if head is not None:
        found_in = head.get("BucketRegion") or head.get("ResponseMetadata", {}).get(
            "HTTPHeaders", {}
        ).get("x-amz-bucket-region")
        if found_in and found_in != region:
            raise InvalidSettingError(
                "s3_bucket_name", bucket, f"a bucket in {region} (this one is in {found_in})"
            )

    def create() -> None:
        where = {} if region == "us-east-1" else {"LocationConstraint": region}
        aws.call(
            s3,
            "create_bucket",
            Bucket=bucket,
            **({"CreateBucketConfiguration": where} if where else {}),
        )

    maker.step("bucket", bucket, head is None, create, "create")
    exists = head is not None or not maker.options.dry_run
    key_arn = _encryption(maker, s3, bucket, owned, exists, key_arn)
    _public_access(maker, s3, bucket, owned, exists)
    _lifecycle(maker, s3, bucket, owned, exists)
    return key_arn


def _encryption(
    maker: Maker, s3: Any, bucket: str, owned: dict[str, str], exists: bool, key_arn: str
) -> str:
    """SSE-KMS with the key given; else SSE-S3, unless the bucket has SSE-KMS already, which is
    kept (its key then granted to the job role like a given one). The key, or ""."""
    found = current(
        exists,
        "ServerSideEncryptionConfigurationNotFoundError",
        s3,
        "get_bucket_encryption",
        Bucket=bucket,
        **owned,
    )
    rules = (found or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    now = rules[0].get("ApplyServerSideEncryptionByDefault") if rules else None
    if not exists and not key_arn:  # a dry run, for a bucket S3 will make with SSE-S3
        maker.outcome.steps.append(Step("bucket", "encryption SSE-S3", NEW_BUCKET_DEFAULT))
        return key_arn
    if not key_arn and now and str(now.get("SSEAlgorithm", "")).startswith("aws:kms"):
        kept = str(now.get("KMSMasterKeyID") or "")
        if kept:
            kept = aws.kms_key_arn(maker.clients, kept)
        label = f"encryption SSE-KMS kept ({kept or 'the AWS managed key aws/s3'})"
        maker.outcome.steps.append(Step("bucket", label, "found"))
        return kept
    rule: dict[str, Any] = (
        {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}
        if key_arn
        else {"SSEAlgorithm": "AES256"}
    )
    label = f"encryption {'SSE-KMS' if key_arn else 'SSE-S3'}"
    differs = now is None or any(now.get(k) != v for k, v in rule.items())
    maker.step(
        "bucket",
        label,
        differs,
        lambda: aws.call(
            s3,
            "put_bucket_encryption",
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": rule,
                        "BucketKeyEnabled": bool(key_arn),
                    }
                ]
            },
            **owned,
        ),
        "set",
    )
    return key_arn


def _public_access(maker: Maker, s3: Any, bucket: str, owned: dict[str, str], exists: bool) -> None:
    block = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    found = current(
        exists,
        "NoSuchPublicAccessBlockConfiguration",
        s3,
        "get_public_access_block",
        Bucket=bucket,
        **owned,
    )
    current_block = (found or {}).get("PublicAccessBlockConfiguration")
    if not exists:  # a dry run, for a bucket S3 will make with public access blocked
        maker.outcome.steps.append(Step("bucket", "public access blocked", NEW_BUCKET_DEFAULT))
        return
    maker.step(
        "bucket",
        "public access blocked",
        current_block != block,
        lambda: aws.call(
            s3,
            "put_public_access_block",
            Bucket=bucket,
            PublicAccessBlockConfiguration=block,
            **owned,
        ),
        "set",
    )


def _lifecycle(maker: Maker, s3: Any, bucket: str, owned: dict[str, str], exists: bool) -> None:
    days = maker.options.expiry_days
    ours = [
        {
            "ID": rule,
            "Status": "Enabled",
            "Filter": {"Prefix": prefix},
            "Expiration": {"Days": days},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
        for rule, prefix in (
            (LIFECYCLE_RULE_ID, f"{S3_PREFIX}/"),
            (TASK_RESULTS_RULE_ID, TASK_RESULTS_PREFIX),
        )
    ]
    found = current(
        exists,
        "NoSuchLifecycleConfiguration",
        s3,
        "get_bucket_lifecycle_configuration",
        Bucket=bucket,
        **owned,
    )
    rules = (found or {}).get("Rules", [])
    # A PUT that names no minimum object size for transitions resets it to S3's default:
    # the one the bucket has is sent back with the rules.
    size = (found or {}).get("TransitionDefaultMinimumObjectSize")
    kept = {"TransitionDefaultMinimumObjectSize": size} if size else {}
    ids = {rule["ID"] for rule in ours}
    mine = {r.get("ID"): r for r in rules if r.get("ID") in ids}
    others = [r for r in rules if r.get("ID") not in ids]  # the user's: kept
    same = all(
        rule["ID"] in mine and all(mine[rule["ID"]].get(k) == v for k, v in rule.items())
        for rule in ours
    )
    maker.step(
        "bucket",
        f"lifecycle: {S3_PREFIX}/ and {TASK_RESULTS_PREFIX}* expire after {days} days",
        not same,
        lambda: aws.call(
            s3,
            "put_bucket_lifecycle_configuration",
            Bucket=bucket,
            LifecycleConfiguration={"Rules": [*others, *ours]},
            **owned,
            **kept,
        ),
        "set",
    )
