"""A small IAM policy evaluator, enough to enforce a supplied policy on Braket calls.

Supports ``Allow``/``Deny`` statements with ``Action``/``NotAction`` and ``Resource`` patterns
(``*`` and ``?`` wildcards, actions case-insensitive) and the ``StringEquals``,
``StringLike``, ``StringNotEquals`` and ``StringNotLike`` condition operators. An explicit deny
wins; otherwise an action needs an allow.
"""

from __future__ import annotations

import re
from typing import Any


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _like(pattern: str, value: str, case: bool = True) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in (conditions or {}).items():
        for key, expected in tests.items():
            actual = context.get(key)
            values = [str(v) for v in _as_list(expected)]
            if operator == "StringEquals":
                ok = actual is not None and actual in values
            elif operator == "StringLike":
                ok = actual is not None and any(_like(v, actual) for v in values)
            elif operator == "StringNotEquals":
                ok = actual is None or actual not in values
            elif operator == "StringNotLike":
                ok = actual is None or not any(_like(v, actual) for v in values)
            else:
                return False  # an operator we cannot evaluate never grants anything
            if not ok:
                return False
    return True


def statement_allows(
    statement: dict[str, Any], action: str, resource: str, context: dict[str, str]
) -> bool:
    if "Action" in statement:
        if not any(_like(p, action, case=False) for p in _as_list(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(_like(p, action, case=False) for p in _as_list(statement["NotAction"])):
            return False
    else:
        return False
    resources = _as_list(statement.get("Resource", "*"))
    if not any(_like(p, resource) for p in resources):
        return False
    return _conditions_hold(statement.get("Condition") or {}, context)


def is_allowed(
    policy: dict[str, Any], action: str, resource: str, context: dict[str, str] | None = None
) -> bool:
    """Whether ``policy`` allows ``action`` on ``resource`` (explicit deny wins)."""
    context = context or {}
    statements = _as_list(policy.get("Statement"))
    if any(
        s.get("Effect") == "Deny" and statement_allows(s, action, resource, context)
        for s in statements
    ):
        return False
    return any(
        s.get("Effect") == "Allow" and statement_allows(s, action, resource, context)
        for s in statements
    )


def authorize(policy: dict[str, Any], operation: str, request: Any) -> None:
    """Raise AccessDeniedException unless ``policy`` allows the Braket ``operation`` of
    ``request`` (and, for CreateJob, passing its role to Braket).

    The resource is what IAM evaluates the action on: the ARN in the path, if any; for
    ``CreateJob`` and ``CreateQuantumTask``, which have no resource type of their own, the
    device (Braket's guidance restricts them by device ARN, so a statement on ``job/*`` grants
    neither); ``*`` otherwise.
    """
    from ..exceptions import AccessDeniedException

    device = {
        "CreateJob": (request.body.get("deviceConfig") or {}).get("device"),
        "CreateQuantumTask": request.body.get("deviceArn"),
    }.get(operation)
    resource = request.params.get("arn") or device or "*"
    checks = [(f"braket:{operation}", str(resource), {})]
    if operation == "CreateJob":
        role = str(request.body.get("roleArn", ""))
        checks.append(("iam:PassRole", role, {"iam:PassedToService": "braket.amazonaws.com"}))
    for action, target, context in checks:
        if not is_allowed(policy, action, target, context):
            raise AccessDeniedException(
                f"User is not authorized to perform: {action} on resource: {target}"
            )
