"""The doctor's permission checks, by IAM ``SimulatePrincipalPolicy`` (where the caller may
call it): the job role may do what a job does, and the caller what the executor does, each
action asked on the resource it acts on, with the condition keys IAM would see there (and
the KMS actions only with a key)."""

from __future__ import annotations

from typing import Any

from .. import aws, images, policies
from ..config import BraketSettings, InvalidSettingError
from ..location import S3_PREFIX
from ..service import LOG_GROUP
from .report import OK, PROBLEM, UNKNOWN, Report, could_not, region

#: What is needed, as IAM evaluates it: (actions, resource, condition keys and values).
Needs = list[tuple[list[str], str, dict[str, str]]]


def job_role(report: Report, settings: BraketSettings, role_arn: str) -> None:
    """The job role's policies allow what a job does."""
    _simulate(
        report,
        settings,
        "job role permissions",
        role_arn,
        _job_needs(settings, role_arn),
        "the job role's",
    )


def caller(report: Report, settings: BraketSettings, identity: str) -> None:
    """The caller's policies allow what the executor does."""
    try:
        role_arn = aws.role_arn(settings)
    except (aws.AwsError, InvalidSettingError):
        role_arn = settings.braket_job_execution_role_name
    v = _variables(settings, role_arn)
    job = f"arn:{v.partition}:braket:{v.region}:{v.account}:job/covalent-x"
    task = f"arn:{v.partition}:s3:::{v.bucket}/{S3_PREFIX}/task/input.pkl"
    needs: Needs = [
        (["braket:CreateJob"], settings.quantum_device, {}),
        (["braket:GetJob", "braket:CancelJob"], job, {}),
        (["braket:SearchJobs", "braket:GetDevice"], "*", {}),
        (["iam:PassRole"], role_arn, {"iam:PassedToService": policies.BRAKET_PRINCIPAL}),
        (["s3:PutObject", "s3:GetObject", "s3:DeleteObject"], task, {}),
        (["s3:ListBucket"], f"arn:{v.partition}:s3:::{v.bucket}", {}),
    ]
    try:
        principal = _principal_arn(settings, identity)
    except aws.AwsError as exc:
        report.add("permissions", UNKNOWN, could_not(exc, "iam:GetRole"))
        return
    _simulate(report, settings, "permissions", principal, needs + _kms_needs(v), "your")


def _variables(settings: BraketSettings, role_arn: str) -> policies.Variables:
    account, partition = aws.caller_account(settings)
    where = region(settings)
    key = _key_arn(settings, settings.kms_key_id, f"arn:{partition}:kms:{where}:{account}")
    return policies.Variables(
        partition=partition,
        region=where,
        account=account,
        bucket=settings.s3_bucket_name,
        job_role_arn=role_arn,
        repository_arn=policies.repository_arn(images.job_image(settings, where), partition),
        kms_key_arn=key,
        devices=(settings.quantum_device,),
    )


def _key_arn(settings: BraketSettings, key: str, prefix: str) -> str:
    """The KMS key's ARN, as IAM evaluates a grant on it: an alias (``alias/...`` or its ARN)
    resolved to its key with ``DescribeKey``, as S3 resolves it (a policy names the key, never
    the alias); the alias's ARN if the caller may not resolve it."""
    if not key or key.startswith(f"{prefix}:key/") or ":key/" in key:
        return key
    if not key.startswith(("alias/", "arn:")):
        return f"{prefix}:key/{key}"
    try:
        return aws.kms_key_arn(aws.clients_for(settings), key)
    except aws.AwsError:
        return key if key.startswith("arn:") else f"{prefix}:{key}"


