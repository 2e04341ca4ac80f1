"""Thin Braket request handlers: parse the request, call the backend, serialize the answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .models import BraketBackend


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
    """One method per Braket operation; each returns ``(http_status, json_body)``."""

    def __init__(self, backend: BraketBackend) -> None:
        self.backend = backend

    def create_job(self, req: BraketRequest) -> Reply:
        job = self.backend.create_job(req.account, req.region, req.body)
        return 201, {"jobArn": job.arn}

    def get_job(self, req: BraketRequest) -> Reply:
        wanted = req.query.get("additionalAttributeNames", [])
        return 200, self.backend.describe_job(req.account, req.params["arn"], "QueueInfo" in wanted)

    def cancel_job(self, req: BraketRequest) -> Reply:
        return 200, self.backend.cancel_job(req.account, req.params["arn"])

    def search_jobs(self, req: BraketRequest) -> Reply:
        return 200, self.backend.search_jobs(req.account, req.region, req.body)

    def get_device(self, req: BraketRequest) -> Reply:
        return 200, self.backend.get_device(req.params["arn"])

    def search_devices(self, req: BraketRequest) -> Reply:
        return 200, self.backend.search_devices(req.body)

    def create_quantum_task(self, req: BraketRequest) -> Reply:
        task = self.backend.create_quantum_task(req.account, req.region, req.body)
        return 201, {"quantumTaskArn": task.arn}

    def get_quantum_task(self, req: BraketRequest) -> Reply:
        wanted = req.query.get("additionalAttributeNames", [])
        return 200, self.backend.describe_quantum_task(
            req.account, req.params["arn"], "QueueInfo" in wanted
        )

    def cancel_quantum_task(self, req: BraketRequest) -> Reply:
        return 200, self.backend.cancel_quantum_task(req.account, req.params["arn"])

    def search_quantum_tasks(self, req: BraketRequest) -> Reply:
        return 200, self.backend.search_quantum_tasks(req.account, req.region, req.body)

    def list_tags_for_resource(self, req: BraketRequest) -> Reply:
        return 200, {"tags": self.backend.list_tags(req.account, req.params["arn"])}

    def tag_resource(self, req: BraketRequest) -> Reply:
        self.backend.tag_resource(req.account, req.params["arn"], req.body.get("tags"))
        return 200, {}

    def untag_resource(self, req: BraketRequest) -> Reply:
        self.backend.untag_resource(req.account, req.params["arn"], req.query.get("tagKeys", []))
        return 200, {}
