"""BraketExecutor: runs a Covalent electron as an Amazon Braket hybrid job.

Covalent loads this module through the ``covalent.executor.executor_plugins`` entry point
``braket``; its settings live in ``[executors.braket]`` of covalent.conf. Importing it must stay
cheap: boto3 is imported when the first client is built, the Braket SDK never.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

EXECUTOR_PLUGIN_NAME = "BraketExecutor"


class _HideHalfLoadedWarning(logging.Filter):
    """Covalent's plugin loader, run by our own first import of covalent, meets this module
    half-initialised and warns that it has no plugin class; the class is registered at the
    end of this module instead, so that warning is wrong and hidden."""

    def filter(self, record: logging.LogRecord) -> bool:
        return __name__ not in record.getMessage()


_IMPORTED_BEFORE_COVALENT = "covalent.executor" not in sys.modules
_covalent_log = logging.getLogger("covalent._shared_files.logger")
_hide = _HideHalfLoadedWarning()
_covalent_log.addFilter(_hide)
try:
    from covalent._shared_files import logger
finally:
    _covalent_log.removeFilter(_hide)
from covalent._shared_files.exceptions import TaskCancelledError, TaskRuntimeError
from covalent.executor.executor_plugins.remote_executor import RemoteExecutor

from . import aws
from .config import DEFAULTS, BraketSettings, check_setting, read_covalent_config
from .job import ENTRY_POINT, runner_archive
from .job.runner import HP_PYTHON_VERSION, HP_TASK_URI, INPUT_KEY, RESULT_FORMAT, RESULT_KEY

#: Merged into ``[executors.braket]`` of covalent.conf by Covalent (user edits are kept).
_EXECUTOR_PLUGIN_DEFAULTS: dict[str, Any] = dict(DEFAULTS)

app_log = logger.app_log

#: Prefix of every object the executor writes in the bucket.
S3_PREFIX = "covalent-braket"
TERMINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
#: Time allowed past ``time_limit`` for the service to start, stop and upload a running job.
RUNNING_GRACE_SECONDS = 600
#: How long a job may wait in QUEUED (QPU queues can be long) before the executor gives up.
QUEUED_DEADLINE_SECONDS = 7 * 24 * 3600
#: The first status check comes this soon after submission, so fast failures surface at once.
FIRST_POLL_SECONDS = 1.0
_JOB_NAME_MAX = 50
_SSE = {"ServerSideEncryption": "AES256"}
RUNNER_KEY = "runner.tar.gz"


class BraketJobError(RuntimeError):
    """A Braket job ended FAILED for a reason other than the electron raising."""


@dataclass(frozen=True)
class TaskLocation:
    """Where one attempt of one electron lives: S3 prefix, job name, idempotency token."""

    bucket: str
    prefix: str
    job_name: str
    client_token: str
    dispatch_id: str
    node_id: str
    attempt: str

    @classmethod
    def new(cls, bucket: str, dispatch_id: str, node_id: Any) -> TaskLocation:
        attempt = uuid.uuid4().hex[:12]
        prefix = f"{S3_PREFIX}/{dispatch_id}/node-{node_id}/{attempt}"
        token = str(uuid.uuid5(uuid.NAMESPACE_URL, f"covalent-braket:{dispatch_id}:{node_id}:{attempt}"))
        name = job_name(dispatch_id, node_id, attempt)
        return cls(bucket, prefix, name, token, str(dispatch_id), str(node_id), attempt)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"


def job_name(dispatch_id: str, node_id: Any, attempt: str) -> str:
    """A Braket job name that is always valid: ``[a-zA-Z0-9-]``, at most 50 characters.

    It reads ``cov-<dispatch prefix>-<node>-<attempt>``; the attempt part keeps it unique.
    """

    def clean(text: str) -> str:
        return "".join(ch for ch in str(text) if ch.isascii() and ch.isalnum())

    tail = f"-{clean(attempt)[:12]}"
    node = clean(node_id)[:12] or "0"
    head = f"cov-{clean(dispatch_id)[:12] or 'x'}-{node}"
    return (head[: _JOB_NAME_MAX - len(tail)] + tail).strip("-")


class BraketExecutor(RemoteExecutor):
    """Run an electron as an Amazon Braket hybrid job.

    Every argument left as None is read from ``[executors.braket]`` in covalent.conf, falling
    back to the documented default. Arguments given here are validated at once; the merged
    settings are validated again before the first AWS call of each task.

    Args:
        credentials: Path of an AWS shared credentials file. The default path defers to the
            standard AWS credential chain (environment, profile, SSO, instance role).
        braket_job_execution_role_name: Name or ARN of the IAM role Braket assumes for the job.
        profile: AWS profile name; ``"default"`` defers to ``AWS_PROFILE`` and the chain.
        region: AWS region; empty uses ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the profile.
        s3_bucket_name: Bucket for the task's inputs, results and the job's outputs.
        ecr_image_uri: URI of the job container image in ECR (required).
        quantum_device: ARN of the Braket device the job is associated with.
        classical_device: Braket instance type of the job's classical host.
        storage: Volume size of the classical host, in GB.
        time_limit: Maximum running time of the job, in seconds (1 to 432000).
        poll_freq: Seconds between job status checks.
        cache_dir: Local directory for temporary files.
    """

    def __init__(
        self,
        credentials: str | None = None,
        braket_job_execution_role_name: str | None = None,
        profile: str | None = None,
        region: str | None = None,
        s3_bucket_name: str | None = None,
        ecr_image_uri: str | None = None,
        quantum_device: str | None = None,
        classical_device: str | None = None,
        storage: int | None = None,
        time_limit: int | None = None,
        poll_freq: float | None = None,
        cache_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        given = {
            "credentials": credentials,
            "braket_job_execution_role_name": braket_job_execution_role_name,
            "profile": profile,
            "region": region,
            "s3_bucket_name": s3_bucket_name,
            "ecr_image_uri": ecr_image_uri,
            "quantum_device": quantum_device,
            "classical_device": classical_device,
            "storage": storage,
            "time_limit": time_limit,
            "poll_freq": poll_freq,
            "cache_dir": cache_dir,
        }
        values = {}
        for name, value in given.items():
            if value is None:
                values[name] = read_covalent_config(name)
                continue
            if value != "":  # "" means unset (covalent.conf's default); run() requires what it needs
                check_setting(name, value)  # explicit arguments fail fast, in user code
            values[name] = value
        super().__init__(
            poll_freq=values["poll_freq"],
            credentials_file=values["credentials"],
            cache_dir=values["cache_dir"],
            time_limit=values["time_limit"],
            **kwargs,
        )
        self.credentials = values["credentials"]
        self.braket_job_execution_role_name = values["braket_job_execution_role_name"]
        self.profile = values["profile"]
        self.region = values["region"]
        self.s3_bucket_name = values["s3_bucket_name"]
        self.ecr_image_uri = values["ecr_image_uri"]
        self.quantum_device = values["quantum_device"]
        self.classical_device = values["classical_device"]
        self.storage = values["storage"]

    # ------------------------------------------------------------------ settings
    def settings(self) -> BraketSettings:
        """The validated settings of this executor.

        Raises:
            InvalidSettingError: naming the first invalid setting.
        """
        return BraketSettings.from_mapping({name: getattr(self, name) for name in DEFAULTS})

    # ------------------------------------------------------------------ RemoteExecutor API
    async def _validate_credentials(self) -> bool:
        """Check that the AWS credential chain yields an identity (calls STS)."""
        settings = self.settings()
        await asyncio.to_thread(aws.caller_account, settings)
        return True

    async def _upload_task(self, settings: BraketSettings, location: TaskLocation, payload: Any) -> None:
        await asyncio.to_thread(self._upload_task_sync, settings, location, payload)

    async def submit_task(self, settings: BraketSettings, location: TaskLocation, python: str) -> str:
        return await asyncio.to_thread(self._submit_sync, settings, location, python)

    async def get_status(self, settings: BraketSettings, job_arn: str) -> dict[str, Any]:
        return await asyncio.to_thread(self._get_job_sync, settings, job_arn)

    async def _poll_task(self, settings: BraketSettings, job_arn: str) -> dict[str, Any]:
        """Poll GetJob until the job is terminal, within a deadline derived from time_limit."""
        submitted = time.monotonic()
        started: float | None = None
        delay = min(FIRST_POLL_SECONDS, settings.poll_freq)
        while True:
            await asyncio.sleep(delay)
            delay = settings.poll_freq
            job = await self.get_status(settings, job_arn)
            status = job["status"]
            if status in TERMINAL_STATES:
                return job
            now = time.monotonic()
            if status == "QUEUED":
                limit, since = QUEUED_DEADLINE_SECONDS, submitted
            else:
                started = started if started is not None else now
                limit, since = settings.time_limit + RUNNING_GRACE_SECONDS, started
            if now - since > limit:
                await asyncio.to_thread(self._cancel_sync, settings, job_arn)
                raise BraketJobError(
                    f"Braket job {job_arn} still {status} after {limit} s "
                    f"(time_limit={settings.time_limit}); cancellation was requested"
                )

    async def query_result(self, settings: BraketSettings, location: TaskLocation, job: dict[str, Any]) -> Any:
        return await asyncio.to_thread(self._download_result_sync, settings, location, job)

    async def run(self, function: Any, args: list, kwargs: dict, task_metadata: dict) -> Any:
        """Run ``function(*args, **kwargs)`` in a Braket hybrid job and return its result."""
        settings = self.settings()
        dispatch_id = task_metadata["dispatch_id"]
        node_id = task_metadata["node_id"]
        if await self.get_cancel_requested():
            raise TaskCancelledError(f"task {dispatch_id}:{node_id} was cancelled before submission")
        python = await self._client_python()
        location = TaskLocation.new(settings.s3_bucket_name, dispatch_id, node_id)

        await self._upload_task(settings, location, (function, args, kwargs))
        if await self.get_cancel_requested():
            await asyncio.to_thread(self._delete_objects_sync, settings, location)
            raise TaskCancelledError(f"task {dispatch_id}:{node_id} was cancelled before submission")

        job_arn = await self.submit_task(settings, location, python)
        app_log.debug(f"Braket job {job_arn} created for {dispatch_id}:{node_id}")
        await self.set_job_handle(job_arn)
        if await self.get_cancel_requested():
            await asyncio.to_thread(self._cancel_sync, settings, job_arn)

        job = await self._poll_task(settings, job_arn)
        status = job["status"]
        if status == "CANCELLED":
            raise TaskCancelledError(f"Braket job {job_arn} was cancelled")
        outcome = await self.query_result(settings, location, job)
        if outcome is None:  # FAILED with no result object: the job never ran the electron
            reason = job.get("failureReason") or "no failure reason given"
            tail = await asyncio.to_thread(self._log_tail_sync, settings, job)
            if tail:
                self.task_stderr.write(tail)
            raise BraketJobError(f"Braket job {job_arn} failed: {reason}")

        self.task_stdout.write(outcome.get("stdout", ""))
        self.task_stderr.write(outcome.get("stderr", ""))
        if not outcome["ok"]:
            if outcome.get("traceback") and outcome["traceback"] not in outcome.get("stderr", ""):
                self.task_stderr.write(outcome["traceback"])
            raise TaskRuntimeError(
                f"electron raised {outcome['exception_type']}: {outcome['exception']} "
                f"(Braket job {job_arn})"
            )
        await asyncio.to_thread(self._delete_objects_sync, settings, location)
        return outcome["result"]

    async def cancel(self, task_metadata: dict, job_handle: Any) -> bool:
        """Cancel the Braket job ``job_handle``; True once it is cancelling or cancelled."""
        if not job_handle:
            return False
        settings = self.settings()
        status = await asyncio.to_thread(self._cancel_sync, settings, str(job_handle))
        return status in {"CANCELLING", "CANCELLED"}

    # ------------------------------------------------------------------ blocking helpers
    async def _client_python(self) -> str:
        try:
            version = (await self.get_version_info()) or {}
        except Exception:  # outside a server (no runtime) the local interpreter is the client
            version = {}
        full = str(version.get("python") or "")
        if not full:
            import sys

            return f"{sys.version_info.major}.{sys.version_info.minor}"
        return ".".join(full.split(".")[:2])

    def _upload_task_sync(self, settings: BraketSettings, location: TaskLocation, payload: Any) -> None:
        import cloudpickle

        clients = aws.clients_for(settings)
        self._upload_runner_sync(settings, location)
        os.makedirs(settings.cache_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=settings.cache_dir, suffix=".pkl") as spool:
            cloudpickle.dump(payload, spool)
            spool.flush()
            aws.call(
                clients.s3,
                "upload_file",
                Filename=spool.name,
                Bucket=location.bucket,
                Key=location.key(INPUT_KEY),
                ExtraArgs=_SSE,
            )

    def _upload_runner_sync(self, settings: BraketSettings, location: TaskLocation) -> str:
        """Upload the job runner next to the task's input; return its S3 URI.

        It lives under the task prefix (not shared between tasks), so a lifecycle rule or a
        clean-up elsewhere in the bucket can never leave a job without its entry point.
        """
        data, _ = runner_archive()
        aws.call(
            aws.clients_for(settings).s3,
            "put_object",
            Bucket=location.bucket,
            Key=location.key(RUNNER_KEY),
            Body=data,
            **_SSE,
        )
        return f"{location.uri}/{RUNNER_KEY}"

    def _submit_sync(self, settings: BraketSettings, location: TaskLocation, python: str) -> str:
        clients = aws.clients_for(settings)
        request = {
            "clientToken": location.client_token,
            "jobName": location.job_name,
            "roleArn": aws.role_arn(settings),
            "algorithmSpecification": {
                "scriptModeConfig": {
                    "entryPoint": ENTRY_POINT,
                    "s3Uri": f"{location.uri}/{RUNNER_KEY}",
                    "compressionType": "GZIP",
                },
                "containerImage": {"uri": settings.ecr_image_uri},
            },
            "deviceConfig": {"device": settings.quantum_device},
            "instanceConfig": {
                "instanceType": settings.classical_device,
                "volumeSizeInGb": settings.storage,
                "instanceCount": 1,
            },
            "stoppingCondition": {"maxRuntimeInSeconds": settings.time_limit},
            "outputDataConfig": {"s3Path": f"{location.uri}/output"},
            "checkpointConfig": {"s3Uri": f"{location.uri}/checkpoints"},
            "hyperParameters": {HP_TASK_URI: location.uri, HP_PYTHON_VERSION: python},
            "tags": {
                "covalent:dispatch_id": location.dispatch_id,
                "covalent:node_id": location.node_id,
                "covalent:attempt": location.attempt,
            },
        }
        try:
            return aws.call(clients.braket, "create_job", **request)["jobArn"]
        except Exception:
            self._delete_objects_sync(settings, location)
            raise

    def _get_job_sync(self, settings: BraketSettings, job_arn: str) -> dict[str, Any]:
        return aws.call(aws.clients_for(settings).braket, "get_job", jobArn=job_arn)

    def _cancel_sync(self, settings: BraketSettings, job_arn: str) -> str:
        """Request cancellation; return the job's status afterwards."""
        braket = aws.clients_for(settings).braket
        try:
            return aws.call(braket, "cancel_job", jobArn=job_arn)["cancellationStatus"]
        except aws.AwsError as exc:
            if exc.code != "ConflictException":  # already finished: report where it ended
                raise
        return aws.call(braket, "get_job", jobArn=job_arn)["status"]

    def _download_result_sync(
        self, settings: BraketSettings, location: TaskLocation, job: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Download and unpickle ``result.pkl``; None when a FAILED job left none."""
        import cloudpickle

        clients = aws.clients_for(settings)
        key = location.key(RESULT_KEY)
        os.makedirs(settings.cache_dir, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=settings.cache_dir) as scratch:
            spool = os.path.join(scratch, RESULT_KEY)
            try:
                aws.call(clients.s3, "download_file", Bucket=location.bucket, Key=key, Filename=spool)
            except aws.AwsError as exc:
                if job["status"] == "FAILED":
                    return None
                raise BraketJobError(
                    f"Braket job {job['jobArn']} completed but its result s3://{location.bucket}/{key} "
                    f"could not be read: {exc}"
                ) from exc
            try:
                with open(spool, "rb") as handle:
                    outcome = cloudpickle.load(handle)
            except Exception as exc:
                raise BraketJobError(
                    f"Braket job {job['jobArn']} left a corrupt result at "
                    f"s3://{location.bucket}/{key}: {type(exc).__name__}: {exc}"
                ) from exc
        if not isinstance(outcome, dict) or outcome.get("format") != RESULT_FORMAT:
            raise BraketJobError(
                f"Braket job {job['jobArn']} left an unrecognised result at s3://{location.bucket}/{key}"
            )
        return outcome

    def _delete_objects_sync(self, settings: BraketSettings, location: TaskLocation) -> None:
        """Delete the runner and pickles this task wrote (the job's own outputs are kept)."""
        keys = [{"Key": location.key(name)} for name in (RUNNER_KEY, INPUT_KEY, RESULT_KEY)]
        try:
            aws.call(
                aws.clients_for(settings).s3,
                "delete_objects",
                Bucket=location.bucket,
                Delete={"Objects": keys, "Quiet": True},
            )
        except aws.AwsError as exc:
            app_log.warning(f"Could not delete task objects under {location.uri}: {exc}")

    def _log_tail_sync(self, settings: BraketSettings, job: dict[str, Any], limit: int = 200) -> str:
        """The last lines of the job's CloudWatch log, for a job that failed without a result."""
        logs = aws.clients_for(settings).logs
        lines: list[str] = []
        try:
            streams = aws.call(
                logs,
                "describe_log_streams",
                logGroupName="/aws/braket/jobs",
                logStreamNamePrefix=f"{job['jobName']}/",
            ).get("logStreams", [])
            for stream in streams:
                events = aws.call(
                    logs,
                    "get_log_events",
                    logGroupName="/aws/braket/jobs",
                    logStreamName=stream["logStreamName"],
                    startFromHead=False,
                    limit=limit,
                ).get("events", [])
                lines.extend(event["message"].rstrip("\n") for event in events)
        except aws.AwsError:
            return ""
        if not lines:
            return ""
        return f"--- last lines of the Braket job log ({job['jobName']}) ---\n" + "\n".join(lines[-limit:]) + "\n"


def _register_with_covalent() -> None:
    """Register the plugin when this module was imported before covalent itself.

    In that order Covalent's loader saw this module half-initialised and skipped it; without
    this, ``ct.executor.BraketExecutor`` and the ``[executors.braket]`` defaults would be missing
    from the client process.
    """
    import covalent.executor as executors

    if getattr(executors, EXECUTOR_PLUGIN_NAME, None) is None:
        executors._executor_manager._populate_executor_map_from_module(sys.modules[__name__])
        setattr(executors, EXECUTOR_PLUGIN_NAME, BraketExecutor)


if _IMPORTED_BEFORE_COVALENT:
    _register_with_covalent()
