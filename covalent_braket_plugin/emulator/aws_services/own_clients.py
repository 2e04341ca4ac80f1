"""boto3 clients on the emulator's endpoint, all from one boto3 session per process (so each
service model is read once, not once per client).

:func:`new_client` is what every tool uses to reach Braket-in-a-box (the pytest plugin, the
test helpers, the ``covalent-braket emulator`` command). :class:`InternalClients` are the
emulator's own, with the job credentials and the emulator's token: for staging jobs' data,
shipping their logs, storing task results and seeding managed images; their requests are
never faulted nor journaled. The executor builds its clients elsewhere (``aws``): it talks to
whatever endpoint the AWS settings name and never imports the emulator.
"""

from __future__ import annotations

import threading
from typing import Any

from .identity import JOB_ACCESS_KEY, JOB_SECRET_KEY, TOKEN_HEADER

#: The process's one session, built on first use. Sessions are not thread-safe: clients are
#: built under the lock (the clients themselves are).
_session_lock = threading.Lock()
_session: Any = None


def new_client(service: str, **settings: Any) -> Any:
    """A new boto3 client of the process's shared session (``settings``: boto3's ``client``
    arguments: endpoint, Region, credentials, config)."""
    global _session
    with _session_lock:
        if _session is None:
            import boto3

            _session = boto3.session.Session()
        return _session.client(service, **settings)


class InternalClients:
    """The emulator's own clients on ``endpoint_url``, one per service, Region and account,
    built on first use. Each sends the emulator's ``token``, which tells its calls from the
    clients'. A client for another account than moto's default names it in
    ``x-moto-account-id``."""

    def __init__(self, endpoint_url: str, token: str) -> None:
        self.endpoint_url = endpoint_url
        self._token = token
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str, str | None], Any] = {}

    def get(self, service: str, region: str, account: str | None = None) -> Any:
        key = (service, region, account)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._build(service, region, account)
            return self._clients[key]

    def _build(self, service: str, region: str, account: str | None) -> Any:
        from botocore.config import Config

        client = new_client(
            service,
            region_name=region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=JOB_ACCESS_KEY,
            aws_secret_access_key=JOB_SECRET_KEY,
            config=Config(retries={"mode": "standard"}),
        )
        token = self._token

        def mark(request: Any, **kwargs: Any) -> None:
            request.headers[TOKEN_HEADER] = token
            if account is not None:
                request.headers["x-moto-account-id"] = account

        client.meta.events.register("before-sign", mark)
        return client
