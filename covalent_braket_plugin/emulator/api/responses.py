"""Braket requests: route, parse, authorise, call the caller's backend, serialize the answer.

Each handler is thin: it reads what the operation takes from the request and hands it to the
:class:`~covalent_braket_plugin.emulator.api.backend.BraketBackend` of the caller's account and
the Region the request was signed for.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from ...service import REGIONS
from ..aws_services import iam_policies as iam
from ..aws_services.identity import Scope, account_of
from ..exceptions import (
    BraketError,
    InternalServiceException,
    ServiceUnavailableException,
    ValidationException,
)
from ..wsgi import StartResponse, error_response, json_response, read_object
from . import request_model as model_check
from . import urls
from .backend import BraketBackend, BraketBackends
from .quotas import QuotaGate


@dataclass
class BraketRequest:
    """One parsed Braket API request."""

    account: str
    region: str
    params: dict[str, str]
    query: dict[str, list[str]] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


Reply = tuple[int, dict[str, Any]]


class BraketResponses:
    """The Braket API over WSGI: one method per operation, each returning
    ``(http_status, json_body)``.

    Args:
        backends: Every account's and Region's Braket state.
        policies: IAM policies enforced per access key id (see :mod:`.iam_policies`).
        quotas: The request quotas, checked first, as the service's front door does.
    """

    def __init__(
        self, backends: BraketBackends, policies: dict[str, dict[str, Any]], quotas: QuotaGate
    ) -> None:
        self.backends = backends
        self.policies = policies
        self.quotas = quotas

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse, scope: Scope
    ) -> Iterable[bytes]:
        try:
            if scope.region not in REGIONS:
                raise ServiceUnavailableException(
                    f"Amazon Braket has no endpoint in {scope.region}; it is in "
                    + ", ".join(REGIONS)
                )
            method = environ.get("REQUEST_METHOD", "GET")
            path = urls.raw_path(environ)
            found = urls.route(method, path)
            if found is None:
                raise ValidationException(f"No Braket operation for {method} {path}")
            handler, match = found
            account = account_of(environ, scope.access_key)
            operation = urls.operation_of(handler)
            self.quotas.admit(account, scope.region, operation)
            request = BraketRequest(
                account=account,
                region=scope.region,
                params={key: unquote(value) for key, value in match.groupdict().items()},
                query=parse_qs(environ.get("QUERY_STRING", "")),
                body=read_object(environ),
            )
            model_check.check_request(operation, request.body, request.query)
            policy = self.policies.get(scope.access_key)
            if policy is not None:
                iam.authorize(policy, operation, request)
            status, body = getattr(self, handler)(request)
            return json_response(start_response, status, body)
        except BraketError as error:
            return error_response(start_response, error)
        except Exception as exc:  # never a crash, never an HTML 500
            traceback.print_exc()
            return error_response(
                start_response, InternalServiceException(f"{type(exc).__name__}: {exc}")
            )

    def _backend(self, req: BraketRequest) -> BraketBackend:
        return self.backends.get(req.account, req.region)

    def create_job(self, req: BraketRequest) -> Reply:
        job = self._backend(req).create_job(req.body)
        return 201, {"jobArn": job.arn}

    def get_job(self, req: BraketRequest) -> Reply:
        wanted = req.query.get("additionalAttributeNames", [])
        return 200, self._backend(req).describe_job(req.params["arn"], "QueueInfo" in wanted)

    def cancel_job(self, req: BraketRequest) -> Reply:
        return 200, self._backend(req).cancel_job(req.params["arn"])

    def search_jobs(self, req: BraketRequest) -> Reply:
        return 200, self._backend(req).search_jobs(req.body)

    def get_device(self, req: BraketRequest) -> Reply:
        return 200, self._backend(req).get_device(req.params["arn"])

    def search_devices(self, req: BraketRequest) -> Reply:
        return 200, self._backend(req).search_devices(req.body)

    def create_quantum_task(self, req: BraketRequest) -> Reply:
        task = self._backend(req).create_quantum_task(req.body)
        return 201, {"quantumTaskArn": task.arn}

    def get_quantum_task(self, req: BraketRequest) -> Reply:
        wanted = req.query.get("additionalAttributeNames", [])
        return 200, self._backend(req).describe_quantum_task(
            req.params["arn"], "QueueInfo" in wanted
        )

    def cancel_quantum_task(self, req: BraketRequest) -> Reply:
        return 200, self._backend(req).cancel_quantum_task(req.params["arn"])

    def search_quantum_tasks(self, req: BraketRequest) -> Reply:
        return 200, self._backend(req).search_quantum_tasks(req.body)

    def list_tags_for_resource(self, req: BraketRequest) -> Reply:
        return 200, {"tags": self._backend(req).list_tags(req.params["arn"])}

    def tag_resource(self, req: BraketRequest) -> Reply:
        self._backend(req).tag_resource(req.params["arn"], req.body.get("tags"))
        return 200, {}

    def untag_resource(self, req: BraketRequest) -> Reply:
        self._backend(req).untag_resource(req.params["arn"], req.query.get("tagKeys", []))
        return 200, {}
