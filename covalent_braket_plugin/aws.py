"""The AWS edge: boto3 clients, AWS errors and their groups, and the threads calls run on.

Clients are built once per (profile, credentials file, region) in a worker thread and reused
by every executor in the process; boto3 clients are thread-safe, sessions are not, so a
session is only touched while the cache lock is held. Nothing here writes to ``os.environ``.
Every blocking call of an executor runs on :func:`offload`'s bounded pool, never on the
event loop.
"""

from __future__ import annotations

import asyncio
import functools
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import BraketSettings
from .covalent_loader import server_log

#: botocore's standard retry mode retries throttling and 5xx with exponential backoff. S3
#: bodies are not SHA-256 signed: every upload carries a CRC32 (the executor's own, computed
#: over its buffers in place, or botocore's), which S3 checks; signing would be one more pass
#: over the payload (over HTTPS botocore skips it for checksummed streaming uploads anyway).
_CLIENT_CONFIG_KWARGS: dict[str, Any] = {
    "retries": {"mode": "standard", "max_attempts": 8},
    "s3": {"payload_signing_enabled": False},
    "max_pool_connections": 64,
    "connect_timeout": 10,
    "read_timeout": 60,
}
#: Braket calls are retried by the executor itself, waiting on the event loop rather than in
#: one of the few I/O threads: botocore only tries a call a few times.
_BRAKET_ATTEMPTS = 3

_SERVICES = ("braket", "s3", "sts", "logs", "iam", "ecr")
#: Error codes worth another try after a pause (botocore has already retried them).
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "InternalServiceException",
        "InternalServerError",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
    }
)


#: S3's answers to a conditional PutObject whose key exists, and to a HeadObject of no object.
KEY_TAKEN = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
NO_SUCH_KEY = frozenset({"404", "NoSuchKey", "NotFound"})
#: The caller may not do or see this (not: it is not there).
DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"})
#: The account is past a job quota (hybrid jobs at once, instances of a type): the same
#: request goes through once one of its jobs ends (HTTP 402).
QUOTA_EXCEEDED = frozenset({"ServiceQuotaExceededException"})

#: The threads every blocking AWS call of every executor in the process runs on, bounded:
#: botocore holds the GIL while it signs and parses, and the event loop waits its turn behind
#: every thread that wants it (500 tasks starting at once: worst loop lag 46-98 ms with 8
#: threads, 31 ms with 4); a call may sleep in botocore's retry backoff, so there are a few,
#: so that throttling does not stall every other task. Calls beyond wait off the loop.
io_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="covalent-braket-io")


#: The paced calls of the tightest quotas (``CreateJob``, ``CancelJob``) have threads of their
#: own: paced on the event loop, they must go out when their turn comes, not queue behind
#: hundreds of uploads on the I/O threads and then leave together, faster than the quota.
paced_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="covalent-braket-paced")


def offload(function: Any, *args: Any, pool: ThreadPoolExecutor | None = None) -> Any:
    """Run a blocking call on the I/O threads (or ``pool``); awaitable from the event loop."""
    return asyncio.get_running_loop().run_in_executor(
        pool or io_pool, functools.partial(function, *args)
    )


class Background:
    """Calls run in the background on a thread pool, kept while they run so that they can
    be waited for (by tests, benchmarks and an orderly shutdown)."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        """Run the calls on ``pool``.

        Args:
            pool: the threads the calls run on.
        """
        self._pool = pool
        self._pending: set[Future[Any]] = set()

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        """Start ``function(*args)`` on the pool and keep it until it is done.

        Args:
            function: the blocking call.
            *args: its arguments.

        Returns:
            The call's future.

        Raises:
            RuntimeError: the pool is shut down (the interpreter is shutting down).
        """
        future = self._pool.submit(function, *args)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return future

    def wait(self, timeout: float) -> None:
        """Block until the calls started so far are done, or ``timeout`` seconds passed.

        Args:
            timeout: the longest wait, in seconds.
        """
        wait_for(list(self._pending), timeout=timeout)


async def set_within(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event``, for ``timeout`` seconds at the most.

    Args:
        event: what to wait for.
        timeout: the longest wait, in seconds.

    Returns:
        Whether the event was set in time.
    """
    try:
        await asyncio.wait_for(event.wait(), timeout=timeout)
        return True
    except asyncio.TimeoutError:
        return False


