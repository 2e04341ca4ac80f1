"""Searches with filters and paging, as the Braket service answers ``SearchJobs``,
``SearchQuantumTasks`` and ``SearchDevices``."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...service import SEARCH_PAGE_MAX, timestamp
from ..exceptions import ValidationException


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind != "offset":
            raise ValueError(kind)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise ValidationException(f"nextToken {token!r} is invalid") from None


_ALL = ("EQUAL", "CONTAINS", "LT", "LTE", "GT", "GTE", "BETWEEN")
_TIMES = ("EQUAL", "LT", "LTE", "GT", "GTE", "BETWEEN")


@dataclass(frozen=True)
class Field:
    """A field a search filters on: how to read it, with which operators, how many values
    (the service's SearchJobs takes one, two for BETWEEN), and whether it stands alone."""

    read: Callable[[Any], Any]
    operators: tuple[str, ...] = _ALL
    one_value: bool = False
    alone: bool = False


#: SearchJobs filters, as the service documents them.
JOB_FILTERS: dict[str, Field] = {
    "jobArn": Field(lambda j: j.arn, ("EQUAL",), one_value=True, alone=True),
    "jobName": Field(lambda j: j.name, ("EQUAL", "CONTAINS"), one_value=True),
    "deviceArn": Field(lambda j: j.device, ("EQUAL",), one_value=True),
    "createdAt": Field(lambda j: timestamp(j.created_at), _TIMES, one_value=True),
}
TASK_FILTERS: dict[str, Field] = {
    "quantumTaskArn": Field(lambda t: t.arn),
    "status": Field(lambda t: t.status),
    "deviceArn": Field(lambda t: t.request["deviceArn"]),
    "jobArn": Field(lambda t: t.job_arn or ""),
    "createdAt": Field(lambda t: timestamp(t.created_at)),
    "tags.<key>": Field(lambda t: None),
}
DEVICE_FILTERS = {
    "deviceArn": "deviceArn",
    "deviceName": "deviceName",
    "deviceType": "deviceType",
    "deviceStatus": "deviceStatus",
    "providerName": "providerName",
}


def page(items: list[Any], body: dict[str, Any], key: str, render: Any) -> dict[str, Any]:
    max_results = body.get("maxResults", SEARCH_PAGE_MAX)
    if max_results is None:  # the model has checked its range; it lets a null through
        raise ValidationException("maxResults must be an integer, got None")
    start = _decode_token(body.get("nextToken"))
    result: dict[str, Any] = {key: [render(item) for item in items[start : start + max_results]]}
    if start + max_results < len(items):
        result["nextToken"] = _encode_token(start + max_results)
    return result


def search(
    records: list[Any], body: dict[str, Any], fields: dict[str, Field], key: str, render: Any
) -> dict[str, Any]:
    filters = body.get("filters") or []
    if not isinstance(filters, list):
        raise ValidationException("filters must be a list")
    for spec in filters:
        field = _field(spec, fields)
        if field.alone and len(filters) > 1:
            raise ValidationException(
                f"filter {spec['name']!r} cannot be combined with other filters"
            )
    records = sorted(records, key=lambda r: r.created_at)
    matched = [r for r in records if all(_matches(r, spec, fields) for spec in filters)]
    return page(matched, body, key, render)


def _field(spec: Any, fields: dict[str, Field]) -> Field:
    if not isinstance(spec, dict):
        raise ValidationException("each filter must be an object with name, values and operator")
    name = spec.get("name")
    if isinstance(name, str) and name.startswith("tags.") and "tags.<key>" in fields:
        return fields["tags.<key>"]
    if name not in fields:
        raise ValidationException(
            f"filter name {name!r} is not supported; use one of " + ", ".join(fields)
        )
    return fields[name]


def _matches(record: Any, spec: dict[str, Any], fields: dict[str, Field]) -> bool:
    field = _field(spec, fields)
    name = spec["name"]
    values = spec.get("values") or []
    operator = spec.get("operator")
    if operator not in field.operators:
        raise ValidationException(
            f"filter {name!r} supports the operators {', '.join(field.operators)}, not {operator!r}"
        )
    wanted = 2 if operator == "BETWEEN" else 1
    if (field.one_value and len(values) != wanted) or not 1 <= len(values) <= 10:
        count = "two values" if wanted == 2 else "one value"
        raise ValidationException(f"filter {name!r} with {operator} takes {count}")
    if name.startswith("tags.") and "tags.<key>" in fields:
        actual = record.tags.get(name[5:])
        if actual is None:
            return False
    else:
        actual = field.read(record)
    if operator == "EQUAL":
        return actual in values
    if operator == "CONTAINS":
        return any(v in actual for v in values)
    if operator in ("LT", "LTE", "GT", "GTE"):
        ref = values[0]
        return {
            "LT": actual < ref,
            "LTE": actual <= ref,
            "GT": actual > ref,
            "GTE": actual >= ref,
        }[operator]
    if len(values) != 2:  # BETWEEN
        raise ValidationException("BETWEEN takes two values")
    return values[0] <= actual <= values[1]
