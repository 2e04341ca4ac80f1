"""The IAM policies and Terraform in infra/: valid, least privilege, and sufficient.

Sufficiency is shown from the emulator's request journal: every AWS call the executor and the
job runner make in a real task (including quantum tasks from inside the job) is mapped to its
IAM action and checked against the policy of the principal that made it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import parse_qs, unquote

import cloudpickle
import pytest

from covalent_braket_plugin.aws import AwsError
from covalent_braket_plugin.braket import wait_for_cleanups
from covalent_braket_plugin.emulator.aws_services.iam_policies import is_allowed
from covalent_braket_plugin.emulator.aws_services.identity import CLIENT_ACCESS_KEY, JOB_ACCESS_KEY
from tests.conftest import BUCKET, IMAGE, ROLE, SV1
from tests.test_braket import hosted, keys, run

pytestmark = pytest.mark.timeout(180)
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job cannot import the tests

INFRA = Path(__file__).resolve().parents[1] / "infra"
ACCOUNT, REGION = "123456789012", "us-east-1"
REPOSITORY_ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/covalent-braket"
VARS = {
    "partition": "aws",
    "region": REGION,
    "account": ACCOUNT,
    "bucket": BUCKET,
    "prefix": "covalent-braket",
    "job_role_arn": ROLE,
    "repository_arn": REPOSITORY_ARN,
    "kms_key_arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/example",
    "device_arns": json.dumps([SV1]),
}


def policy(name: str) -> dict[str, Any]:
    text = (INFRA / "policies" / f"{name}.json.tpl").read_text()
    return json.loads(Template(text).substitute(VARS))


def kms_calls(entry: dict[str, Any], key_arn: str) -> list[tuple[str, str, dict[str, str]]]:
    """What S3 asks of KMS on the caller's behalf for a call on an SSE-KMS object: a data key
    to write it, a decryption to read it (and both for the parts of a multipart upload)."""
    if entry["service"] != "s3" or entry.get("sse") != "aws:kms":
        return []
    assert entry.get("sseKmsKeyId", key_arn) in (key_arn, key_arn.rsplit("/", 1)[-1]), entry
    via = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    if entry["method"] in ("PUT", "POST"):
        return [("kms:GenerateDataKey", key_arn, via), ("kms:Decrypt", key_arn, via)]
    return [("kms:Decrypt", key_arn, via)]


@pytest.mark.parametrize("name", ["submitter-policy", "job-role-policy"])
def test_policies_are_valid_and_grant_no_wildcard_actions(name: str) -> None:
    document = policy(name)
    assert document["Version"] == "2012-10-17"
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        for action in actions:
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z]+", action), f"{name}: {action} is a wildcard"
        resources = (
            statement["Resource"]
            if isinstance(statement["Resource"], list)
            else [statement["Resource"]]
        )
        if "*" in resources:  # only actions that have no resource-level permissions
            assert set(actions) <= {
                "braket:SearchJobs",
                "braket:GetDevice",
                "braket:SearchDevices",
                "braket:CreateQuantumTask",
                "braket:GetQuantumTask",
                "braket:CancelQuantumTask",
                "braket:SearchQuantumTasks",
                "cloudwatch:PutMetricData",
                "ecr:GetAuthorizationToken",
            }, f"{name}: {actions} on *"


def test_pass_role_is_limited_to_the_job_role_and_braket() -> None:
    document = policy("submitter-policy")
    assert is_allowed(
        document, "iam:PassRole", ROLE, {"iam:PassedToService": "braket.amazonaws.com"}
    )
    assert not is_allowed(
        document, "iam:PassRole", ROLE, {"iam:PassedToService": "ec2.amazonaws.com"}
    )
    assert not is_allowed(
        document,
        "iam:PassRole",
        f"arn:aws:iam::{ACCOUNT}:role/Admin",
        {"iam:PassedToService": "braket.amazonaws.com"},
    )
    assert not is_allowed(document, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/someone-else/secret")


def test_terraform_parses_and_wires_the_policies() -> None:
    import hcl2

    parsed = {}
    for path in sorted((INFRA / "terraform").glob("*.tf")):
        with path.open() as handle:
            parsed[path.name] = hcl2.load(handle)

    def bare(text: str) -> str:  # python-hcl2 8 keeps the quotes of block labels
        return text.strip('"')

    resources = {
        bare(kind): [bare(name) for name in body]
        for block in parsed["main.tf"]["resource"]
        for kind, body in block.items()
    }
    for kind in (
        "aws_s3_bucket",
        "aws_s3_bucket_public_access_block",
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_lifecycle_configuration",
        "aws_ecr_repository",
        "aws_iam_role",
        "aws_iam_role_policy",
        "aws_iam_policy",
    ):
        assert kind in resources, kind
    text = (INFRA / "terraform" / "main.tf").read_text()
    assert "job-role-policy.json.tpl" in text and "submitter-policy.json.tpl" in text
    assert "AmazonBraketFullAccess" not in text
    for name in VARS:
        assert name in text  # every template variable is supplied


def iam_calls(entry: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """The IAM actions (with resource and condition context) a journal entry needed."""
    service, operation, method = entry["service"], entry["operation"], entry["method"]
    query = parse_qs(entry.get("query", ""), keep_blank_values=True)
    if service == "braket":
        arn = (
            unquote(entry["path"].split("/", 2)[2].removesuffix("/cancel"))
            if entry["path"].count("/") >= 2
            else ""
        )
        resource = (
            arn
            if arn.startswith("arn:")
            # CreateJob and CreateQuantumTask are evaluated on their device (here SV1).
            else {"CreateJob": SV1, "CreateQuantumTask": SV1}.get(operation, "*")
        )
        calls = [(f"braket:{operation}", resource, {})]
        if operation == "CreateJob":
            calls.append(("iam:PassRole", ROLE, {"iam:PassedToService": "braket.amazonaws.com"}))
        return calls
    if service == "s3":
        bucket, _, key = entry["path"].lstrip("/").partition("/")
        if not key:
            prefix = query.get("prefix", [""])[0]
            if method == "POST" and "delete" in query:
                return [("s3:DeleteObject", f"arn:aws:s3:::{bucket}/covalent-braket/x", {})]
            return [
                ("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": prefix} if prefix else {})
            ]
        action = {
            "GET": "s3:GetObject",
            "HEAD": "s3:GetObject",
            "PUT": "s3:PutObject",
            "POST": "s3:PutObject",
            "DELETE": "s3:DeleteObject",
        }[method]
        return [(action, f"arn:aws:s3:::{bucket}/{key}", {})]
    if service == "servicequotas":  # the executor sizes its job slots by the braket quotas
        quota = f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:braket/L-65BEB721"
        return [(f"servicequotas:{operation}", quota, {})]
    if service == "sts" and operation == "GetCallerIdentity":
        return []  # needs no permission
    if service == "iam":
        return [(f"iam:{operation}", ROLE, {})]
    if service == "ecr":
        return [(f"ecr:{operation}", REPOSITORY_ARN, {})]
    if service == "logs":
        return [
            (f"logs:{operation}", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/braket/jobs", {})
        ]
    raise AssertionError(f"unmapped call {entry}")


def quantum_electron() -> float:
    import os

    from braket.aws import AwsDevice
    from braket.circuits import Circuit

    device = AwsDevice(os.environ["AMZN_BRAKET_DEVICE_ARN"])
    counts = device.run(Circuit().x(0), shots=10).result().measurement_counts
    return counts["1"] / 10


def test_every_call_of_a_real_task_is_granted_to_the_principal_that_made_it(aws: Any) -> None:
    aws.control.clear_journal()
    assert run(hosted(braket_job_execution_role_name=ROLE), quantum_electron) == 1.0
    wait_for_cleanups()  # the clean-up runs after the result is returned
    journal = aws.control.journal()
    submitter, job = CLIENT_ACCESS_KEY, JOB_ACCESS_KEY
    by_principal = {submitter: policy("submitter-policy"), job: policy("job-role-policy")}
    needed: dict[str, set[str]] = {submitter: set(), job: set()}
    for entry in journal:
        document = by_principal[entry["accessKeyId"]]
        for action, resource, context in iam_calls(entry):
            needed[entry["accessKeyId"]].add(action)
            assert is_allowed(document, action, resource, context), (
                entry["accessKeyId"],
                action,
                resource,
            )
    assert {
        "braket:CreateJob",
        "braket:GetJob",
        "iam:PassRole",
        "s3:PutObject",
        "s3:GetObject",
        "s3:DeleteObject",
    } <= needed[submitter]
    assert {
        "braket:CreateQuantumTask",
        "braket:GetQuantumTask",
        "s3:GetObject",
        "s3:PutObject",
    } <= needed[job]
    print({principal: sorted(actions) for principal, actions in needed.items()})


def test_with_a_kms_key_every_call_of_a_task_is_granted_on_that_key(aws: Any) -> None:
    from covalent_braket_plugin import policies

    key_arn = aws.control.client("kms").create_key()["KeyMetadata"]["Arn"]
    variables = policies.Variables(
        "aws", REGION, ACCOUNT, BUCKET, ROLE, REPOSITORY_ARN, kms_key_arn=key_arn
    )
    documents = policies.documents(variables)
    aws.control.clear_journal()
    executor = hosted(braket_job_execution_role_name=ROLE, kms_key_id=key_arn)
    payload = b"x" * (9 * 1024 * 1024)  # beyond 8 MiB: a multipart upload beside the runner
    assert run(executor, lambda data: len(data), payload) == len(payload)
    wait_for_cleanups()
    by_principal = {
        CLIENT_ACCESS_KEY: documents[policies.SUBMITTER],
        JOB_ACCESS_KEY: documents[policies.JOB_ROLE],
    }
    asked: dict[str, set[str]] = {CLIENT_ACCESS_KEY: set(), JOB_ACCESS_KEY: set()}
    for entry in aws.control.journal():
        if entry.get("accessKeyId") not in by_principal:
            continue
        document = by_principal[entry["accessKeyId"]]
        for action, resource, context in iam_calls(entry) + kms_calls(entry, key_arn):
            assert is_allowed(document, action, resource, context), (action, resource, entry)
            if action.startswith("kms:"):
                asked[entry["accessKeyId"]].add(action)
                other = key_arn.replace(key_arn.rsplit("/", 1)[-1], "another-key")
                assert not is_allowed(document, action, other, context)  # that key only
    assert asked[CLIENT_ACCESS_KEY] == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert "kms:GenerateDataKey" in asked[JOB_ACCESS_KEY]  # the runner writes its result


def test_without_a_kms_key_no_kms_action_is_granted() -> None:
    from covalent_braket_plugin import policies

    variables = policies.Variables("aws", REGION, ACCOUNT, BUCKET, ROLE, REPOSITORY_ARN)
    for document in policies.documents(variables).values():
        actions = json.dumps([s["Action"] for s in document["Statement"]])
        assert "kms:" not in actions
    terraform = (INFRA / "terraform" / "main.tf").read_text()
    assert 'var.kms_key_arn == "" ? 0 : 1' in terraform  # the KMS policy only with a key


def test_emulator_enforces_the_submitter_policy_on_braket_calls(aws: Any) -> None:
    aws.control.enforce_policy(policy("submitter-policy"))
    assert run(hosted(braket_job_execution_role_name=ROLE), lambda: "allowed") == "allowed"

    narrowed = policy("submitter-policy")
    narrowed["Statement"] = [
        statement
        for statement in narrowed["Statement"]
        if statement["Sid"] != "CreateJobsOnDevices"
    ]
    from covalent_braket_plugin import results, usage
    from covalent_braket_plugin.testing import provision

    # The first task's clean-up and usage.json land in the background: before the reset, or
    # they would land in the bucket made anew below.
    results.wait_for_cleanups()
    usage.wait_for_accounts()
    aws.control.reset()

    provision(BUCKET, ROLE, IMAGE, client=aws.control.client)
    aws.control.enforce_policy(narrowed)
    with pytest.raises(AwsError) as info:
        run(hosted(braket_job_execution_role_name=ROLE), lambda: "denied")
    assert info.value.code == "AccessDeniedException" and "braket:CreateJob" in str(info.value)
    assert aws.braket.search_jobs(filters=[])["jobs"] == []
    assert keys(aws) == []


def test_the_terraform_job_role_is_one_braket_can_assume() -> None:
    """Braket is not documented to send aws:SourceAccount or aws:SourceArn when it assumes the
    job role: a trust policy that requires one fails every job."""
    import json
    import re

    import hcl2

    from covalent_braket_plugin.emulator.aws_services.role_trust import trusts_braket

    with open(INFRA / "terraform" / "main.tf", encoding="utf-8") as handle:
        parsed = hcl2.load(handle)
    [role] = [r['"aws_iam_role"']['"job"'] for r in parsed["resource"] if '"aws_iam_role"' in r]
    hcl = role["assume_role_policy"].removeprefix("${jsonencode(").removesuffix(")}")
    as_json = re.sub(r'(?<=[{,])\s*"?([\w:]+)"?\s*=', r'"\1":', hcl)
    as_json = re.sub(r"(?<=: )(data\.[\w.]+)", r'"\1"', as_json)  # references, as strings
    document = json.loads(as_json)
    assert document["Statement"][0]["Principal"] == {"Service": "braket.amazonaws.com"}
    assert trusts_braket(document)


DM1 = "arn:aws:braket:::device/quantum-simulator/amazon/dm1"


def test_the_job_role_creates_quantum_tasks_only_on_its_devices_and_writes_only_results() -> None:
    """A job's code (a compromised dependency, another user's electron) may not run tasks on
    a device the role was not made for, nor plant an input or runner another job would run."""
    document = policy("job-role-policy")
    assert is_allowed(document, "braket:CreateQuantumTask", SV1, {})
    assert not is_allowed(document, "braket:CreateQuantumTask", DM1, {})
    assert not is_allowed(document, "braket:CreateQuantumTask", "*", {})
    attempt = f"arn:aws:s3:::{BUCKET}/covalent-braket/other-dispatch/node-3/attempt-0"
    written_by_jobs = ("result.pkl", "output/model.tar.gz", "checkpoints/step-1.json")
    for written in (*written_by_jobs, "done.json", "closed.json"):
        assert is_allowed(document, "s3:PutObject", f"{attempt}/{written}", {}), written
    for planted in ("runner.tar.gz", "input.pkl", "usage.json", "cancels/0a1b", "more/000001.json"):
        assert not is_allowed(document, "s3:PutObject", f"{attempt}/{planted}", {}), planted
    assert is_allowed(document, "s3:GetObject", f"{attempt}/input.pkl", {})


def task_on_another_device() -> str:
    from botocore.exceptions import ClientError
    from braket.aws import AwsDevice
    from braket.circuits import Circuit

    try:
        AwsDevice(DM1).run(Circuit().x(0), shots=10)
    except ClientError as exc:
        return exc.response["Error"]["Code"]
    return "created"


def test_emulator_enforces_the_job_role_policy_on_a_jobs_quantum_tasks(aws: Any) -> None:
    aws.control.enforce_policy(policy("job-role-policy"), access_key_id=JOB_ACCESS_KEY)
    executor = hosted(braket_job_execution_role_name=ROLE)
    assert run(executor, quantum_electron) == 1.0  # on the job's own device (SV1)
    assert run(executor, task_on_another_device) == "AccessDeniedException"
    assert not aws.braket.search_quantum_tasks(
        filters=[{"name": "deviceArn", "operator": "EQUAL", "values": [DM1]}]
    )["quantumTasks"]
