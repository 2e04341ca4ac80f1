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
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from . import aws, policies
from .config import DEFAULTS, BraketSettings, InvalidSettingError
from .location import S3_PREFIX
from .service import REGIONS

#: The ID of the lifecycle rule for the task prefix (other rules of the bucket are kept).
LIFECYCLE_RULE_ID = "covalent-braket-task-artifacts"
#: The placeholder image registered on the emulator.
PLACEHOLDER_REPOSITORY = "covalent-braket"
_PLACEHOLDER_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {},
    "layers": [],
}


@dataclass(frozen=True)
class Options:
    """What ``setup`` is asked to make."""

    region: str = ""
    profile: str = ""
    credentials: str = ""
    #: Empty: ``amazon-braket-covalent-<region>-<account>``, a name of the caller's own.
    bucket: str = ""
    role_name: str = str(DEFAULTS["braket_job_execution_role_name"])
    kms_key_id: str = ""
    #: An ECR repository to create for the user's own image (empty: none).
    ecr_repository: str = ""
    expiry_days: int = 30
    dry_run: bool = False


@dataclass
class Step:
    """One resource (or one property of it) and what was done about it."""

    resource: str
    name: str
    #: ``created``, ``set``, ``found``, ``would create``, ``would set``.
    action: str

    @property
    def changed(self) -> bool:
        return self.action in ("created", "set")


