"""The WSGI application behind the emulator's one endpoint: the front door, routing, the
journal, faults.

The front door serves only requests that name the emulator's own loopback host and port
(``127.0.0.1``, ``localhost``, ``[::1]``, ``<bucket>.localhost``; the bound host too when it
was bound elsewhere on purpose) and that no web page sent: a request with an ``Origin`` header
and a CORS preflight (``OPTIONS``) are refused, and no answer carries ``Access-Control-*``
headers (moto's are taken off), so neither another site nor DNS rebinding reaches it.

Requests are told apart by the service in their SigV4 credential scope: ``braket`` goes to
the Braket handlers, everything else (S3, STS, IAM, CloudWatch Logs, ECR, ...) to moto; every
one must be signed with a secret the emulator knows (see
:mod:`~covalent_braket_plugin.emulator.aws_services.signatures`), or it is refused with the
service's own error. ``/_emulator/*`` is the emulator's own control API and ``/moto-api/*``
moto's: both need the emulator's per-run token; ``POST /moto-api/reset`` resets Braket state
too. ``GET`` of :data:`~covalent_braket_plugin.emulator.aws_services.price_list.PATH` is the
Braket price list; IAM's ``SimulatePrincipalPolicy``, which moto lacks, is answered by
:mod:`~covalent_braket_plugin.emulator.aws_services.simulate_principal_policy`. Every client
request is journaled, and may be answered with an injected fault; the emulator's own requests
(which carry its token) are neither.
"""

from __future__ import annotations

import dataclasses
import hmac
import http
import ipaddress
from collections.abc import Iterable
from typing import Any

from .api import service_quotas
from .api.backend import BraketBackends
from .api.quotas import QuotaGate
from .api.responses import BraketResponses
from .aws_services import price_list as prices
from .aws_services import s3
from .aws_services import simulate_principal_policy as simulate
from .aws_services.ecr_images import ManagedImages
from .aws_services.identity import TOKEN_HEADER, Scope, account_of, scope_of
from .aws_services.onboarding import Onboarding
from .aws_services.signatures import SignatureChecker
from .control import PREFIX as CONTROL_PREFIX
from .control import ControlApi
from .exceptions import AccessDeniedException
from .faults import DENIED, MISSING, FaultInjector, error_code, error_reply
from .journal import Journal
from .runtime.lifecycle import JobRuntime
from .wsgi import StartResponse, error_response, peek_body

#: The services whose answers show what onboarding and Amazon's managed images put in an
#: account (the jobs role; the images): the account is seeded before their first call, and
#: the many S3 calls of a sweep do not look the account up for it.
_SEEDED_SERVICES = frozenset({"braket", "ecr", "iam", "sts"})
#: The host names every emulator answers to, on its own port.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
_TOKEN_KEY = "HTTP_" + TOKEN_HEADER.upper().replace("-", "_")


class FrontDoor:
    """Which requests the emulator serves at all, and which are its own.

    Args:
        port: The port it serves on (a ``Host`` must name it).
        token: The per-run token its own clients and the control API's callers send.
        bound_host: The address it is bound to, which a ``Host`` may name too; when that is a
            wildcard address (``0.0.0.0``, ``::``, only with ``insecure_bind``), any IP address.
    """

    def __init__(self, port: int, token: str, bound_host: str = "127.0.0.1") -> None:
        self.port = port
        self._token = token.encode()
        bare = bound_host.strip("[]").lower()
        self._names = LOOPBACK_NAMES | {f"[{bare}]" if ":" in bare else bare}
        try:
            self._any_address = ipaddress.ip_address(bare).is_unspecified
        except ValueError:
            self._any_address = False

    def refusal(self, environ: dict[str, Any]) -> str | None:
        """Why the request is not served at all, or None."""
        if "HTTP_ORIGIN" in environ:
            return "Requests from web pages (with an Origin header) are refused"
        if environ.get("REQUEST_METHOD") == "OPTIONS":
            return "CORS preflight requests are refused"
        host = str(environ.get("HTTP_HOST", ""))
        if not self._serves(host):
            return f"Host {host[:100]!r} is not this emulator's"
        return None

    def _serves(self, host: str) -> bool:
        host = host.lower()
        if host.endswith("]") or ":" not in host:
            name, port = host, "80"  # no port: HTTP's own
        else:
            name, _, port = host.rpartition(":")
        if port != str(self.port):
            return False
        if name in self._names or (name.endswith(".localhost") and len(name) > 10):
            return True
        if not self._any_address:
            return False
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            return False  # a name may be rebound to this address: only addresses are taken
        return True

    def trusted(self, environ: dict[str, Any]) -> bool:
        """Whether the request carries the emulator's token."""
        sent = str(environ.get(_TOKEN_KEY, "")).encode("latin-1", "replace")
        return hmac.compare_digest(sent, self._token)


