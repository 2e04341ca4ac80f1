"""Client-side pacing: the executor's Braket calls stay inside the service's request quotas.

Braket meters each operation per account and Region with a rate and a burst
(:data:`~covalent_braket_plugin.service.QUOTAS`). A server that hammers an account's quota is
throttled, and starves every other client of that account. So every executor in the process
shares one token bucket per (account, Region, operation), a little under the quota, plus one
for the whole API; a call waits, on the event loop, until its bucket has a token for it, and
calls are taken in the order they asked. Each operation has its own bucket: a cancel never
waits behind hundreds of submissions.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from .service import API_QUOTA, QUOTAS

#: The share of each quota the executor uses: jitter between a call leaving and arriving must
#: not make the service see two calls closer than its rate allows.
RATE_SHARE = 0.97
#: Burst tokens held back, for the same reason (at least one token is always kept).
BURST_MARGIN = 1


class TokenBucket:
    """A token bucket that books calls ahead: each caller is told when its call may go, and
    later callers queue behind it (first come, first served; no thundering herd).

    Args:
        rate: Tokens added per second.
        capacity: The most tokens held (the burst).
    """

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def book(self, count: float = 1.0) -> float:
        """Take ``count`` tokens, going into debt if need be; the seconds to wait before the
        call may go (0 if at once)."""
        with self._lock:
            now = time.monotonic()
            self._refill(now)
            self._tokens -= count
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def take(self, count: float = 1.0) -> bool:
        """Take ``count`` tokens if they are there now; False (and nothing taken) if not."""
        with self._lock:
            self._refill(time.monotonic())
            if self._tokens < count:
                return False
            self._tokens -= count
            return True


_lock = threading.Lock()
_buckets: dict[tuple[Any, str, str], TokenBucket] = {}


def bucket(account: Any, region: str, operation: str) -> TokenBucket:
    """The process's bucket for an operation (or ``"*"``, the whole API) of an account in a
    Region, a little under the quota."""
    key = (account, region, operation)
    with _lock:
        found = _buckets.get(key)
        if found is None:
            rate, burst = API_QUOTA if operation == "*" else QUOTAS[operation]
            found = _buckets[key] = TokenBucket(rate * RATE_SHARE, burst - BURST_MARGIN)
        return found


def book(account: Any, region: str, operations: Sequence[str]) -> float:
    """Book one call of each operation (and of the API as a whole); the seconds to wait.
    An account of None is not paced (the ``pacing`` setting off)."""
    if account is None:
        return 0.0
    delays = [bucket(account, region, "*").book(len(operations))]
    for operation, count in _counted(operations).items():
        if operation in QUOTAS:
            delays.append(bucket(account, region, operation).book(count))
    return max(delays)


async def paced(account: Any, region: str, operations: Sequence[str]) -> None:
    """Wait, on the event loop, until these calls may go."""
    delay = book(account, region, operations)
    if delay > 0:
        await asyncio.sleep(delay)


def wait_sync(account: Any, region: str, operations: Sequence[str]) -> None:
    """Wait in this (I/O) thread until these calls may go: for rare calls made deep inside a
    blocking step (a pre-flight look-up)."""
    delay = book(account, region, operations)
    if delay > 0:
        time.sleep(delay)


def take_now(account: Any, region: str, operation: str) -> bool:
    """A call of ``operation`` may go now without waiting: its tokens are taken. False (and
    no call should be made) if it would have to wait."""
    if account is None:
        return True
    if operation in QUOTAS and not bucket(account, region, operation).take():
        return False
    return bucket(account, region, "*").take()


def pages(count: int, page_size: int) -> int:
    """Search pages needed for ``count`` items."""
    return max(1, math.ceil(count / page_size))


def _counted(operations: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for operation in operations:
        counts[operation] = counts.get(operation, 0) + 1
    return counts


def reset() -> None:
    """Forget every bucket (for tests and benchmarks that start a new emulator)."""
    with _lock:
        _buckets.clear()
