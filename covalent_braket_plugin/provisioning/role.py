"""``setup``'s job role: Braket's trust (an existing role without it is refused, not
changed) and the least-privilege inline policy of :mod:`covalent_braket_plugin.policies`;
the submitter's policy, filled for what was made, goes into the outcome."""

from __future__ import annotations

import dataclasses
import json
import urllib.parse

from .. import aws, policies
from ..config import InvalidSettingError
from .steps import Maker, current


def make_role(maker: Maker, variables: policies.Variables) -> str:
    """The role and its inline policy; returns the role's ARN."""
    iam, name = maker.clients.iam, maker.options.role_name
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
    maker.step(
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
    variables = dataclasses.replace(variables, job_role_arn=arn)
    maker.outcome.submitter_policy = policies.documents(variables)[policies.SUBMITTER]
    found = current(
        role is not None,
        "NoSuchEntity",
        iam,
        "get_role_policy",
        RoleName=name,
        PolicyName=policies.JOB_ROLE_POLICY_NAME,
    )
    now = found["PolicyDocument"] if found is not None else None
    if isinstance(now, str):
        now = json.loads(urllib.parse.unquote(now))
    # A bucket given to the role before keeps its grants: the role is shared by every bucket
    # setup was run for, and a server may still use the others.
    wanted = policies.job_role_policy(variables, policies.granted_buckets(now))
    maker.step(
        "role",
        f"inline policy {policies.JOB_ROLE_POLICY_NAME}",
        now != wanted,
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
