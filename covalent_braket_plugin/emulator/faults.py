"""Fault injection: throttling, server errors, latency, lost responses, named failures.

Faults apply to client requests (the emulator's own calls, which carry its token, are exempt),
optionally only to some services. Each fault answers in the protocol of the service that was
called, so botocore recognises it exactly as it would recognise the real thing (and retries it
the same way): rest-json for Braket, XML for S3, JSON for ``X-Amz-Target`` services, query XML
for the rest. The emulator refuses the requests it will not serve (unsigned, badly signed,
from a web page) in the same protocols.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from xml.sax.saxutils import escape


@dataclass
class FaultSettings:
    """What to inject. Rates are probabilities per request, from 0 to 1."""

    throttle_rate: float = 0.0
    error_rate: float = 0.0
    lost_response_rate: float = 0.0
    latency_seconds: float = 0.0
    #: Operation name (as in the journal, e.g. ``CreateJob``) -> times it fails (HTTP 500).
    fail: dict[str, int] = field(default_factory=dict)
    #: Operation name -> times it is carried out but its response lost (HTTP 500).
    lose: dict[str, int] = field(default_factory=dict)
    #: Operation name -> times it is throttled (the service's throttling error).
    throttle: dict[str, int] = field(default_factory=dict)
    #: Operation name -> times a request waits, before it is carried out, until the next
    #: change of ``hold`` (or a reset) lets it go, :data:`HOLD_LIMIT` seconds at most: a test
    #: can act while a call is in flight (``held`` in the settings counts the waiting ones).
    hold: dict[str, int] = field(default_factory=dict)
    #: Access key ids whose session has expired: every request signed with one is refused
    #: with the service's expired-token error until the key is taken off this list.
    expired_keys: list[str] = field(default_factory=list)
    #: The next so many simulations crash their worker process (as a native crash would).
    crash_simulations: int = 0
    #: The next so many simulations hang until the task's time limit stops them.
    hang_simulations: int = 0
    #: S3 keys that contain any of these cannot be deleted: ``DeleteObjects`` still answers
    #: 200 and leaves them, with an ``AccessDenied`` ``<Error>`` each (quiet mode included).
    undeletable: list[str] = field(default_factory=list)
    #: Services faults apply to (``braket``, ``s3``, ...); empty means all.
    services: list[str] = field(default_factory=list)
    seed: int | None = None


#: The longest a held request waits for its release.
HOLD_LIMIT = 120.0


class FaultInjector:
    """Decides, per request, which fault (if any) to inject. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.settings = FaultSettings()
        self._release = threading.Event()  # set, and replaced, to let held requests go
        self._held = 0
        self._random = random.Random()
        self.injected: dict[str, int] = dict.fromkeys(
            ("throttle", "error", "lost", "fail", "crash", "hang", "expired"), 0
        )

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            current = asdict(self.settings)
            unknown = set(changes) - set(current)
            if unknown:
                raise ValueError(
                    f"unknown fault settings: {sorted(unknown)}; known: {sorted(current)}"
                )
            current.update(changes)
            for name in ("throttle_rate", "error_rate", "lost_response_rate"):
                rate = float(current[name])
                if not 0 <= rate <= 1:
                    raise ValueError(f"{name} must be between 0 and 1, got {rate}")
                current[name] = rate
            current["latency_seconds"] = max(0.0, float(current["latency_seconds"]))
            current["fail"] = {str(k): int(v) for k, v in dict(current["fail"]).items()}
            current["lose"] = {str(k): int(v) for k, v in dict(current["lose"]).items()}
            current["throttle"] = {str(k): int(v) for k, v in dict(current["throttle"]).items()}
            current["hold"] = {str(k): int(v) for k, v in dict(current["hold"]).items()}
            current["expired_keys"] = [str(k) for k in current["expired_keys"]]
            current["undeletable"] = [str(k) for k in current["undeletable"] if str(k)]
            current["services"] = [str(s) for s in current["services"]]
            for name in ("crash_simulations", "hang_simulations"):
                current[name] = max(0, int(current[name]))
            self.settings = FaultSettings(**current)
            self._random = random.Random(self.settings.seed)
            if "hold" in changes:
                self._let_held_go()
            return self.describe()

    def reset(self) -> None:
        with self._lock:
            self.settings = FaultSettings()
            self.injected = dict.fromkeys(self.injected, 0)
            self._let_held_go()

    def describe(self) -> dict[str, Any]:
        return {**asdict(self.settings), "injected": dict(self.injected), "held": self._held}

    def _let_held_go(self) -> None:
        """Release the requests held now (the lock is held)."""
        self._release.set()
        self._release = threading.Event()

    def hold_if_staged(self, operation: str | None) -> None:
        """Wait, when the settings hold this operation, until the hold is changed."""
        with self._lock:
            if not operation or self.settings.hold.get(operation, 0) <= 0:
                return
            self.settings.hold[operation] -= 1
            release = self._release
            self._held += 1
        try:
            release.wait(HOLD_LIMIT)
        finally:
            with self._lock:
                self._held -= 1

    def simulation_fault(self) -> str | None:
        """``crash`` or ``hang`` for a simulation staged to fail so, else None."""
        with self._lock:
            for fault, name in (("crash", "crash_simulations"), ("hang", "hang_simulations")):
                if getattr(self.settings, name) > 0:
                    setattr(self.settings, name, getattr(self.settings, name) - 1)
                    self.injected[fault] += 1
                    return fault
        return None

    def choose(
        self, service: str, operation: str | None, access_key: str | None = None
    ) -> str | None:
        """``expired``, ``throttle``, ``error``, ``lost``, ``fail`` or None; sleeps for the
        added latency."""
        with self._lock:
            settings = self.settings
            if access_key is not None and access_key in settings.expired_keys:
                self.injected["expired"] += 1
                return "expired"
            if settings.services and service not in settings.services:
                return None
            latency = settings.latency_seconds
            choice = None
            if operation and settings.throttle.get(operation, 0) > 0:
                settings.throttle[operation] -= 1
                choice = "throttle"
            elif operation and settings.fail.get(operation, 0) > 0:
                settings.fail[operation] -= 1
                choice = "fail"
            elif operation and settings.lose.get(operation, 0) > 0:
                settings.lose[operation] -= 1
                choice = "lost"
            else:
                draw = self._random.random()
                if draw < settings.throttle_rate:
                    choice = "throttle"
                elif draw < settings.throttle_rate + settings.error_rate:
                    choice = "error"
                elif (
                    draw
                    < settings.throttle_rate + settings.error_rate + settings.lost_response_rate
                ):
                    choice = "lost"
            if choice:
                self.injected[choice] += 1
        if latency:
            time.sleep(latency)
        return choice