@dataclasses.dataclass(frozen=True)
class _Call:
    """A client request on its way: its WSGI environ, its SigV4 scope (None when unsigned) and
    the service it is for."""

    environ: dict[str, Any]
    scope: Scope | None
    service: str

    @classmethod
    def of(cls, environ: dict[str, Any]) -> _Call:
        scope = scope_of(environ)
        return cls(environ, scope, scope.service if scope else "unsigned")

    @property
    def json_protocol(self) -> bool:
        """Whether the service speaks JSON with an ``X-Amz-Target`` (ECR, CloudWatch Logs)."""
        return "HTTP_X_AMZ_TARGET" in self.environ


class EmulatorApp:
    """Braket-in-a-box as one WSGI application.

    Args:
        backends: Every account's and Region's Braket state.
        runtime: The job runtime (its settings are restored on reset).
        moto: moto's server application, serving every other service.
        faults: The fault injector (shared with the quantum-task runner).
        images: Amazon's managed job images, put into an account's ECR on demand.
        journal: The request journal (the runtime's launcher records its events there too).
        door: Which requests are served, and which are the emulator's own.
        signatures: Checks each request's signature.
    """

    def __init__(
        self,
        backends: BraketBackends,
        runtime: JobRuntime,
        moto: Any,
        faults: FaultInjector,
        images: ManagedImages,
        journal: Journal,
        door: FrontDoor,
        signatures: SignatureChecker,
    ) -> None:
        self.door = door
        self.signatures = signatures
        self.backends = backends
        self.runtime = runtime
        self.images = images
        #: Accounts start onboarded (the jobs role), made at each account's first call.
        self.onboarding = Onboarding(images.clients, runtime.settings)
        self.journal = journal
        self.faults = faults
        #: Access key id -> IAM policy enforced on that principal's Braket calls.
        self.iam_policies: dict[str, dict[str, Any]] = {}
        self.quotas = QuotaGate(runtime.settings)
        self.braket = BraketResponses(backends, self.iam_policies, self.quotas)
        self.moto = s3.MotoFront(moto, lambda: list(self.faults.settings.undeletable))
        self.control = ControlApi(
            backends, runtime, self.journal, self.faults, self.iam_policies, self.reset
        )
        self._initial_settings = dataclasses.replace(runtime.settings)

    def reset(self) -> None:
        """Back to the start: no jobs, tasks, AWS resources, faults, policies or journal;
        the runtime settings the emulator was started with."""
        from moto.moto_api._internal import moto_api_backend

        self.backends.reset()
        self.journal.clear()
        self.faults.reset()
        self.iam_policies.clear()
        self.quotas.reset()
        moto_api_backend.reset()
        self.images.forget()
        self.onboarding.forget()
        initial = dataclasses.replace(self._initial_settings)
        for name, value in dataclasses.asdict(initial).items():
            setattr(self.runtime.settings, name, value)

    def _price_list(self, start_response: StartResponse) -> Iterable[bytes]:
        """The Braket price list (see :mod:`.aws_services.price_list`), with every emulated QPU
        in it."""
        qpus = [
            prices.qpu_name(device.arn)
            for device in self.backends.devices.all()
            if device.device_type == "QPU"
        ]
        body = prices.price_list(qpus)
        start_response("200 OK", [("Content-Type", "text/csv"), ("Content-Length", str(len(body)))])
        return [body]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response = _without_cors(start_response)
        refusal = self.door.refusal(environ)
        if refusal is not None:
            return _refuse(_Call.of(environ), start_response, DENIED, refusal)
        trusted = self.door.trusted(environ)
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD")
        if path.startswith(CONTROL_PREFIX):
            return self.control(environ, start_response, trusted)
        if path == prices.PATH and method in ("GET", "HEAD"):
            return self._price_list(start_response)
        if path.startswith("/moto-api/"):
            return self._moto_api(environ, start_response, trusted)
        call = _Call.of(environ)
        refused = self.signatures.refusal(environ)
        if trusted and refused is None:
            # The emulator's own calls: no faults, no journal.
            return self._serve(call, start_response, internal=True)
        entry = self.journal.entry(environ, call.scope, call.service)
        if refused is not None or call.scope is None:
            kind, message = (refused.kind, refused.message) if refused else (MISSING, "")
            entry["error"] = error_code(call.service, call.json_protocol, kind)[0]
            return _refuse(call, self._recording(entry, start_response), kind, message)
        if call.service in _SEEDED_SERVICES:  # what an account's first call finds made
            account = account_of(environ, call.scope.access_key)
            self.onboarding.ensure(account)
            if call.service == "ecr":
                self.images.ensure(account, call.scope.region)
        self.faults.hold_if_staged(entry["operation"])
        fault = self.faults.choose(call.service, entry["operation"], call.scope.access_key)
        if fault is None:
            return self._serve_journaled(call, start_response, entry)
        return self._fault(call, start_response, entry, fault)

    def _moto_api(
        self, environ: dict[str, Any], start_response: StartResponse, trusted: bool
    ) -> Iterable[bytes]:
        """moto's own API, for the holder of the token; ``POST /moto-api/reset`` resets Braket's
        state and the journal too."""
        path = environ.get("PATH_INFO", "")
        if not trusted:
            message = f"{path[:100]} needs the emulator's token (the {TOKEN_HEADER} header)"
            return error_response(start_response, AccessDeniedException(message))
        if path == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
            self.backends.reset()  # moto resets its own state
            self.journal.clear()
            self.images.forget()
            self.onboarding.forget()
        return self.moto(environ, start_response, None, True)

    def _serve(
        self, call: _Call, respond: StartResponse, internal: bool = False
    ) -> Iterable[bytes]:
        """Answer the request: Braket's handlers, IAM's ``SimulatePrincipalPolicy``, Service
        Quotas' answers about Braket's job quotas, or moto."""
        environ, scope = call.environ, call.scope
        if call.service == "braket" and scope is not None:
            return self.braket(environ, respond, scope)
        if scope is not None and environ.get("REQUEST_METHOD") == "POST":
            reply = self._own_answer(call.service, environ, scope, respond)
            if reply is not None:
                return reply
        return self.moto(environ, respond, scope, internal)

    def _own_answer(
        self, service: str, environ: dict[str, Any], scope: Scope, respond: StartResponse
    ) -> Iterable[bytes] | None:
        """What the emulator answers itself of a service moto serves (IAM's
        ``SimulatePrincipalPolicy``, Service Quotas' about Braket's job quotas), else None."""
        if service == "iam":
            return simulate.answer(peek_body(environ), scope, self.iam_policies, respond)
        if service == "servicequotas":
            where = (account_of(environ, scope.access_key), scope.region)
            target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
            settings = self.runtime.settings
            return service_quotas.answer(peek_body(environ), target, where, settings, respond)
        return None

    def _serve_journaled(
        self, call: _Call, start_response: StartResponse, entry: dict[str, Any]
    ) -> Iterable[bytes]:
        """Answer the request, its reply recorded in its journal ``entry``."""
        reply = self._serve(call, self._recording(entry, start_response))
        if call.service == "s3" and entry.get("status", 0) >= 400 and "error" not in entry:
            reply = list(reply)
            code = s3.error_code(b"".join(reply))
            if code:
                entry["error"] = code
        return reply

    def _fault(
        self, call: _Call, start_response: StartResponse, entry: dict[str, Any], fault: str
    ) -> Iterable[bytes]:
        """Answer with the injected ``fault``, recorded in the journal ``entry``; a ``lost``
        request is carried out first, but the client is told it failed."""
        entry["fault"] = fault
        if fault == "lost":
            for _ in self._serve(call, lambda *args, **kwargs: None):
                pass
        message = (
            "The security token included in the request is expired"
            if fault == "expired"
            else f"injected fault: {fault}"
        )
        return _refuse(call, self._recording(entry, start_response), fault, message)

    def _recording(self, entry: dict[str, Any], start_response: StartResponse) -> StartResponse:
        """``start_response``, with the reply's status, encryption and error noted in the
        journal ``entry`` and the entry recorded."""

        def recording_start_response(
            status: str, headers: list[tuple[str, str]], *args: Any
        ) -> Any:
            _note_reply(entry, status, headers)
            self.journal.record(entry)
            return start_response(status, headers, *args)

        return recording_start_response


