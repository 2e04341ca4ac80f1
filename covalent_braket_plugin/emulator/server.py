"""One loopback endpoint: Braket served here, every other AWS service by moto's server app.

Requests are told apart by the service in their SigV4 credential scope: ``braket`` goes to the
Braket handlers, everything else (S3, STS, IAM, CloudWatch Logs, ECR, ...) and unsigned
``/moto-api/*`` calls go to moto. ``/_emulator/*`` is the emulator's own control API
(health, reset, settings); ``POST /moto-api/reset`` resets Braket state too.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from .exceptions import (
    BraketError,
    InternalServiceException,
    ResourceNotFoundException,
    ValidationException,
)
from .faults import INTERNAL_AGENT, FaultInjector, error_reply
from .models import DEFAULT_ACCOUNT, BraketBackend
from .responses import BraketRequest, BraketResponses
from .runtime import JobRuntime, QuantumTaskRunner, RuntimeSettings
from .urls import ROUTES

_SCOPE_RE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
CONTROL_PREFIX = "/_emulator"
_MAX_BODY = 16 * 1024 * 1024
#: Requests kept in the journal (oldest dropped first).
JOURNAL_SIZE = 10_000

StartResponse = Callable[..., Any]


def _json_response(
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


def _error_response(start_response: StartResponse, error: BraketError) -> Iterable[bytes]:
    return _json_response(
        start_response,
        error.status,
        {"__type": error.code, "message": error.message},
        [("x-amzn-ErrorType", error.code)],
    )


def _route(method: str, raw_path: str) -> tuple[str, re.Match[str]] | None:
    for route_method, pattern, handler in ROUTES:
        match = pattern.match(raw_path)
        if match and route_method == method:
            return handler, match
    return None


def _operation(environ: dict[str, Any], service: str) -> str | None:
    """A readable operation name for the journal: the Braket handler, the S3 operation, the
    X-Amz-Target action, the query ``Action``, or None."""
    if service == "braket":
        raw = (environ.get("RAW_URI") or environ.get("PATH_INFO", "")).split("?", 1)[0]
        route = _route(environ.get("REQUEST_METHOD", ""), raw)
        return "".join(part.title() for part in route[0].split("_")) if route else None
    if service == "s3":
        return _s3_operation(environ)
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if not action and environ.get("CONTENT_TYPE", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        # Query-protocol services (STS, IAM) send Action in the body: read it, then put it back.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if 0 < length <= _MAX_BODY else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        action = parse_qs(raw.decode("utf-8", "replace")).get("Action")
    return action[0] if action else None


#: Query parameters that leave the S3 operation as it is (the SDKs' operation hint, a version,
#: a part of an object, the reply's headers).
_PLAIN_QUERY = {"x-id", "versionId", "partNumber"}


#: S3 listings, which moto computes by walking a bucket's keys (see ``EmulatorApp._moto``).
_LISTINGS = {"ListObjects", "ListObjectsV2", "ListObjectVersions", "ListMultipartUploads"}
_LISTING_ATTEMPTS = 10
_S3_ERROR_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")


def _virtual_bucket(host: str) -> str | None:
    """The bucket a virtual-hosted request names in its host (``bucket.localhost:port``,
    ``bucket.s3.<region>.amazonaws.com``), or None for a path-style one."""
    name = host.rsplit(":", 1)[0].lower()
    for suffix in (".localhost", ".s3.amazonaws.com"):
        if name.endswith(suffix):
            return name[: -len(suffix)] or None
    bucket, found, _ = name.partition(".s3.")
    return bucket if found and bucket else None


def _s3_operation(environ: dict[str, Any]) -> str | None:
    """The S3 operation of a request, path-style (``/bucket[/key]``) or virtual-hosted, for
    the journal and for named faults; None for the subresources this does not name."""
    method = environ.get("REQUEST_METHOD", "")
    query = {
        name: value
        for name, value in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()
        if name not in _PLAIN_QUERY and not name.startswith("response-")
    }
    path = environ.get("PATH_INFO", "").lstrip("/")
    bucket = _virtual_bucket(environ.get("HTTP_HOST", ""))
    if bucket:
        key = path
    else:
        bucket, _, key = path.partition("/")
    copy = bool(environ.get("HTTP_X_AMZ_COPY_SOURCE"))
    if not bucket:
        return "ListBuckets" if method == "GET" and not query else None
    if key:
        if "uploadId" in query:
            return {
                "PUT": "UploadPartCopy" if copy else "UploadPart",
                "POST": "CompleteMultipartUpload",
                "DELETE": "AbortMultipartUpload",
                "GET": "ListParts",
            }.get(method)
        if "uploads" in query:
            return "CreateMultipartUpload" if method == "POST" else None
        if query:  # tagging, acl, retention, ...
            return None
        if method == "PUT":
            return "CopyObject" if copy else "PutObject"
        return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method)
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    if method == "GET":
        if "list-type" in query:
            return "ListObjectsV2"
        if "uploads" in query:
            return "ListMultipartUploads"
        if "versions" in query:
            return "ListObjectVersions"
        return (
            None
            if query.keys() - {"prefix", "delimiter", "marker", "max-keys", "encoding-type"}
            else "ListObjects"
        )
    if not query:
        return {"HEAD": "HeadBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(method)
    return None


#: The ``x-amz-checksum-*`` headers S3 checks a body against, with how each is computed.
_CHECKSUMS: dict[str, Callable[[bytes], bytes]] = {
    "crc32": lambda body: zlib.crc32(body).to_bytes(4, "big"),
    "sha1": lambda body: hashlib.sha1(body).digest(),
    "sha256": lambda body: hashlib.sha256(body).digest(),
}


def _checksum_mismatch(environ: dict[str, Any]) -> str | None:
    """What S3 would say of a PUT whose body does not match the checksum header sent with it
    (``BadDigest``), or None. Bodies in ``aws-chunked`` encoding carry theirs in a trailer,
    and bodies of no stated length are streamed: both are passed over, untouched."""
    sent = {
        name: environ[header]
        for name in _CHECKSUMS
        if (header := f"HTTP_X_AMZ_CHECKSUM_{name.upper()}") in environ
    }
    if not sent or "aws-chunked" in environ.get("HTTP_CONTENT_ENCODING", ""):
        return None
    if not environ.get("CONTENT_LENGTH"):
        return None
    length = int(environ["CONTENT_LENGTH"])
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)  # for moto, which reads it again
    for name, value in sent.items():
        if base64.b64encode(_CHECKSUMS[name](body)).decode() != value:
            return f"The {name.upper()} you specified did not match the calculated checksum."
    return None


class EmulatorApp:
    """The WSGI application behind the endpoint."""

    def __init__(self, runtime: JobRuntime, devices_file: str | None = None) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        from .quantum import CATALOGUE_ENV, DeviceCatalogue, load_catalogue

        self.runtime = runtime
        self.tasks = QuantumTaskRunner(runtime)
        catalogue = DeviceCatalogue(load_catalogue(devices_file or os.environ.get(CATALOGUE_ENV)))
        self.backend = BraketBackend(runtime, devices=catalogue, tasks=self.tasks)
        runtime.backend = self.backend
        self.braket = BraketResponses(self.backend)
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.journal: collections.deque[dict[str, Any]] = collections.deque(maxlen=JOURNAL_SIZE)
        self._journal_lock = threading.Lock()
        self.faults = FaultInjector()
        #: Access key id -> IAM policy enforced on that principal's Braket calls.
        self.iam_policies: dict[str, dict[str, Any]] = {}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(environ, start_response, path[len(CONTROL_PREFIX) :])
        if path == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
            self.backend.reset()
            self.clear_journal()
        scope = _SCOPE_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = scope.group(3) if scope else "unsigned"
        handler = self._braket if service == "braket" else self._moto
        if INTERNAL_AGENT in environ.get("HTTP_USER_AGENT", ""):
            return handler(
                environ, start_response, scope
            )  # the emulator's own calls: no faults, no journal
        operation = _operation(environ, service)
        entry: dict[str, Any] = {
            "time": time.time(),
            "service": service,
            "region": scope.group(2) if scope else None,
            "accessKeyId": scope.group(1) if scope else None,
            "method": environ.get("REQUEST_METHOD"),
            "path": path,
            "query": environ.get("QUERY_STRING", ""),
            "operation": operation,
        }

        def recording_start_response(
            status: str, headers: list[tuple[str, str]], *args: Any
        ) -> Any:
            entry["status"] = int(status.split(" ", 1)[0])
            error = dict((k.lower(), v) for k, v in headers).get("x-amzn-errortype")
            if error:
                entry["error"] = error.split(":", 1)[0]
            with self._journal_lock:
                self.journal.append(entry)
            return start_response(status, headers, *args)

        fault = self.faults.choose(service, operation) if scope else None
        if fault is None:
            reply = handler(environ, recording_start_response, scope)
            if service == "s3" and entry.get("status", 0) >= 400 and "error" not in entry:
                # S3 names its errors in the XML body, not in a header: read it from there.
                reply = list(reply)
                code = _S3_ERROR_CODE.search(b"".join(reply)[:_MAX_BODY])
                if code:
                    entry["error"] = code.group(1).decode("utf-8", "replace")
            return reply
        entry["fault"] = fault
        if fault == "lost":  # carried out, but the client is told it failed
            for _ in handler(environ, lambda *args, **kwargs: None, scope):
                pass
        status, headers, body = error_reply(
            service, "HTTP_X_AMZ_TARGET" in environ, fault == "throttle", f"injected fault: {fault}"
        )
        recording_start_response(f"{status} Fault", [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def _moto(
        self, environ: dict[str, Any], start_response: StartResponse, scope: Any
    ) -> Iterable[bytes]:
        if scope and scope.group(3) == "s3" and environ.get("REQUEST_METHOD") == "PUT":
            mismatch = _checksum_mismatch(environ)
            if mismatch:  # as S3 answers; moto stores the body whatever its checksum says
                body = (
                    "<?xml version='1.0' encoding='UTF-8'?><Error><Code>BadDigest</Code>"
                    f"<Message>{mismatch}</Message></Error>"
                ).encode()
                headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
                start_response("400 Bad Request", headers)
                return [body]
        if (
            scope
            and scope.group(3) == "s3"
            and environ.get("REQUEST_METHOD") == "GET"
            and _s3_operation(environ) in _LISTINGS
        ):
            # moto lists a bucket by walking its key dict unguarded: a key put or deleted by
            # another request meanwhile breaks the walk (KeyError, RuntimeError) where S3
            # gives a listing. A listing has no body and changes nothing: list again.
            for _ in range(_LISTING_ATTEMPTS - 1):
                try:
                    return self.moto(environ, start_response)
                except (KeyError, RuntimeError):
                    time.sleep(0.005)
        return self.moto(environ, start_response)

    def clear_journal(self) -> None:
        with self._journal_lock:
            self.journal.clear()

    # ---------------------------------------------------------------- Braket
    def _braket(
        self, environ: dict[str, Any], start_response: StartResponse, scope: Any
    ) -> Iterable[bytes]:
        region = scope.group(2)
        try:
            raw = (
                environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
            )
            raw_path = raw.split("?", 1)[0]
            method = environ.get("REQUEST_METHOD", "GET")
            route = _route(method, raw_path)
            if route is None:
                raise ValidationException(f"No Braket operation for {method} {raw_path}")
            handler, match = route
            request = BraketRequest(
                account=DEFAULT_ACCOUNT,
                region=region,
                params={key: unquote(value) for key, value in match.groupdict().items()},
                query=parse_qs(environ.get("QUERY_STRING", "")),
                body=self._body(environ),
            )
            policy = self.iam_policies.get(scope.group(1))
            if policy is not None:
                self._authorize(policy, handler, request)
            status, body = getattr(self.braket, handler)(request)
            return _json_response(start_response, status, body)
        except BraketError as error:
            return _error_response(start_response, error)
        except Exception as exc:  # never a crash, never an HTML 500
            traceback.print_exc()
            return _error_response(
                start_response, InternalServiceException(f"{type(exc).__name__}: {exc}")
            )

    @staticmethod
    def _authorize(policy: dict[str, Any], handler: str, request: BraketRequest) -> None:
        """Raise AccessDeniedException unless ``policy`` allows the call (and, for CreateJob,
        passing its role to Braket)."""
        from .exceptions import AccessDeniedException
        from .iam import is_allowed

        operation = "".join(part.title() for part in handler.split("_"))
        base = f"arn:aws:braket:{request.region}:{request.account}"
        resource = request.params.get("arn") or {
            "CreateJob": f"{base}:job/*",
            "CreateQuantumTask": f"{base}:quantum-task/*",
        }.get(operation, "*")
        checks = [(f"braket:{operation}", resource, {})]
        if operation == "CreateJob":
            role = str(request.body.get("roleArn", ""))
            checks.append(("iam:PassRole", role, {"iam:PassedToService": "braket.amazonaws.com"}))
        for action, target, context in checks:
            if not is_allowed(policy, action, target, context):
                raise AccessDeniedException(
                    f"User is not authorized to perform: {action} on resource: {target}"
                )

    @staticmethod
    def _json(environ: dict[str, Any], empty: Any) -> Any:
        """The request body as JSON (``empty`` when there is none), size-checked."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise ValidationException("Content-Length is not a number") from None
        if length > _MAX_BODY:
            raise ValidationException("request body is too large")
        raw = environ["wsgi.input"].read(length) if length else b""
        if not raw.strip():
            return empty
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ValidationException("request body is not valid JSON") from None

    @classmethod
    def _body(cls, environ: dict[str, Any]) -> dict[str, Any]:
        body = cls._json(environ, {})
        if not isinstance(body, dict):
            raise ValidationException("request body must be a JSON object")
        return body

    # ---------------------------------------------------------------- control API
    def _control(
        self, environ: dict[str, Any], start_response: StartResponse, path: str
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if path == "/health" and method == "GET":
                jobs = self.backend.jobs()
                tasks = self.backend.tasks()
                return _json_response(
                    start_response,
                    200,
                    {
                        "status": "ok",
                        "jobs": len(jobs),
                        "running": sum(j.status == "RUNNING" for j in jobs),
                        "quantumTasks": len(tasks),
                    },
                )
            if path == "/journal":
                if method == "DELETE":
                    self.clear_journal()
                with self._journal_lock:
                    entries = list(self.journal)
                return _json_response(start_response, 200, {"requests": entries})
            if path == "/reset" and method == "POST":
                self.backend.reset()
                self.clear_journal()
                self.faults.reset()
                self.iam_policies.clear()
                from moto.moto_api._internal import moto_api_backend

                moto_api_backend.reset()
                return _json_response(start_response, 200, {"status": "reset"})
            if path == "/devices" and method == "POST":
                from .quantum import parse_catalogue

                added = parse_catalogue(self._json(environ, []), source="request")
                for device in added:
                    self.backend.devices.add(device)
                return _json_response(
                    start_response, 200, {"added": [device.arn for device in added]}
                )
            if path == "/faults":
                if method == "POST":
                    return _json_response(
                        start_response, 200, self.faults.configure(self._body(environ))
                    )
                if method == "DELETE":
                    self.faults.reset()
                return _json_response(start_response, 200, self.faults.describe())
            if path == "/jobs/kill" and method == "POST":
                arn = self._body(environ).get("jobArn", "")
                if not self.runtime.kill(arn):
                    raise ResourceNotFoundException(f"no running job process for {arn!r}")
                return _json_response(start_response, 200, {"killed": arn})
            if path == "/iam":
                if method == "POST":
                    body = self._body(environ)
                    key, policy = body.get("accessKeyId"), body.get("policy")
                    if not isinstance(key, str) or not isinstance(policy, dict):
                        raise ValidationException("POST /_emulator/iam takes {accessKeyId, policy}")
                    self.iam_policies[key] = policy
                elif method == "DELETE":
                    self.iam_policies.clear()
                return _json_response(start_response, 200, {"policies": self.iam_policies})
            if path == "/settings":
                settings = self.runtime.settings
                if method == "POST":
                    changes = self._body(environ)
                    for key, value in changes.items():
                        if not hasattr(settings, key):
                            raise ValidationException(f"unknown emulator setting {key!r}")
                        current = getattr(settings, key)
                        if isinstance(current, dict) and not isinstance(value, dict):
                            raise ValidationException(f"emulator setting {key!r} takes an object")
                        setattr(settings, key, type(current)(value))
                return _json_response(start_response, 200, vars(settings))
            raise ValidationException(f"no control operation {method} {CONTROL_PREFIX}{path}")
        except BraketError as error:
            return _error_response(start_response, error)
        except (TypeError, ValueError) as exc:
            return _error_response(start_response, ValidationException(str(exc)))


def _quiet_handler() -> type:
    """moto's request handler, without a log line per request."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietRequestHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    return QuietRequestHandler


class BraketEmulator:
    """Braket-in-a-box on one loopback port.

    Use as a context manager; it yields the endpoint URL::

        with BraketEmulator() as url:
            os.environ["AWS_ENDPOINT_URL"] = url

    Args:
        host: Address to bind; loopback by default.
        port: Port to bind; 0 picks a free one.
        work_dir: Where job working directories go; a temporary directory by default
            (removed on stop).
        settings: Initial runtime settings (queue delay, concurrency, image commands).
        devices_file: A JSON device catalogue adding emulated QPUs (default: the file named by
            ``BRAKET_EMULATOR_DEVICES``, if any).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        work_dir: str | Path | None = None,
        settings: RuntimeSettings | None = None,
        devices_file: str | None = None,
    ) -> None:
        self.host = host
        self.devices_file = devices_file
        self.port = port
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="braket-emulator-"))
        self._initial_settings = settings
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.app: EmulatorApp | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self._server.server_port}"

    def start(self) -> str:
        from werkzeug.serving import make_server

        runtime = JobRuntime("", self.work_dir, self._initial_settings)
        self.app = EmulatorApp(runtime, devices_file=self.devices_file)
        self._server = make_server(
            self.host, self.port, self.app, threaded=True, request_handler=_quiet_handler()
        )
        runtime.endpoint_url = self.url
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="braket-emulator", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self.app is not None:
            self.app.runtime.shutdown()
            self.app.tasks.shutdown()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