#: How long :func:`persistently` keeps trying a call that fails transiently.
PERSIST_SECONDS = 900.0


async def persistently(
    function: Any,
    *args: Any,
    seconds: float = PERSIST_SECONDS,
    before: Any = None,
    pool: ThreadPoolExecutor | None = None,
) -> Any:
    """:func:`offload` ``function(*args)``, and again after a pause, on the event loop, while
    it fails transiently (throttling, a 5xx, a dropped connection: botocore has retried
    already) or because the credentials expired (the clients are then built anew, reading
    the credential chain again), for up to ``seconds``. Other errors, and the last one, are
    raised. ``function`` must be safe to repeat (idempotent). ``before``, if given, is
    awaited before each try (the pacing of its calls); ``pool`` runs it (the I/O threads by
    default)."""
    deadline = time.monotonic() + seconds
    pause = 1.0
    while True:
        try:
            if before is not None:
                await before()
            return await offload(function, *args, pool=pool)
        except AwsError as exc:
            if not (exc.transient or exc.expired) or time.monotonic() + pause > deadline:
                raise
            if exc.expired:
                server_log.warning(f"AWS credentials expired ({exc}); trying with new clients")
            await asyncio.sleep(pause * (0.5 + random.random() / 2))
            pause = min(pause * 2, 30.0)


#: The caller's credentials are no longer good (a session ended, a token expired): the
#: clients are built again, so that the credential chain is read afresh.
EXPIRED_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidToken",
        "InvalidAccessKeyId",
    }
)


class AwsError(RuntimeError):
    """An AWS call failed; the message names the operation, the AWS error code and the text."""

    def __init__(self, operation: str, code: str, message: str, status: int | None = None) -> None:
        self.operation = operation
        self.code = code
        self.status = status
        super().__init__(f"AWS {operation} failed ({code}): {message}")

    @property
    def transient(self) -> bool:
        """Throttling, a 5xx or a broken connection: the same call may succeed later."""
        return self.code in TRANSIENT_CODES or (self.status is not None and self.status >= 500)

    @property
    def expired(self) -> bool:
        """The credentials expired: the same call may succeed with clients built anew."""
        return self.code in EXPIRED_CODES


@dataclass(frozen=True)
class AwsClients:
    """The clients an executor needs, sharing one boto3 session."""

    braket: Any
    s3: Any
    sts: Any
    logs: Any
    iam: Any
    ecr: Any
    region: str
    #: The session they share, for the clients of the tools (``setup``, ``doctor``).
    session: Any = None
    config: Any = None

    def client(self, service: str) -> Any:
        """A client of another service on the same session, Region and configuration."""
        return self.session.client(service, region_name=self.region, config=self.config)


_lock = threading.Lock()
_cache: dict[tuple[str | None, str | None, str | None], AwsClients] = {}
_loader: Any = None
_account_cache: dict[tuple[str | None, str | None, str | None], tuple[str, str]] = {}
_role_cache: dict[Any, str] = {}


def client_key(settings: BraketSettings) -> tuple[str | None, str | None, str | None]:
    """What identifies a set of clients: profile, credentials file, region."""
    return (settings.profile_name, settings.credentials_file, settings.region_name)


def _shared_loader(core: Any) -> None:
    """Give ``core`` the process's one botocore data loader (under the cache lock).

    A session makes a loader of its own and reads every service model afresh, about 0.1 s a
    client: clients built again (new credentials, another profile or Region) would pay it
    each time. A session given its own data path (``AWS_DATA_PATH``) keeps its own loader.
    """
    global _loader
    if core.get_config_variable("data_path"):
        return
    if _loader is None:
        import boto3
        import botocore.loaders

        class SharedLoader(botocore.loaders.Loader):
            @property
            def search_paths(self) -> list[str]:
                # A copy: boto3 appends its data path to each new session's loader, which
                # would grow the shared list by a path a session. Its path is in from the start.
                return list(self._search_paths)

        default = botocore.loaders.create_loader()
        _loader = SharedLoader(
            extra_search_paths=[*default.search_paths, str(Path(boto3.__file__).parent / "data")],
            include_default_search_paths=False,
        )
    core.register_component("data_loader", _loader)


