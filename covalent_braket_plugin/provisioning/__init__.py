"""``covalent-braket setup``: the AWS resources the executor needs, made idempotently.

It creates what is missing and leaves what is there as it is: the bucket (encrypted, public
access blocked, a lifecycle rule that expires the task prefix), the job role (Braket's trust
and the least-privilege inline policy of :mod:`covalent_braket_plugin.policies`, with the
KMS statement only when a key is given), and optionally an ECR repository. A second run
creates nothing. ``--dry-run`` makes only read calls and says what it would do. Against
Braket-in-a-box it also registers a placeholder image, so a new user's own workflow runs
there. It ends with the ``[executors.braket]`` section that uses what it made.

The calls are the same against AWS and the emulator; the principal running it needs the IAM,
S3 (and ECR, KMS) permissions to create and read these resources.

:func:`run` makes them in this order: the KMS key (looked up) and the bucket (:mod:`.bucket`),
the repository and the placeholder image (:mod:`.image`), the job role (:mod:`.role`), each
recording its steps through a :class:`~.steps.Maker`.
"""

from __future__ import annotations

import urllib.parse
import urllib.request

from .. import aws, policies
from ..config import (
    DEFAULTS,
    BraketSettings,
    InvalidSettingError,
    check_bucket_name,
    check_setting,
)
from ..service import REGIONS
from .bucket import LIFECYCLE_RULE_ID, kms_key, make_bucket
from .image import PLACEHOLDER_REPOSITORY, make_image
from .role import make_role
from .steps import Maker, Options, Outcome, Step

__all__ = ["LIFECYCLE_RULE_ID", "PLACEHOLDER_REPOSITORY", "Options", "Outcome", "Step", "run"]


def run(options: Options) -> Outcome:
    """Make (or, with ``dry_run``, plan) the resources. Blocking.

    Raises:
        InvalidSettingError: a Region without Braket, a bucket name owned by another account
            or in another Region, a role that Braket cannot assume, a KMS key that is missing.
        AwsError: AWS refused a call (the message names it).
    """
    settings = BraketSettings.from_mapping(
        {
            "region": options.region,
            "profile": options.profile or DEFAULTS["profile"],
            "credentials": options.credentials or DEFAULTS["credentials"],
        }
    )
    clients = aws.clients_for(settings)
    if clients.region not in REGIONS:
        raise InvalidSettingError(
            "region", clients.region, "a Region with Amazon Braket: " + ", ".join(REGIONS)
        )
    _check_names(options)
    identity = aws.call(clients.sts, "get_caller_identity")
    account = identity["Account"]
    partition = identity["Arn"].split(":")[1]
    outcome = Outcome(account, identity["Arn"], clients.region, emulator=_is_emulator(clients))
    maker = Maker(options, clients, outcome)

    key_arn = kms_key(maker) if options.kms_key_id else ""
    bucket = options.bucket or f"amazon-braket-covalent-{clients.region}-{account}"
    key_arn = make_bucket(maker, bucket, account, key_arn)
    image_uri, repository_arn = make_image(maker, account, partition)
    role_arn = make_role(
        maker,
        policies.Variables(
            partition=partition,
            region=clients.region,
            account=account,
            bucket=bucket,
            job_role_arn=f"arn:{partition}:iam::{account}:role/{options.role_name}",
            repository_arn=repository_arn,
            kms_key_arn=key_arn,
            devices=options.devices,
        ),
    )
    outcome.section = {"region": clients.region, "s3_bucket_name": bucket}
    outcome.section["braket_job_execution_role_name"] = (
        options.role_name if role_arn.endswith(f":role/{options.role_name}") else role_arn
    )
    if image_uri:
        outcome.section["ecr_image_uri"] = image_uri
    if key_arn:
        outcome.section["kms_key_id"] = key_arn
    if options.profile:
        outcome.section["profile"] = options.profile
    if options.credentials:
        outcome.section["credentials"] = options.credentials
    return outcome


def _check_names(options: Options) -> None:
    """Every name as the executor will check it, before anything is made.

    Raises:
        InvalidSettingError: A name the executor would refuse.
    """
    if options.bucket:
        check_bucket_name(options.bucket)
    check_setting("braket_job_execution_role_name", options.role_name)
    if options.kms_key_id:
        check_setting("kms_key_id", options.kms_key_id)
    for device in options.devices:
        check_setting("quantum_device", device)


def _is_emulator(clients: aws.AwsClients) -> bool:
    """Whether the clients talk to Braket-in-a-box: a loopback endpoint that answers the
    emulator's health check (nothing is sent anywhere else)."""
    endpoint = clients.s3.meta.endpoint_url
    host = urllib.parse.urlparse(endpoint).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        return False
    try:
        with urllib.request.urlopen(f"{endpoint}/_emulator/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False
