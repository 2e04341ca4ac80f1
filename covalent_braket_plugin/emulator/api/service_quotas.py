"""Service Quotas for Braket: ``GetServiceQuota`` and ``ListServiceQuotas`` of service code
``braket`` answer with the job quotas the emulator enforces for the caller's account and Region
(see :mod:`.job_quotas`). Service Quotas speaks JSON 1.1 (``X-Amz-Target:
ServiceQuotasV20190624.<operation>``); every other request of it, and every other service
code, is moto's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ...service import SERVICE_QUOTAS_CODE
from ..settings import RuntimeSettings
from ..wsgi import StartResponse
from .job_quotas import service_quotas

TARGET_PREFIX = "ServiceQuotasV20190624."
_PAGE_MAX = 100


def answer(
    body: bytes,
    target: str,
    where: tuple[str, str],
    settings: RuntimeSettings,
    respond: StartResponse,
) -> Iterable[bytes] | None:
    """Service Quotas' answer to a request about Braket's job quotas, or None for any other
    request (moto answers it).

    Args:
        body: The request's body (JSON).
        target: Its ``X-Amz-Target`` header.
        where: The caller's account and the Region the request was signed for.
        settings: The emulator's settings (the quotas it enforces).
        respond: The WSGI ``start_response``.
    """
    operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
    if operation not in ("GetServiceQuota", "ListServiceQuotas"):
        return None
    try:
        request = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(request, dict) or request.get("ServiceCode") != SERVICE_QUOTAS_CODE:
        return None
    quotas = service_quotas(settings, *where)
    code = request.get("QuotaCode")
    if code is not None:
        quotas = [quota for quota in quotas if quota["QuotaCode"] == code]
    if operation == "GetServiceQuota":
        if not quotas:
            message = f"The quota {code} of service {SERVICE_QUOTAS_CODE} does not exist"
            return _reply(respond, 400, {"__type": "NoSuchResourceException", "message": message})
        return _reply(respond, 200, {"Quota": quotas[0]})
    return _page(request, quotas, respond)


def _page(
    request: dict[str, Any], quotas: list[dict[str, Any]], respond: StartResponse
) -> Iterable[bytes]:
    """``ListServiceQuotas``'s page of ``quotas`` (``MaxResults``, ``NextToken``)."""
    token = request.get("NextToken") or "0"
    size = request.get("MaxResults") or _PAGE_MAX
    if not str(token).isdigit() or int(token) > len(quotas):
        error = {"__type": "InvalidPaginationTokenException", "message": "Invalid NextToken"}
        return _reply(respond, 400, error)
    if not isinstance(size, int) or not 1 <= size <= _PAGE_MAX:
        message = f"MaxResults must be between 1 and {_PAGE_MAX}"
        return _reply(respond, 400, {"__type": "IllegalArgumentException", "message": message})
    start = int(token)
    page: dict[str, Any] = {"Quotas": quotas[start : start + size]}
    if start + size < len(quotas):
        page["NextToken"] = str(start + size)
    return _reply(respond, 200, page)


def _reply(respond: StartResponse, status: int, body: dict[str, Any]) -> Iterable[bytes]:
    payload = json.dumps(body).encode()
    respond(
        f"{status} {'OK' if status == 200 else 'Bad Request'}",
        [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(payload)))],
    )
    return [payload]
