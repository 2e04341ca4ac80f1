"""Searches with filters and paging, as the Braket service answers ``SearchJobs``,
``SearchQuantumTasks`` and ``SearchDevices``."""

from __future__ import annotations

import base64
from typing import Any

from ..service import SEARCH_PAGE_MAX, timestamp
from .exceptions import ValidationException
from .validation import int_in


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


#: SearchJobs filters on what the service filters on: jobArn and createdAt.
JOB_FILTERS: dict[str, Any] = {
    "jobArn": lambda j: j.arn,
    "createdAt": lambda j: timestamp(j.created_at),
}
TASK_FILTERS: dict[str, Any] = {
    "quantumTaskArn": lambda t: t.arn,
    "status": lambda t: t.status,
    "deviceArn": lambda t: t.request["deviceArn"],
    "jobArn": lambda t: t.job_arn or "",
    "createdAt": lambda t: timestamp(t.created_at),
    "tags.<key>": None,
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
    int_in("maxResults", max_results, 1, SEARCH_PAGE_MAX)
    start = _decode_token(body.get("nextToken"))
    result: dict[str, Any] = {key: [render(item) for item in items[start : start + max_results]]}
    if start + max_results < len(items):
        result["nextToken"] = _encode_token(start + max_results)
    return result


def search(
    records: list[Any], body: dict[str, Any], fields: dict[str, Any], key: str, render: Any
) -> dict[str, Any]:
    filters = body.get("filters") or []
    if not isinstance(filters, list):
        raise ValidationException("filters must be a list")
    records = sorted(records, key=lambda r: r.created_at)
    matched = [r for r in records if all(_matches(r, spec, fields) for spec in filters)]
    return page(matched, body, key, render)


def _matches(record: Any, spec: dict[str, Any], fields: dict[str, Any]) -> bool:
    if not isinstance(spec, dict):
        raise ValidationException("each filter must be an object with name, values and operator")
    name = spec.get("name")
    values = spec.get("values") or []
    operator = spec.get("operator")
    if isinstance(name, str) and name.startswith("tags.") and "tags.<key>" in fields:
        actual = record.tags.get(name[5:])
        if actual is None:
            return False
    elif name in fields:
        actual = fields[name](record)
    else:
        raise ValidationException(
            f"filter name {name!r} is not supported; use one of " + ", ".join(fields)
        )
    if not values or len(values) > 10:
        raise ValidationException(f"filter {name!r} takes 1 to 10 values")
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
    if operator == "BETWEEN":
        if len(values) != 2:
            raise ValidationException("BETWEEN takes two values")
        return values[0] <= actual <= values[1]
    raise ValidationException(f"filter operator {operator!r} is not supported")
