"""Every emulated account starts onboarded: the SDK's default jobs role is there.

Opening Braket in the console makes ``service-role/AmazonBraketJobsExecutionRole`` (trusted by
Braket, with Amazon's ``AmazonBraketJobsExecutionPolicy``); ``AwsQuantumJob.create`` and
``@hybrid_job`` with no role find it by name. Braket-in-a-box's accounts have it from their
first call; ``onboarded_accounts=False`` gives a bare one.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import pytest

pytestmark = pytest.mark.timeout(180)
SV1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"


def test_an_account_starts_with_the_roles_onboarding_gives_it(aws: Any) -> None:
    iam = aws.control.client("iam")
    role = iam.get_role(RoleName="AmazonBraketJobsExecutionRole")["Role"]
    assert role["Path"] == "/service-role/"
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(unquote(trust)) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "braket.amazonaws.com"}
    attached = iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]
    inline = iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    named = [policy["PolicyName"] for policy in attached] + inline
    assert "AmazonBraketJobsExecutionPolicy" in named


def test_the_sdk_creates_a_job_with_no_role_as_its_docs_write_it(
    aws: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from braket.aws import AwsQuantumJob, AwsSession
    from braket.jobs import hybrid_job

    monkeypatch.chdir(tmp_path)  # the decorator writes its source folder here
    session = AwsSession(
        boto_session=None,
        braket_client=aws.braket,
        default_bucket="amazon-braket-covalent-tests",
    )
    session._iam = aws.control.client("iam")  # what the SDK lists roles with
    (tmp_path / "entry.py").write_text("def main():\n    print('hello')\n")
    job = AwsQuantumJob.create(
        SV1, source_module=str(tmp_path / "entry.py"), aws_session=session,
        wait_until_complete=True,
    )  # fmt: skip
    assert job.state() == "COMPLETED"
    role = aws.braket.get_job(jobArn=job.arn)["roleArn"]
    assert role.endswith(":role/service-role/AmazonBraketJobsExecutionRole")

    @hybrid_job(device=SV1, aws_session=session)
    def decorated() -> int:
        return 7

    assert decorated().result()["result"] == 7


def test_a_bare_account_has_no_default_jobs_role(aws: Any) -> None:
    """With ``onboarded_accounts`` off, an account's first call makes nothing (another account
    of the same emulator than the tests', which is onboarded already)."""
    onboarding = aws.emulator.app.onboarding
    iam = onboarding.clients.get("iam", "us-east-1", account=BARE)
    aws.settings(onboarded_accounts=False)
    onboarding.ensure(BARE)
    assert ROLE not in [role["RoleName"] for role in iam.list_roles()["Roles"]]
    aws.settings(onboarded_accounts=True)
    onboarding.ensure(BARE)
    assert ROLE in [role["RoleName"] for role in iam.list_roles()["Roles"]]


BARE = "111122223333"
ROLE = "AmazonBraketJobsExecutionRole"
