"""IAM ``SimulatePrincipalPolicy``, which moto lacks: would this principal's policies allow
these actions on these resources?

``covalent-braket doctor`` asks it, as it would ask IAM, whether the job role may do what a
job does and the caller what the executor does. The principal (``PolicySourceArn``) is an IAM
user or role, or a role's STS session (``assumed-role/...``, answered for its role): its
policies are its inline and attached ones in moto's IAM (a user's groups' too), evaluated by
:mod:`.iam_policies` with the request's context entries. An action is allowed on a resource
when one of them allows it and none denies it explicitly; the result names the policies it
rests on (``MatchedStatements``: the denying ones for ``explicitDeny``). A role ARN that
moto's IAM does not know, or that lacks the role's path, is ``NoSuchEntity``, as IAM answers.
Any other source (moto's default identity, the run's credentials, a user or a session's role
moto's IAM does not know) is an emulator client: the policy the control API enforces on the
calling access key (``POST /_emulator/iam``) decides, else every permission is allowed, as the
emulator grants it. Only identity-based policies are evaluated, as the API does without
``ResourcePolicy``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

from ..wsgi import StartResponse
from .iam_policies import is_allowed, statement_allows
from .identity import Scope

ACTION = "SimulatePrincipalPolicy"
_NS = "https://iam.amazonaws.com/doc/2010-05-08/"


def _members(form: dict[str, list[str]], name: str) -> list[str]:
    found = []
    for key, values in form.items():
        match = re.fullmatch(rf"{name}\.member\.(\d+)", key)
        if match:
            found.append((int(match.group(1)), values[0]))
    return [value for _, value in sorted(found)]


def _context(form: dict[str, list[str]]) -> dict[str, str]:
    context = {}
    for key, values in form.items():
        match = re.fullmatch(r"ContextEntries\.member\.(\d+)\.ContextKeyName", key)
        if match:
            number = match.group(1)
            given = _members(form, f"ContextEntries.member.{number}.ContextKeyValues")
            if given:
                context[values[0]] = given[0]
    return context


def _document(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(unquote(text))


def _policies_of(arn: str) -> list[tuple[str, str, dict[str, Any]]] | None:
    """The identity-based policies of the IAM user or role ``arn`` names (a role's for its STS
    session), each as (its id, its type, its document), the ids and types as IAM reports
    them in ``MatchedStatements``; None when it names no user or role that moto's IAM has.
    A role's ARN must name its path as IAM has it (``role/aws-reserved/sso.amazonaws.com/...``):
    one rebuilt without it names no role."""
    from moto.iam.models import iam_backends

    parts = arn.split(":")
    if len(parts) < 6:
        return None
    account, partition, resource = parts[4], parts[1], parts[5]
    backend = iam_backends[account][partition]
    session = resource.startswith("assumed-role/")
    if session:  # an STS session: its role's policies
        resource = "role/" + resource.split("/")[1]
    kind, _, name = resource.partition("/")
    try:
        if kind == "role":
            principal = backend.get_role(name.rsplit("/", 1)[-1])
            if not session and principal.arn != arn:
                return None
            groups: list[Any] = []
            own = "role"
        elif kind == "user":
            principal = backend.get_user(name.rsplit("/", 1)[-1])
            groups = list(backend.get_groups_for_user(principal.name))
            own = "user"
        else:
            return None
    except Exception:
        return None
    documents = []
    for holder, inline_type in [(principal, own)] + [(group, "group") for group in groups]:
        for policy_name, text in getattr(holder, "policies", {}).items():
            documents.append((policy_name, inline_type, _document(text)))
        for managed in getattr(holder, "managed_policies", {}).values():
            kind_of = "aws-managed" if ":iam::aws:policy/" in managed.arn else "user-managed"
            documents.append((managed.arn, kind_of, _document(managed.default_version.document)))
    return documents


def answer(
    body: bytes,
    scope: Scope,
    enforced: dict[str, dict[str, Any]],
    start_response: StartResponse,
) -> Iterable[bytes] | None:
    """The reply to a ``SimulatePrincipalPolicy`` request; None for any other IAM request."""
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    if form.get("Action", [""])[0] != ACTION:
        return None
    source = form.get("PolicySourceArn", [""])[0]
    actions = _members(form, "ActionNames")
    resources = _members(form, "ResourceArns") or ["*"]
    context = _context(form)
    documents = _policies_of(source)
    if documents is None and ":iam::" in source and source.split(":")[5].startswith("role/"):
        return _error(
            start_response, "NoSuchEntity", f"The role with ARN {source} cannot be found."
        )
    results = []
    for action in actions:
        for resource in resources:
            if documents is None:  # an emulator client: its enforced policy, or everything
                policy = enforced.get(scope.access_key)
                allowed = policy is None or is_allowed(policy, action, resource, context)
            else:
                results.append((action, resource, *_decide(documents, action, resource, context)))
                continue
            results.append((action, resource, "allowed" if allowed else "implicitDeny", []))
    members = "".join(
        "<member>"
        f"<EvalActionName>{escape(action)}</EvalActionName>"
        f"<EvalResourceName>{escape(resource)}</EvalResourceName>"
        f"<EvalDecision>{decision}</EvalDecision>"
        f"<MatchedStatements>{''.join(_matched(*each) for each in matched)}</MatchedStatements>"
        "<MissingContextValues/>"
        "</member>"
        for action, resource, decision, matched in results
    )
    xml = (
        f'<SimulatePrincipalPolicyResponse xmlns="{_NS}"><SimulatePrincipalPolicyResult>'
        f"<IsTruncated>false</IsTruncated><EvaluationResults>{members}</EvaluationResults>"
        "</SimulatePrincipalPolicyResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        "</SimulatePrincipalPolicyResponse>"
    ).encode()
    start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(xml)))])
    return [xml]


def _decide(
    documents: list[tuple[str, str, dict[str, Any]]],
    action: str,
    resource: str,
    context: dict[str, str],
) -> tuple[str, list[tuple[str, str]]]:
    """IAM's decision and the statements it rests on (policy id and type): an explicit deny
    wins, with the denying policies named; else an allow, with the allowing ones; else an
    implicit deny, which no statement matches."""
    denying = [(pid, kind) for pid, kind, d in documents if _denies(d, action, resource, context)]
    if denying:
        return "explicitDeny", denying
    allowing = [
        (pid, kind) for pid, kind, d in documents if is_allowed(d, action, resource, context)
    ]
    return ("allowed", allowing) if allowing else ("implicitDeny", [])


def _matched(policy_id: str, policy_type: str) -> str:
    return (
        f"<member><SourcePolicyId>{escape(policy_id)}</SourcePolicyId>"
        f"<SourcePolicyType>{escape(policy_type)}</SourcePolicyType></member>"
    )


def _denies(document: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    """Whether a statement of ``document`` denies the action explicitly (which no other
    document's allow overrides)."""
    return any(
        statement.get("Effect") == "Deny" and statement_allows(statement, action, resource, context)
        for statement in _as_list(document.get("Statement"))
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else ([] if value is None else [value])


def _error(start_response: StartResponse, code: str, message: str) -> Iterable[bytes]:
    xml = (
        f'<ErrorResponse xmlns="{_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()
    start_response(
        "404 Not Found", [("Content-Type", "text/xml"), ("Content-Length", str(len(xml)))]
    )
    return [xml]
