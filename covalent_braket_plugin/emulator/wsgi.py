"""JSON over WSGI, as the Braket service and the control API speak it."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any

from .exceptions import BraketError, ValidationException

#: A WSGI ``start_response`` (PEP 3333), as every handler of the emulator's is handed one.
StartResponse = Callable[..., Any]
#: The largest request body read.
MAX_BODY = 16 * 1024 * 1024


def json_response(
    start_response: StartResponse,
    status: int,
    body: Any,
    headers: list[tuple[str, str]] | None = None,
) -> Iterable[bytes]:
    payload = json.dumps(body).encode()
    reason = {200: "OK", 201: "Created"}.get(status, "Error")
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        + (headers or []),
    )
    return [payload]


def error_response(start_response: StartResponse, error: BraketError) -> Iterable[bytes]:
    """An AWS rest-json error: the code in ``x-amzn-ErrorType`` and ``__type``."""
    return json_response(
        start_response,
        error.status,
        {"__type": error.code, "message": error.message},
        [("x-amzn-ErrorType", error.code)],
    )


def raw_path(environ: dict[str, Any]) -> str:
    """The request's path as sent, still percent-encoded (ARNs arrive encoded)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
    return str(raw).split("?", 1)[0]


def peek_body(environ: dict[str, Any], limit: int | None = MAX_BODY) -> bytes:
    """The request's body, read and put back for whoever reads it next (moto): b"" without a
    body, with a ``Content-Length`` that is not a number, or one past ``limit`` (None: no
    limit), and then nothing is read. The one place where a body is read ahead of moto."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return b""
    if length <= 0 or (limit is not None and length > limit):
        return b""
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def read_json(environ: dict[str, Any], empty: Any) -> Any:
    """The request body as JSON (``empty`` when there is none), size-checked."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ValidationException("Content-Length is not a number") from None
    if length > MAX_BODY:
        raise ValidationException("request body is too large")
    raw = environ["wsgi.input"].read(length) if length else b""
    if not raw.strip():
        return empty
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ValidationException("request body is not valid JSON") from None


def read_object(environ: dict[str, Any]) -> dict[str, Any]:
    """The request body as a JSON object (``{}`` when there is none)."""
    body = read_json(environ, {})
    if not isinstance(body, dict):
        raise ValidationException("request body must be a JSON object")
    return body
