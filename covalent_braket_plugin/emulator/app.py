"""The WSGI application behind the emulator's one endpoint: routing, the journal, faults.

Requests are told apart by the service in their SigV4 credential scope: ``braket`` goes to
the Braket handlers, everything else (S3, STS, IAM, CloudWatch Logs, ECR, ...) and unsigned
``/moto-api/*`` calls go to moto. ``/_emulator/*`` is the emulator's own control API;
``POST /moto-api/reset`` resets Braket state too; ``GET`` of
:data:`~covalent_braket_plugin.emulator.aws_services.price_list.PATH` is the Braket price list;
IAM's ``SimulatePrincipalPolicy``, which moto lacks, is answered by
:mod:`~covalent_braket_plugin.emulator.aws_services.simulate_principal_policy`. Every client
request is journaled, and may be answered with an injected fault; the emulator's own requests
are neither.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterable
from typing import Any

from .api.backend import BraketBackends
from .api.quotas import QuotaGate
from .api.responses import BraketResponses
from .aws_services import price_list as prices
from .aws_services import s3
from .aws_services import simulate_principal_policy as simulate
from .aws_services.ecr_images import ManagedImages
from .aws_services.identity import Scope, account_of, scope_of
from .control import PREFIX as CONTROL_PREFIX
from .control import ControlApi
from .faults import INTERNAL_AGENT, FaultInjector, error_reply
from .journal import Journal
from .runtime.lifecycle import JobRuntime
from .wsgi import StartResponse


@dataclasses.dataclass(frozen=True)
class _Call:
    """A client request on its way: its WSGI environ, its SigV4 scope (None when unsigned) and
    the service it is for."""

    environ: dict[str, Any]
    scope: Scope | None
    service: str


class EmulatorApp:
    """Braket-in-a-box as one WSGI application.

    Args:
        backends: Every account's and Region's Braket state.
        runtime: The job runtime (its settings are restored on reset).
        moto: moto's server application, serving every other service.
        faults: The fault injector (shared with the quantum-task runner).
        images: Amazon's managed job images, put into an account's ECR on demand.
        journal: The request journal (the runtime's launcher records its events there too).
    """

    def __init__(
        self,
        backends: BraketBackends,
        runtime: JobRuntime,
        moto: Any,
        faults: FaultInjector,
        images: ManagedImages,
        journal: Journal,
    ) -> None:
        self.backends = backends
        self.runtime = runtime
        self.images = images
        self.journal = journal
        self.faults = faults
        #: Access key id -> IAM policy enforced on that principal's Braket calls.
        self.iam_policies: dict[str, dict[str, Any]] = {}
        self.quotas = QuotaGate(runtime.settings)
        self.braket = BraketResponses(backends, self.iam_policies, self.quotas)
        self.moto = s3.MotoFront(moto)
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
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD")
        if path.startswith(CONTROL_PREFIX):
            return self.control(environ, start_response)
        if path == prices.PATH and method in ("GET", "HEAD"):
            return self._price_list(start_response)
        if path == "/moto-api/reset" and method == "POST":  # moto resets its own state below
            self.backends.reset()
            self.journal.clear()
            self.images.forget()
        scope = scope_of(environ)
        call = _Call(environ, scope, scope.service if scope else "unsigned")
        if INTERNAL_AGENT in environ.get("HTTP_USER_AGENT", ""):
            # The emulator's own calls: no faults, no journal.
            return self._serve(call, start_response, internal=True)
        if call.service == "ecr" and scope is not None:
            self.images.ensure(account_of(environ, scope.access_key), scope.region)
        entry = self.journal.entry(environ, scope, call.service)
        fault = (
            self.faults.choose(call.service, entry["operation"], scope.access_key)
            if scope
            else None
        )
        if fault is None:
            return self._serve_journaled(call, start_response, entry)
        return self._fault(call, start_response, entry, fault)

    def _serve(
        self, call: _Call, respond: StartResponse, internal: bool = False
    ) -> Iterable[bytes]:
        """Answer the request: Braket's handlers, IAM's ``SimulatePrincipalPolicy``, or moto."""
        environ, scope = call.environ, call.scope
        if call.service == "braket" and scope is not None:
            return self.braket(environ, respond, scope)
        if call.service == "iam" and scope is not None and environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)  # for moto, if it is not ours
            reply = simulate.answer(body, scope, self.iam_policies, respond)
            if reply is not None:
                return reply
        return self.moto(environ, respond, scope, internal)

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
        json_protocol = "HTTP_X_AMZ_TARGET" in call.environ
        status, headers, body = error_reply(call.service, json_protocol, fault, message)
        record = self._recording(entry, start_response)
        record(f"{status} Fault", [*headers, ("Content-Length", str(len(body)))])
        return [body]

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
