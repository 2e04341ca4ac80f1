"""Whether Braket could assume a job's role: the role exists (at the ARN given, path
included) and its trust policy lets ``braket.amazonaws.com`` assume it.

Braket assumes the job role when it starts the job; a role ARN that names no role (a name
without its path: ``role/NAME`` for ``role/service-role/NAME``), or a trust policy that does
not trust Braket, fails every job. The emulator refuses such a ``CreateJob`` at once. Braket
is not documented to send ``aws:SourceAccount`` or ``aws:SourceArn`` when it assumes the
role, so a trust statement that requires a condition key grants nothing here.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from ..exceptions import ValidationException
from .iam_policies import statement_allows

BRAKET = "braket.amazonaws.com"


def check_job_role(role_arn: str) -> None:
    """Raise ValidationException unless Braket could assume ``role_arn``."""
    from moto.iam.models import iam_backends

    parts = role_arn.split(":")
    account, partition = parts[4], parts[1]
    try:
        role = iam_backends[account][partition].get_role_by_arn(role_arn)
    except Exception:
        raise ValidationException(
            f"Braket cannot assume the role {role_arn}: no role has this ARN (a role's ARN "
            "includes its path, e.g. role/service-role/NAME)"
        ) from None
    if not trusts_braket(role.assume_role_policy_document):
        raise ValidationException(
            f"Braket cannot assume the role {role_arn}: its trust policy does not let "
            f"{BRAKET} call sts:AssumeRole without conditions Braket does not send"
        )


def trusts_braket(document: Any) -> bool:
    """Whether a trust policy lets Braket assume the role (no condition context)."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            document = json.loads(unquote(document))
    statements = document.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]

    def names_braket(statement: dict[str, Any]) -> bool:
        principal = statement.get("Principal", {})
        if principal == "*":
            return True
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        return BRAKET in ([services] if isinstance(services, str) else services)

    if any(
        s.get("Effect") == "Deny"
        and names_braket(s)
        and statement_allows(s, "sts:AssumeRole", "*", {})
        for s in statements
    ):
        return False
    return any(
        s.get("Effect") == "Allow"
        and names_braket(s)
        and statement_allows(s, "sts:AssumeRole", "*", {})
        for s in statements
    )
