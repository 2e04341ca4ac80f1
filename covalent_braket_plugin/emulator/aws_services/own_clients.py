"""The emulator's own AWS clients, on its own endpoint: for staging jobs' data, shipping
their logs, storing task results and seeding managed images. Their requests are never
faulted nor journaled."""

from __future__ import annotations

import threading
from typing import Any

from ..faults import INTERNAL_AGENT
from .identity import JOB_ACCESS_KEY, JOB_SECRET_KEY


class InternalClients:
    """boto3 clients on ``endpoint_url``, one per service, Region and account, built on first
    use. A client for another account than moto's default names it in ``x-moto-account-id``."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str, str | None], Any] = {}
        self._session: Any = None  # one session: each service model read once, not per client

    def get(self, service: str, region: str, account: str | None = None) -> Any:
        key = (service, region, account)
        with self._lock:
            if key not in self._clients:
                import boto3
                from botocore.config import Config

                if self._session is None:
                    self._session = boto3.session.Session()
                client = self._session.client(
                    service,
                    region_name=region,
                    endpoint_url=self.endpoint_url,
                    aws_access_key_id=JOB_ACCESS_KEY,
                    aws_secret_access_key=JOB_SECRET_KEY,
                    config=Config(user_agent_extra=INTERNAL_AGENT, retries={"mode": "standard"}),
                )
                if account is not None:

                    def name_account(request: Any, **kwargs: Any) -> None:
                        request.headers["x-moto-account-id"] = account

                    client.meta.events.register("before-sign", name_account)
                self._clients[key] = client
            return self._clients[key]
