"""Hundreds of malformed and hostile Braket requests, generated from the API's own model:
each is answered with the service's 4xx error shape, never a 5xx, and the emulator goes on."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from covalent_braket_plugin.testing import signed_headers
from tests.conftest import BUCKET

pytestmark = pytest.mark.timeout(600)

BAD_ARNS = [
    "x",
    "arn:aws:braket:us-east-1:123456789012:job/" + "a" * 5000,
    "../../etc/passwd",
    "arn:aws:braket:::device/../../../x",
    "\x00",
    "arn:aws:braket:us-east-1:123456789012:quantum-task/",
    "%",
    "arn:aws:braket:us-east-1:123456789012:job/../../../x",
    "arn:aws:iam::123456789012:role/not-braket",
    "arn:aws:braket:us-west-2:999999999999:job/someone-elses",
    "arn:aws:braket:us-east-1:123456789012:job/\u2603",
    " ",
]
#: A value of another type for each kind of member.
WRONG_TYPE = {
    "string": 12345,
    "integer": "twelve",
    "long": [1],
    "boolean": "yes",
    "list": {"not": "a list"},
    "map": ["not", "a", "map"],
    "structure": "not a structure",
    "double": "pi",
    "timestamp": {"when": "now"},
}


def model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("braket")


def plausible(shape: Any, depth: int = 0) -> Any:
    """A value of the member's type (not necessarily valid for the service)."""
    kind = shape.type_name
    if kind == "structure":
        if depth > 4:
            return {}
        return {
            name: plausible(m, depth + 1)
            for name, m in shape.members.items()
            if name in shape.required_members
        }
    if kind == "list":
        return [plausible(shape.member, depth + 1)]
    if kind == "map":
        return {"k": plausible(shape.value, depth + 1)}
    if kind in ("integer", "long"):
        return 1
    if kind in ("double", "float"):
        return 1.0
    if kind == "boolean":
        return True
    enum = getattr(shape, "enum", None)
    return enum[0] if enum else "x"


def requests() -> Iterator[tuple[str, str, str, bytes, str]]:
    """(method, raw path, query, body, what) for every case."""
    service = model()
    for name in service.operation_names:
        operation = service.operation_model(name)
        method = operation.http["method"]
        uri = operation.http["requestUri"].split("?", 1)[0]
        shape = operation.input_shape
        members = shape.members if shape is not None else {}
        path_params = [n for n, m in members.items() if m.serialization.get("location") == "uri"]
        body_members = {n: m for n, m in members.items() if "location" not in m.serialization}
        valid_path = uri
        for param in path_params:
            key = members[param].serialization.get("name", param)
            valid_path = valid_path.replace(
                "{" + key + "}", quote("arn:aws:braket:us-east-1:123456789012:job/none", safe="")
            )
        base = {n: plausible(m) for n, m in body_members.items() if n in shape.required_members}
        for param in path_params:
            key = members[param].serialization.get("name", param)
            for arn in BAD_ARNS:
                path = uri.replace("{" + key + "}", quote(arn, safe=""))
                yield method, path, "", json.dumps(base).encode(), f"{name} {param}={arn[:30]!r}"
        if shape is None:
            continue
        for member_name, member in body_members.items():
            if member_name in shape.required_members:
                broken = {k: v for k, v in base.items() if k != member_name}
                yield (
                    method,
                    valid_path,
                    "",
                    json.dumps(broken).encode(),
                    f"{name} without {member_name}",
                )
            wrong = WRONG_TYPE.get(member.type_name)
            if wrong is not None:
                body = {**base, member_name: wrong}
                yield (
                    method,
                    valid_path,
                    "",
                    json.dumps(body).encode(),
                    f"{name} {member_name} wrong type",
                )
            empty = {"string": "", "list": [], "map": {}, "integer": -1, "long": -1}.get(
                member.type_name
            )
            if member.type_name == "structure":  # one level down: each member of the wrong type
                for inner_name, inner in member.members.items():
                    wrong_inner = WRONG_TYPE.get(inner.type_name)
                    if wrong_inner is None:
                        continue
                    nested = {**plausible(member), inner_name: wrong_inner}
                    body = {**base, member_name: nested}
                    what = f"{name} {member_name}.{inner_name} wrong type"
                    yield method, valid_path, "", json.dumps(body).encode(), what
            low = member.metadata.get("min")
            if empty is not None and low is not None and low > (-1 if empty == -1 else 0):
                body = {**base, member_name: empty}
                yield (
                    method,
                    valid_path,
                    "",
                    json.dumps(body).encode(),
                    f"{name} {member_name} empty",
                )
            huge = {
                "string": "x" * 100_000,
                "list": [plausible(getattr(member, "member", member))] * 5000,
                "integer": 2**70,
                "long": -(2**70),
                "map": {f"k{i}": "v" for i in range(5000)},
            }.get(member.type_name)
            if huge is not None:
                body = {**base, member_name: huge}
                yield (
                    method,
                    valid_path,
                    "",
                    json.dumps(body).encode(),
                    f"{name} {member_name} huge",
                )
        query_names = {
            m.serialization.get("name", n)
            for n, m in members.items()
            if m.serialization.get("location") == "querystring"
        }
        for query in ("additionalAttributeNames=NotAnAttribute", "tagKeys=" + "k" * 5000):
            if query.split("=", 1)[0] in query_names:
                yield method, valid_path, query, json.dumps(base).encode(), f"{name} ?{query[:30]}"
        for raw, what in (
            (b"{", "truncated JSON"),
            (b"[]", "a list"),
            (b"null", "null"),
            (b"\xff\xfe\x00", "not UTF-8"),
            (b"[" * 100_000 + b"]" * 100_000, "deep nesting"),
            (json.dumps({k: None for k in body_members}).encode(), "every member null"),
        ):
            if method in ("POST", "PUT"):
                yield method, valid_path, "", raw, f"{name} body {what}"
    for method, path in (
        ("POST", "/no-such-operation"),
        ("DELETE", "/job/x"),
        ("PATCH", "/jobs"),
        ("GET", "/" + "a" * 10_000),
        ("GET", "/job/%ZZ"),
        ("PUT", "/quantum-task/x/cancel/again"),
    ):
        yield method, path, "", b"", f"unknown {method} {path[:30]}"


def test_hostile_requests_get_the_services_4xx_error_shape_never_a_5xx(aws: Any) -> None:
    cases = list(requests())
    assert len(cases) >= 300
    address = urlsplit(aws.url)
    problems = []
    for method, path, query, body, what in cases:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        target = path + (f"?{query}" if query else "")
        connection.request(
            method,
            target,
            body=body,
            headers=signed_headers(
                method,
                f"{aws.url}{target}",
                "braket",
                body=body,
                headers={"Content-Type": "application/x-amz-json-1.1"},
            ),
        )
        response = connection.getresponse()
        payload = response.read()
        connection.close()
        error_type = response.getheader("x-amzn-ErrorType")
        try:
            message = json.loads(payload).get("message")
        except ValueError:
            message = None
        if not (400 <= response.status < 500 and error_type and message):
            problems.append((what, response.status, error_type, payload[:200]))
    assert problems == [], f"{len(problems)} of {len(cases)}: {problems[:10]}"

    # Still serving: health, and a task that runs.
    assert aws.control.health()["status"] == "ok"
    from braket.aws import AwsDevice
    from braket.circuits import Circuit

    counts = (
        AwsDevice("arn:aws:braket:::device/quantum-simulator/amazon/sv1")
        .run(Circuit().x(0), (BUCKET, "robust"), shots=5)
        .result()
        .measurement_counts
    )
    assert counts == {"1": 5}