def clients_for(settings: BraketSettings) -> AwsClients:
    """Return (building once) the clients for these settings. Blocking: call off the loop."""
    key = client_key(settings)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        import boto3
        import botocore.config
        import botocore.session
        from botocore.exceptions import ProfileNotFound

        from .config import InvalidSettingError

        core = botocore.session.Session()
        if settings.credentials_file:
            core.set_config_variable("credentials_file", settings.credentials_file)
        if settings.profile_name:
            core.set_config_variable("profile", settings.profile_name)
        try:
            _shared_loader(core)
            session = boto3.Session(botocore_session=core, region_name=settings.region_name)
            region = session.region_name
        except ProfileNotFound:
            raise InvalidSettingError(
                "profile",
                settings.profile,
                "a profile defined in the AWS config or credentials file",
            ) from None
        if not region:
            raise InvalidSettingError(
                "region",
                settings.region,
                "required: set region, AWS_REGION / AWS_DEFAULT_REGION, or a profile region",
            )
        config = botocore.config.Config(**_CLIENT_CONFIG_KWARGS)
        braket_config = config.merge(
            botocore.config.Config(retries={"mode": "standard", "max_attempts": _BRAKET_ATTEMPTS})
        )
        built = {
            name: session.client(
                name, region_name=region, config=braket_config if name == "braket" else config
            )
            for name in _SERVICES
        }
        cached = AwsClients(region=region, session=session, config=config, **built)
        _cache[key] = cached
        return cached


def caller_account(settings: BraketSettings) -> tuple[str, str]:
    """Return ``(account_id, partition)`` of the caller. Blocking: call off the loop."""
    key = client_key(settings)
    with _lock:
        known = _account_cache.get(key)
    if known is not None:
        return known
    identity = call(clients_for(settings).sts, "get_caller_identity")
    partition = identity["Arn"].split(":")[1]
    result = (identity["Account"], partition)
    with _lock:
        _account_cache[key] = result
    return result


def quota_key(settings: BraketSettings) -> tuple[Any, str]:
    """Whose quota these settings' Braket calls count against: (account, Region). The account
    is the caller's once it is known (any call that needed it looked it up), else the
    credentials that stand for it. With ``pacing`` off, None: calls are not paced."""
    if not settings.pacing:
        return (None, settings.region)
    key = client_key(settings)
    with _lock:
        known = _account_cache.get(key)
    return (known[0] if known else key, settings.region)


def role_arn(settings: BraketSettings) -> str:
    """The job execution role's ARN: as given, or the ARN IAM has for the name (its path
    included: ``role/service-role/NAME``), or, if the caller may not look it up, the ARN the
    name makes without a path. Blocking: call off the loop."""
    name = settings.braket_job_execution_role_name
    if settings.role_is_arn:
        return name
    key = (client_key(settings), name)
    with _lock:
        known = _role_cache.get(key)
    if known is not None:
        return known
    try:
        arn = call(clients_for(settings).iam, "get_role", RoleName=name)["Role"]["Arn"]
    except AwsError as exc:
        if exc.code not in DENIED:
            raise
        account, partition = caller_account(settings)
        arn = f"arn:{partition}:iam::{account}:role/{name}"
    with _lock:
        _role_cache[key] = arn
    return arn


def bucket_owner(settings: BraketSettings) -> dict[str, str]:
    """``ExpectedBucketOwner`` for every S3 call: S3 refuses the call if the bucket belongs to
    another account than the caller's, before anything is read or written."""
    return {"ExpectedBucketOwner": caller_account(settings)[0]}