@dataclass
class Outcome:
    """What ``setup`` did and the settings that use it."""

    account: str
    identity: str
    region: str
    steps: list[Step] = field(default_factory=list)
    section: dict[str, Any] = field(default_factory=dict)
    emulator: bool = False
    #: The policy for whoever runs the Covalent server, filled for what was made.
    submitter_policy: dict[str, Any] = field(default_factory=dict)

    def report(self, conf_path: str) -> str:
        width = max((len(step.name) for step in self.steps), default=0)
        lines = [f"Account {self.account} ({self.identity}), Region {self.region}"]
        lines += [
            f"  {step.resource:<10} {step.name:<{width}}  {step.action}" for step in self.steps
        ]
        if not any(step.changed or step.action.startswith("would") for step in self.steps):
            lines.append("Everything was already there; nothing was created or changed.")
        lines += ["", f"In {conf_path}:", "", "[executors.braket]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in self.section.items()]
        return "\n".join(lines)


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
    identity = aws.call(clients.sts, "get_caller_identity")
    account = identity["Account"]
    partition = identity["Arn"].split(":")[1]
    outcome = Outcome(account, identity["Arn"], clients.region, emulator=_is_emulator(clients))
    maker = _Maker(options, clients, outcome)

    key_arn = maker.kms_key() if options.kms_key_id else ""
    bucket = options.bucket or f"amazon-braket-covalent-{clients.region}-{account}"
    maker.bucket(bucket, account, key_arn)
    image_uri, repository_arn = maker.image(account, partition)
    role_arn = maker.role(
        policies.Variables(
            partition=partition,
            region=clients.region,
            account=account,
            bucket=bucket,
            job_role_arn=f"arn:{partition}:iam::{account}:role/{options.role_name}",
            repository_arn=repository_arn,
            kms_key_arn=key_arn,
        )
    )
    outcome.section = {"region": clients.region, "s3_bucket_name": bucket}
    outcome.section["braket_job_execution_role_name"] = (
        options.role_name if role_arn.endswith(f":role/{options.role_name}") else role_arn
    )
    if image_uri:
        outcome.section["ecr_image_uri"] = image_uri
    if options.kms_key_id:
        outcome.section["kms_key_id"] = key_arn
    if options.profile:
        outcome.section["profile"] = options.profile
    if options.credentials:
        outcome.section["credentials"] = options.credentials
    return outcome


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


class _Maker:
    """Looks each resource up, and makes it (or plans to) when it is missing or differs."""

    def __init__(self, options: Options, clients: aws.AwsClients, outcome: Outcome) -> None:
        self.options = options
        self.clients = clients
        self.outcome = outcome

    def _step(self, resource: str, name: str, missing: bool, make: Any, verb: str) -> None:
        """Record ``name`` as found, or make it (``verb``: ``create`` or ``set``)."""
        if not missing:
            self.outcome.steps.append(Step(resource, name, "found"))
            return
        if self.options.dry_run:
            self.outcome.steps.append(Step(resource, name, f"would {verb}"))
            return
        make()
        self.outcome.steps.append(Step(resource, name, "created" if verb == "create" else verb))

    # ------------------------------------------------------------------ KMS
    def kms_key(self) -> str:
        kms = self.clients.client("kms")
        try:
            key = aws.call(kms, "describe_key", KeyId=self.options.kms_key_id)["KeyMetadata"]
        except aws.AwsError as exc:
            if exc.code in ("NotFoundException", "InvalidArnException"):
                raise InvalidSettingError(
                    "kms_key_id", self.options.kms_key_id, f"a KMS key in {self.clients.region}"
                ) from exc
            raise
        self.outcome.steps.append(Step("kms key", key["Arn"], "found"))
        return str(key["Arn"])

    # ------------------------------------------------------------------ the bucket
    def bucket(self, bucket: str, account: str, key_arn: str) -> None:
        s3, region = self.clients.s3, self.clients.region
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

        self._step("bucket", bucket, head is None, create, "create")
        exists = head is not None or not self.options.dry_run

        rule: dict[str, Any] = (
            {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}
            if key_arn
            else {"SSEAlgorithm": "AES256"}
        )
        current = None
        if exists:
            found = aws.call_unless(
                frozenset({"ServerSideEncryptionConfigurationNotFoundError"}),
                s3,
                "get_bucket_encryption",
                Bucket=bucket,
                **owned,
            )
            rules = (found or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
            current = rules[0].get("ApplyServerSideEncryptionByDefault") if rules else None
        label = f"encryption {'SSE-KMS' if key_arn else 'SSE-S3'}"
        differs = current is None or any(current.get(k) != v for k, v in rule.items())
        self._step(
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

        block = {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        }
        current_block = None
        if exists:
            found = aws.call_unless(
                frozenset({"NoSuchPublicAccessBlockConfiguration"}),
                s3,
                "get_public_access_block",
                Bucket=bucket,
                **owned,
            )
            current_block = (found or {}).get("PublicAccessBlockConfiguration")
        self._step(
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

        ours = {
            "ID": LIFECYCLE_RULE_ID,
            "Status": "Enabled",
            "Filter": {"Prefix": f"{S3_PREFIX}/"},
            "Expiration": {"Days": self.options.expiry_days},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
        rules = []
        if exists:
            found = aws.call_unless(
                frozenset({"NoSuchLifecycleConfiguration"}),
                s3,
                "get_bucket_lifecycle_configuration",
                Bucket=bucket,
                **owned,
            )
            rules = (found or {}).get("Rules", [])
        mine = [r for r in rules if r.get("ID") == LIFECYCLE_RULE_ID]
        others = [r for r in rules if r.get("ID") != LIFECYCLE_RULE_ID]  # the user's: kept
        same = bool(mine) and all(mine[0].get(k) == v for k, v in ours.items())
        self._step(
            "bucket",
            f"lifecycle: {S3_PREFIX}/ expires after {self.options.expiry_days} days",
            not same,
            lambda: aws.call(
                s3,
                "put_bucket_lifecycle_configuration",
                Bucket=bucket,
                LifecycleConfiguration={"Rules": [*others, ours]},
                **owned,
            ),
            "set",
        )

    # ------------------------------------------------------------------ the image
    def image(self, account: str, partition: str) -> tuple[str, str]:
        """The repository (created if asked for) and, on the emulator, a placeholder image:
        ``(image URI for the section, repository ARN for the job role's policy)``."""
        name = self.options.ecr_repository or (
            PLACEHOLDER_REPOSITORY if self.outcome.emulator else ""
        )
        if not name:  # Amazon's managed image: the job role's policy grants it anyway
            return "", policies.repository_arn("", partition)
        ecr, region = self.clients.ecr, self.clients.region
        repository = aws.call_unless(
            frozenset({"RepositoryNotFoundException"}),
            ecr,
            "describe_repositories",
            repositoryNames=[name],
        )
        self._step(
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
        if not self.outcome.emulator:
            return "", arn  # the user builds and pushes their image into it (README)
        image = None
        if repository is not None:
            image = aws.call_unless(
                frozenset({"ImageNotFoundException"}),
                ecr,
                "describe_images",
                repositoryName=name,
                imageIds=[{"imageTag": "latest"}],
            )
        self._step(
            "ecr",
            f"{name}:latest (emulator placeholder)",
            image is None,
            lambda: aws.call(
                ecr,
                "put_image",
                repositoryName=name,
                imageManifest=json.dumps(_PLACEHOLDER_MANIFEST),
                imageTag="latest",
            ),
            "create",
        )
        return f"{uri}:latest", arn

    # ------------------------------------------------------------------ the job role
    def role(self, variables: policies.Variables) -> str:
        iam, name = self.clients.iam, self.options.role_name
        role = aws.call_unless(frozenset({"NoSuchEntity"}), iam, "get_role", RoleName=name)
        if role is not None:
            document = role["Role"]["AssumeRolePolicyDocument"]
            if isinstance(document, str):
                document = json.loads(urllib.parse.unquote(document))
            if not policies.trusts_braket(document):
                raise InvalidSettingError(
                    "braket_job_execution_role_name",
                    name,
                    f"a role that Braket can assume: {name} exists, but its trust policy does "
                    f"not let {policies.BRAKET_PRINCIPAL} assume it unconditionally; add that "
                    "trust, or name another role with --role-name",
                )
        self._step(
            "role",
            name,
            role is None,
            lambda: aws.call(
                iam,
                "create_role",
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(policies.TRUST_POLICY),
                Description="Assumed by Amazon Braket for the jobs of covalent-braket-plugin",
            ),
            "create",
        )
        arn = role["Role"]["Arn"] if role is not None else variables.job_role_arn
        documents = policies.documents(dataclasses.replace(variables, job_role_arn=arn))
        self.outcome.submitter_policy = documents[policies.SUBMITTER]
        wanted = documents[policies.JOB_ROLE]
        current = None
        if role is not None:
            found = aws.call_unless(
                frozenset({"NoSuchEntity"}),
                iam,
                "get_role_policy",
                RoleName=name,
                PolicyName=policies.JOB_ROLE_POLICY_NAME,
            )
            if found is not None:
                current = found["PolicyDocument"]
                if isinstance(current, str):
                    current = json.loads(urllib.parse.unquote(current))
        self._step(
            "role",
            f"inline policy {policies.JOB_ROLE_POLICY_NAME}",
            current != wanted,
            lambda: aws.call(
                iam,
                "put_role_policy",
                RoleName=name,
                PolicyName=policies.JOB_ROLE_POLICY_NAME,
                PolicyDocument=json.dumps(wanted),
            ),
            "set",
        )
        return str(arn)
