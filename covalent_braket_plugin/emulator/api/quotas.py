"""Braket's request quotas, enforced: per account, Region and operation, a token bucket of the
service's rate and burst, and one for the whole API. A request beyond them is throttled
(``ThrottlingException``, HTTP 429), as the service throttles it.

The quotas are the service's (:data:`~covalent_braket_plugin.service.QUOTAS`); the
``quotas`` setting turns them off, and ``quota_limits`` changes them (``{"CreateJob":
[rate, burst]}``, ``"*"`` for the whole API).
"""

from __future__ import annotations

import threading
import time

from ...service import API_QUOTA, QUOTAS, THROTTLED_MESSAGE
from ..exceptions import ThrottlingException
from ..settings import RuntimeSettings


class _Bucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()


class QuotaGate:
    """Admits or throttles Braket requests.

    Args:
        settings: ``quotas`` (on or off) and ``quota_limits``, read at each request.
    """

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self.throttled = 0

    def _limits(self, operation: str) -> tuple[float, float] | None:
        given = self.settings.quota_limits.get(operation)
        if given is not None:
            return float(given[0]), float(given[1])
        if operation == "*":
            return API_QUOTA
        return QUOTAS.get(operation)

    def admit(self, account: str, region: str, operation: str) -> None:
        """Take a token for the request from its operation's bucket and the API's.

        Raises:
            ThrottlingException: when either has none left (nothing is taken then).
        """
        if not self.settings.quotas:
            return
        now = time.monotonic()
        with self._lock:
            buckets = []
            for name in (operation, "*"):
                limits = self._limits(name)
                if limits is None:
                    continue
                key = (account, region, name)
                bucket = self._buckets.get(key)
                if bucket is None or (bucket.rate, bucket.burst) != limits:
                    bucket = self._buckets[key] = _Bucket(*limits)
                buckets.append(bucket)
            for bucket in buckets:
                bucket.tokens = min(
                    bucket.burst, bucket.tokens + (now - bucket.stamp) * bucket.rate
                )
                bucket.stamp = now
            if any(bucket.tokens < 1 for bucket in buckets):
                self.throttled += 1
                raise ThrottlingException(THROTTLED_MESSAGE)
            for bucket in buckets:
                bucket.tokens -= 1

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self.throttled = 0