def call(client: Any, operation: str, **kwargs: Any) -> Any:
    """Call ``client.<operation>(**kwargs)``, turning a ClientError into :class:`AwsError`."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        failure = AwsError(
            operation, error.get("Code", "Unknown"), error.get("Message", str(exc)), status
        )
        if failure.expired:  # the next use of these clients builds them anew
            _forget_clients_of(client)
        raise failure from exc
    except BotoCoreError as exc:
        raise AwsError(operation, type(exc).__name__, str(exc)) from exc


def _forget_clients_of(client: Any) -> None:
    with _lock:
        for key, clients in list(_cache.items()):
            if client in (
                clients.braket,
                clients.s3,
                clients.sts,
                clients.logs,
                clients.iam,
                clients.ecr,
            ):
                _cache.pop(key, None)


def kms_key_arn(clients: AwsClients, key: str) -> str:
    """A KMS key (an id, an alias or either's ARN) as its key's ARN (``DescribeKey``, as S3
    and IAM resolve an alias). Blocking.

    Raises:
        AwsError: The key could not be described.
    """
    return str(call(clients.client("kms"), "describe_key", KeyId=key)["KeyMetadata"]["Arn"])


def call_unless(codes: frozenset[str], client: Any, operation: str, **kwargs: Any) -> Any:
    """:func:`call`, but None when the call fails with one of the error ``codes`` (an answer,
    not a failure: the object is not there, the key was taken)."""
    try:
        return call(client, operation, **kwargs)
    except AwsError as exc:
        if exc.code in codes:
            return None
        raise


#: How long a Service Quotas look-up that failed for another reason than a denial is trusted
#: (a denial is trusted until the caches are reset).
QUOTA_ERROR_SECONDS = 300.0
#: How long a quota's value is trusted: a quota raised while the server runs is seen this
#: long after (AWS takes hours or days to grant one).
QUOTA_SECONDS = 600.0
_quota_cache: dict[tuple[Any, str, str], tuple[float, Any]] = {}
_quota_reading: dict[tuple[Any, str, str], threading.Lock] = {}


def service_quota(settings: BraketSettings, service_code: str, quota_code: str) -> float:
    """A quota's value in the account and Region of ``settings`` (Service Quotas'
    ``GetServiceQuota``), read once per :data:`QUOTA_SECONDS`; a failure is remembered too (a
    denial until the caches are reset, another error for :data:`QUOTA_ERROR_SECONDS`).
    Blocking.

    Raises:
        AwsError: the caller may not look (a code in :data:`DENIED`), or the look-up failed.
    """
    key = (client_key(settings), service_code, quota_code)
    with _lock:
        reading = _quota_reading.setdefault(key, threading.Lock())
    with reading:  # callers that find it unread wait for one look-up
        return _service_quota(settings, key)


def _service_quota(settings: BraketSettings, key: tuple[Any, str, str]) -> float:
    """:func:`service_quota` under its key's lock: the cached outcome, or one look-up."""
    with _lock:
        known = _quota_cache.get(key)
    age = time.monotonic() - known[0] if known is not None else 0.0
    if known is not None and (
        (not isinstance(known[1], AwsError) and age < QUOTA_SECONDS)
        or (isinstance(known[1], AwsError) and known[1].code in DENIED)
        or (isinstance(known[1], AwsError) and age < QUOTA_ERROR_SECONDS)
    ):
        if isinstance(known[1], AwsError):
            raise known[1]
        return known[1]
    try:
        client = clients_for(settings).client("service-quotas")
        answer = call(client, "get_service_quota", ServiceCode=key[1], QuotaCode=key[2])
        outcome: Any = float(answer["Quota"]["Value"])
    except AwsError as exc:
        outcome = exc
    except (KeyError, TypeError, ValueError) as exc:  # an answer without a value
        outcome = AwsError("GetServiceQuota", "NoValue", str(exc))
    with _lock:
        _quota_cache[key] = (time.monotonic(), outcome)
    if isinstance(outcome, AwsError):
        raise outcome
    return outcome


_forgetters: list[Callable[[], None]] = []


def on_reset(forget: Callable[[], None]) -> None:
    """Have :func:`reset_cache` call ``forget`` too (for caches kept by other rooms)."""
    _forgetters.append(forget)


def reset_cache() -> None:
    """Forget every cached client and what was learnt through them (for tests that change
    endpoints or credentials)."""
    with _lock:
        _cache.clear()
        _account_cache.clear()
        _role_cache.clear()
        _quota_cache.clear()
    for forget in _forgetters:
        forget()
