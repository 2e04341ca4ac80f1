"""The emulator's own AWS clients, on its own endpoint: for staging jobs' data, shipping
their logs and storing task results. Their requests are never faulted nor journaled."""

from __future__ import annotations

import threading
from typing import Any

from .faults import INTERNAL_AGENT
from .identity import JOB_ACCESS_KEY, JOB_SECRET_KEY


class InternalClients:
    """boto3 clients on ``endpoint_url``, one per service and Region, built on first use."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}

    def get(self, service: str, region: str) -> Any:
        with self._lock:
            if (service, region) not in self._clients:
                import boto3
                from botocore.config import Config

                self._clients[(service, region)] = boto3.session.Session().client(
                    service,
                    region_name=region,
                    endpoint_url=self.endpoint_url,
                    aws_access_key_id=JOB_ACCESS_KEY,
                    aws_secret_access_key=JOB_SECRET_KEY,
                    config=Config(user_agent_extra=INTERNAL_AGENT, retries={"mode": "standard"}),
                )
            return self._clients[(service, region)]