#: Each protocol's faults: its throttling, expired-session and server errors ("code status").
_FAULTS = {
    "braket": (
        "ThrottlingException 429",
        "ExpiredTokenException 403",
        "InternalServiceException 500",
    ),
    "s3": ("SlowDown 503", "ExpiredToken 400", "InternalError 500"),
    "json": ("ThrottlingException 400", "ExpiredTokenException 400", "InternalFailure 500"),
    "query": ("Throttling 400", "ExpiredToken 403", "InternalFailure 500"),
}
#: Kinds of error besides the faults: a session's credentials that expired, a signature that
#: does not match, an access key nobody issued, no signature, a request the emulator does not
#: serve (from a web page, to another host).
EXPIRED, SIGNATURE, UNKNOWN_KEY, MISSING, DENIED = (
    "expired",
    "signature",
    "unknown_key",
    "missing",
    "denied",
)
#: Refusals (HTTP 403), by kind: the code of Braket and the JSON services, of S3, and of the
#: query services.
_REFUSALS = {
    SIGNATURE: ("InvalidSignatureException", "SignatureDoesNotMatch", "SignatureDoesNotMatch"),
    UNKNOWN_KEY: ("UnrecognizedClientException", "InvalidAccessKeyId", "InvalidClientTokenId"),
    MISSING: ("MissingAuthenticationTokenException", "AccessDenied", "MissingAuthenticationToken"),
    DENIED: ("AccessDeniedException", "AccessDenied", "AccessDenied"),
}


def error_code(service: str, json_protocol: bool, kind: str) -> tuple[str, int]:
    """The error code and HTTP status the called service answers a ``kind`` of error with:
    ``throttle``, ``expired``, one of :data:`_REFUSALS`, or anything else (a server error)."""
    protocol = service if service in ("braket", "s3") else "json" if json_protocol else "query"
    if kind in _REFUSALS:
        return _REFUSALS[kind][{"braket": 0, "json": 0, "s3": 1, "query": 2}[protocol]], 403
    throttle, expired, server = _FAULTS[protocol]
    code, status = {"throttle": throttle, EXPIRED: expired}.get(kind, server).split()
    return code, int(status)


def error_reply(
    service: str, json_protocol: bool, kind: str, message: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    """An error response in the called service's own protocol: rest-json for Braket, XML for
    S3, JSON for ``X-Amz-Target`` services, query XML for the rest (``kind``: see
    :func:`error_code`)."""
    code, status = error_code(service, json_protocol, kind)
    if service == "braket" or (service != "s3" and json_protocol):
        body = json.dumps({"__type": code, "message": message}).encode()
        if service == "braket":
            return status, [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)], body
        return status, [("Content-Type", "application/x-amz-json-1.1")], body
    text = escape(message)
    if service == "s3":
        body = (
            "<?xml version='1.0' encoding='UTF-8'?>"
            f"<Error><Code>{code}</Code><Message>{text}</Message></Error>"
        ).encode()
        return status, [("Content-Type", "application/xml")], body
    body = (
        "<ErrorResponse><Error><Type>Sender</Type>"
        f"<Code>{code}</Code><Message>{text}</Message></Error>"
        "<RequestId>emulator</RequestId></ErrorResponse>"
    ).encode()
    return status, [("Content-Type", "text/xml")], body
