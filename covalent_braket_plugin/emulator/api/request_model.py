"""Every Braket request checked against the API's own model first, as the service checks it.

botocore ships Braket's service model (``braket/2019-09-01``): each operation's members, their
types, which are required, lengths, ranges, enums and patterns. Clients check only some of it
(and not at all with ``parameter_validation=False``, or when built by hand); the service checks
all of it and answers ``ValidationException``. So does the emulator, for the members of a
request's JSON body and query string (a pattern Python's ``re`` cannot read is not checked;
the ARNs in the path are the operations' to look up): once the request is routed and admitted
by the quotas, before it is authorised or handled (see
:class:`~covalent_braket_plugin.emulator.api.responses.BraketResponses`). A member sent as null
counts as left out (a required one as missing). The rules in :mod:`.rules` may then rely on
every member having its model's type and constraints, and say only what the model cannot.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from ..exceptions import ValidationException


@functools.lru_cache(maxsize=1)
def _model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("braket")


@functools.lru_cache(maxsize=64)
def _pattern(text: str) -> re.Pattern[str] | None:
    try:
        return re.compile(text)
    except re.error:  # a pattern Python's re cannot read is not checked here
        return None


def check_request(operation: str, body: dict[str, Any], query: dict[str, list[str]]) -> None:
    """Check a request's body and query string against ``operation``'s input shape.

    Raises:
        ValidationException: naming the member, its value and the constraint, as AWS does.
    """
    shape = _model().operation_model(operation).input_shape
    if shape is None:
        return
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        if location == "querystring":
            key = member.serialization.get("name", name)
            if key in query:
                values = query[key]
                _check(member, values if member.type_name == "list" else values[0], key)
        elif location is None and name in body and body[name] is not None:
            _check(member, body[name], name)
    for name in shape.required_members:
        member = shape.members[name]
        if member.serialization.get("location") is None and body.get(name) is None:
            _fail(name, None, "Member must not be null")


def _fail(path: str, value: Any, constraint: str) -> None:
    shown = repr(value)
    if len(shown) > 100:
        shown = shown[:97] + "..."
    raise ValidationException(
        f"1 validation error detected: Value {shown} at '{path}' failed to satisfy "
        f"constraint: {constraint}"
    )


def _check(shape: Any, value: Any, path: str) -> None:
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        _check_structure(shape, value, path)
    elif kind == "list":
        if not isinstance(value, list):
            _fail(path, value, "Member must be a list")
        _bounds(path, value, len(value), meta, "length")
        for index, item in enumerate(value):
            _check(shape.member, item, f"{path}.{index + 1}.member")
    elif kind == "map":
        if not isinstance(value, dict):
            _fail(path, value, "Member must be a map")
        _bounds(path, value, len(value), meta, "length")
        for key, item in value.items():
            _check(shape.key, key, f"{path}.key")
            _check(shape.value, item, f"{path}.{key}")
    elif kind == "string":
        _check_string(shape, value, path)
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, value, "Member must be an integer")
        _bounds(path, value, value, meta, "value")
    elif kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(path, value, "Member must be a number")
    elif kind == "boolean":
        if not isinstance(value, bool):
            _fail(path, value, "Member must be a boolean")
    elif kind == "timestamp" and (
        isinstance(value, bool) or not isinstance(value, (str, int, float))
    ):
        _fail(path, value, "Member must be a timestamp")


def _check_structure(shape: Any, value: Any, path: str) -> None:
    if not isinstance(value, dict):
        _fail(path, value, "Member must be a structure")
    given = [name for name in shape.members if value.get(name) is not None]
    if shape.metadata.get("union") and len(given) > 1:
        _fail(path, value, "Member must have exactly one member set")
    for name in given:
        _check(shape.members[name], value[name], f"{path}.{name}")
    for name in shape.required_members:
        if value.get(name) is None:
            _fail(f"{path}.{name}", None, "Member must not be null")


def _check_string(shape: Any, value: Any, path: str) -> None:
    if not isinstance(value, str):
        _fail(path, value, "Member must be a string")
    meta = shape.metadata
    _bounds(path, value, len(value), meta, "length")
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        _fail(path, value, f"Member must satisfy enum value set: [{', '.join(enum)}]")
    pattern = _pattern(meta["pattern"]) if "pattern" in meta else None
    if pattern is not None and not pattern.fullmatch(value):
        _fail(path, value, f"Member must satisfy regular expression pattern: {meta['pattern']}")
    if shape.serialization.get("jsonvalue"):
        try:
            json.loads(value)
        except ValueError:
            _fail(path, value, "Member must be a JSON document")


def _bounds(path: str, value: Any, measure: int, meta: dict[str, Any], what: str) -> None:
    low, high = meta.get("min"), meta.get("max")
    if low is not None and measure < low:
        _fail(path, value, f"Member must have {what} greater than or equal to {low}")
    if high is not None and measure > high:
        _fail(path, value, f"Member must have {what} less than or equal to {high}")