def _refuse(call: _Call, respond: StartResponse, kind: str, message: str) -> Iterable[bytes]:
    """Answer with an error of the called service, in its protocol (see
    :func:`~covalent_braket_plugin.emulator.faults.error_reply`)."""
    status, headers, body = error_reply(call.service, call.json_protocol, kind, message)
    reason = http.HTTPStatus(status).phrase
    respond(f"{status} {reason}", [*headers, ("Content-Length", str(len(body)))])
    return [body]


def _without_cors(start_response: StartResponse) -> StartResponse:
    """``start_response``, with every ``Access-Control-*`` header taken off the reply (moto
    echoes any ``Origin``): no web page may read an answer of the emulator's."""

    def start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
        return start_response(status, kept, *args)

    return start


def _note_reply(entry: dict[str, Any], status: str, headers: list[tuple[str, str]]) -> None:
    """Note in a journal entry the reply's status, what S3 asked of KMS, and the error code."""
    entry["status"] = int(status.split(" ", 1)[0])
    named = {k.lower(): v for k, v in headers}
    if named.get("x-amz-server-side-encryption"):  # what S3 asks of KMS for the call
        entry["sse"] = named["x-amz-server-side-encryption"]
        key = named.get("x-amz-server-side-encryption-aws-kms-key-id")
        if key:
            entry["sseKmsKeyId"] = key
    error = named.get("x-amzn-errortype")
    if error:
        entry["error"] = error.split(":", 1)[0]