def _job_needs(settings: BraketSettings, role_arn: str) -> Needs:
    """What a job does."""
    v = _variables(settings, role_arn)
    attempt = f"arn:{v.partition}:s3:::{v.bucket}/{S3_PREFIX}/dispatch/node-0/attempt-0"
    group = f"arn:{v.partition}:logs:{v.region}:{v.account}:log-group:{LOG_GROUP}"
    needs: Needs = [
        (["s3:GetObject"], f"{attempt}/input.pkl", {}),
        (["s3:PutObject"], f"{attempt}/result.pkl", {}),
        (["braket:CreateQuantumTask"], settings.quantum_device, {}),
        (["braket:GetQuantumTask"], "*", {}),
        (["logs:CreateLogStream", "logs:PutLogEvents"], f"{group}:log-stream:x", {}),
        (
            ["ecr:BatchGetImage"],
            v.repository_arn,
            {},
        ),
    ]
    return needs + _kms_needs(v)


def _kms_needs(v: policies.Variables) -> Needs:
    if not v.kms_key_arn:
        return []
    via = {"kms:ViaService": f"s3.{v.region}.amazonaws.com"}
    return [(["kms:GenerateDataKey", "kms:Decrypt"], v.kms_key_arn, via)]


def _simulate(
    report: Report,
    settings: BraketSettings,
    name: str,
    principal: str,
    needs: Needs,
    whose: str,
) -> None:
    """Check ``name``: ``principal``'s policies allow each of ``needs``."""
    iam = aws.clients_for(settings).iam
    denied: list[str] = []
    denying: dict[str, list[str]] = {}
    try:
        for actions, resource, context in needs:
            entries = [
                {"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "string"}
                for k, v in context.items()
            ]
            answer = aws.call(
                iam,
                "simulate_principal_policy",
                PolicySourceArn=principal,
                ActionNames=actions,
                ResourceArns=[resource],
                **({"ContextEntries": entries} if entries else {}),
            )
            for result in answer.get("EvaluationResults", []):
                if result.get("EvalDecision") == "allowed":
                    continue
                what = f"{result['EvalActionName']} on {resource}"
                denied.append(what)
                if result.get("EvalDecision") == "explicitDeny":
                    for statement in result.get("MatchedStatements") or [{}]:
                        source = _source(statement)
                        denying.setdefault(source, []).append(what)
    except aws.AwsError as exc:
        report.add(name, UNKNOWN, could_not(exc, "iam:SimulatePrincipalPolicy"))
        return
    if denied:
        report.add(
            name,
            PROBLEM,
            f"{whose} policies do not allow: " + "; ".join(denied),
            _fix(denying, name),
        )
    else:
        report.add(
            name,
            OK,
            f"{whose} policies allow what {'a job' if 'role' in name else 'the executor'} does"
            " (as IAM's policy simulator sees them: not the bucket's or the KMS key's own "
            "policy, which may still refuse)",
        )


def _source(statement: dict[str, Any]) -> str:
    """The policy a matched statement is in, as the simulator names it."""
    policy = statement.get("SourcePolicyId") or "a policy the simulator does not name"
    kind = statement.get("SourcePolicyType")
    return f"{policy} ({kind})" if kind else str(policy)


def _fix(denying: dict[str, list[str]], name: str) -> str:
    """The advice: an explicit deny cannot be granted away, so it is named; else the grant."""
    if denying:
        named = "; ".join(f"{source} denies {', '.join(what)}" for source, what in denying.items())
        return (
            f"an explicit deny wins over any grant: {named}. Change or remove that statement "
            "(or, for a service control policy or a permissions boundary, ask whoever set it)"
        )
    if "role" in name:
        return "grant the job role the policy of covalent_braket_plugin/policies (setup does)"
    return "grant the submitter's policy of covalent_braket_plugin/policies (setup writes it)"


def _principal_arn(settings: BraketSettings, identity: str) -> str:
    """The IAM principal of a caller: an assumed role's session is its role, with the path IAM
    has for it (an SSO role's is ``/aws-reserved/sso.amazonaws.com/...``), read with
    ``iam:GetRole``.

    Raises:
        AwsError: The role could not be read (the caller may not, say).
    """
    parts = identity.split(":")
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        role = parts[5].split("/")[1]
        iam = aws.clients_for(settings).iam
        return str(aws.call(iam, "get_role", RoleName=role)["Role"]["Arn"])
    return identity
