"""BraketExecutor: runs a Covalent electron as an Amazon Braket hybrid job.

Covalent loads this module through the ``covalent.executor.executor_plugins`` entry point
``braket``; its settings live in ``[executors.braket]`` of covalent.conf. Importing it must stay
cheap: boto3 is imported when the first client is built, the Braket SDK never.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import functools
import hashlib
import io
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for
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

from . import aws, polling
from .config import (
    DEFAULTS,
    BraketSettings,
    InvalidSettingError,
    check_setting,
    read_covalent_config,
)
from .job import ENTRY_POINT, runner_archive, runner_archive_with
from .job.runner import (
    HP_INPUT_SHA256,
    HP_KMS_KEY_ID,
    HP_PYTHON_VERSION,
    HP_TASK_URI,
    INPUT_KEY,
    RESULT_FORMAT,
    RESULT_KEY,
)

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
RUNNER_KEY = "runner.tar.gz"


class BraketJobError(RuntimeError):
    """A Braket job ended FAILED for a reason other than the electron raising, or its result
    could not be used."""


#: Attempts of one electron (dispatch and node) tried before giving up on finding a free one.
MAX_ATTEMPTS = 20
#: How long a successful pre-flight check of the AWS resources is trusted.
PREFLIGHT_TTL_SECONDS = 300.0


@dataclass(frozen=True)
class TaskLocation:
    """Where attempt ``attempt`` of one electron lives: S3 prefix, job name, idempotency token.

    All three are derived from (dispatch, node, attempt), so an executor rebuilt for the same
    task (a server restart) finds the same job again: ``CreateJob`` with the same client token
    returns the existing job instead of creating a second one.
    """

    bucket: str
    prefix: str
    job_name: str
    client_token: str
    dispatch_id: str
    node_id: str
    attempt: int

    @classmethod
    def new(cls, bucket: str, dispatch_id: str, node_id: Any, attempt: int = 0) -> TaskLocation:
        prefix = f"{S3_PREFIX}/{dispatch_id}/node-{node_id}/attempt-{attempt}"
        token = str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"covalent-braket:{dispatch_id}:{node_id}:{attempt}")
        )
        name = job_name(dispatch_id, node_id, attempt)
        return cls(bucket, prefix, name, token, str(dispatch_id), str(node_id), attempt)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"


def job_name(dispatch_id: str, node_id: Any, attempt: int) -> str:
    """A Braket job name that is always valid: ``[a-zA-Z0-9-]``, at most 50 characters.

    It reads ``cov-<dispatch id>-<node>-a<attempt>``, the dispatch id shortened to fit.
    """

    def clean(text: Any) -> str:
        return "".join(ch for ch in str(text) if ch.isascii() and ch.isalnum())

    tail = f"-{clean(node_id)[:12] or '0'}-a{int(attempt)}"
    room = _JOB_NAME_MAX - len("cov-") - len(tail)
    return f"cov-{clean(dispatch_id)[:room] or 'x'}{tail}"


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
        kms_key_id: KMS key for the task's objects and the job's outputs (SSE-KMS); empty
            means SSE-S3.
        cleanup: Delete the task's runner and pickles once the result is retrieved.
        freeze_heap: While tasks are in flight, keep the objects that were alive when the
            first began out of full garbage collections (``gc.freeze()``, undone when the last
            ends): far shorter pauses of the server's event loop. Process-wide.
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
        kms_key_id: str | None = None,
        cleanup: bool | None = None,
        freeze_heap: bool | None = None,
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
            "kms_key_id": kms_key_id,
            "cleanup": cleanup,
            "freeze_heap": freeze_heap,
        }
        configured = read_covalent_config()
        values = {}
        for name, value in given.items():
            if value is None:
                values[name] = configured[name]
                continue
            # "" means unset (covalent.conf's default); run() requires what it needs.
            if value != "":
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
        self.kms_key_id = values["kms_key_id"]
        self.cleanup = values["cleanup"]
        self.freeze_heap = values["freeze_heap"]

    # ------------------------------------------------------------------ settings
    def settings(self) -> BraketSettings:
        """The validated settings of this executor.

        Raises:
            InvalidSettingError: naming the first invalid setting.
        """
        return BraketSettings.from_mapping(
            {name: getattr(self, name, DEFAULTS[name]) for name in DEFAULTS}
        )

    # ------------------------------------------------------------------ RemoteExecutor API
    async def _validate_credentials(self) -> bool:
        """Check that the AWS credential chain yields an identity (calls STS)."""
        settings = self.settings()
        await offload(aws.caller_account, settings)
        return True

    async def _upload_task(
        self, settings: BraketSettings, location: TaskLocation, payload: Any
    ) -> str:
        return await offload(self._upload_task_sync, settings, location, payload)

    async def submit_task(
        self, settings: BraketSettings, location: TaskLocation, python: str, digest: str
    ) -> dict[str, Any] | None:
        return await offload(self._submit_sync, settings, location, python, digest)

    async def get_status(self, settings: BraketSettings, job_arn: str) -> dict[str, Any]:
        return await offload(self._get_job_sync, settings, job_arn)

    async def _poll_task(self, settings: BraketSettings, job: dict[str, Any]) -> dict[str, Any]:
        """Wait until the job is terminal, within a deadline derived from time_limit.

        Status comes from the event loop's shared :class:`~covalent_braket_plugin.polling.JobWatcher`
        (one look-up per interval for all jobs); the terminal job is then read once in full.
        """
        job_arn = job["jobArn"]
        watcher = polling.watcher_for(
            aws.client_key(settings), lambda: aws.clients_for(settings), FIRST_POLL_SECONDS
        )
        entry = watcher.watch(job_arn, job.get("createdAt"), settings.poll_freq)
        submitted = time.monotonic()
        started: float | None = None
        try:
            while True:
                entry.changed.clear()
                if entry.error is not None:
                    raise entry.error
                status = entry.status
                if status in TERMINAL_STATES:
                    if entry.job is not None and entry.job["status"] == status:
                        return entry.job
                    return await self.get_status(settings, job_arn)
                now = time.monotonic()
                if status == "QUEUED":
                    limit, since = QUEUED_DEADLINE_SECONDS, submitted
                else:
                    started = started if started is not None else now
                    limit, since = settings.time_limit + RUNNING_GRACE_SECONDS, started
                if now - since > limit:
                    await offload(self._cancel_sync, settings, job_arn)
                    raise BraketJobError(
                        f"Braket job {job_arn} still {status} after {limit} s "
                        f"(time_limit={settings.time_limit}); cancellation was requested"
                    )
                # Sleep until the watcher reports a change or the deadline passes: no wake-ups
                # (and no garbage) per interval for each of hundreds of waiting tasks.
                try:
                    await asyncio.wait_for(
                        entry.changed.wait(), timeout=max(limit - (now - since), 0.05)
                    )
                except asyncio.TimeoutError:
                    pass
        finally:
            watcher.forget(job_arn)

    async def query_result(
        self, settings: BraketSettings, location: TaskLocation, job: dict[str, Any]
    ) -> Any:
        return await offload(self._download_result_sync, settings, location, job)

    async def run(self, function: Any, args: list, kwargs: dict, task_metadata: dict) -> Any:
        """Run ``function(*args, **kwargs)`` in a Braket hybrid job and return its result."""
        settings = self.settings()
        with _heap_frozen_while_running(settings.freeze_heap):
            return await self._run(settings, function, args, kwargs, task_metadata)

    async def _run(
        self,
        settings: BraketSettings,
        function: Any,
        args: list,
        kwargs: dict,
        task_metadata: dict,
    ) -> Any:
        dispatch_id = task_metadata["dispatch_id"]
        node_id = task_metadata["node_id"]
        if await self.get_cancel_requested():
            raise TaskCancelledError(
                f"task {dispatch_id}:{node_id} was cancelled before submission"
            )
        python = await self._client_python()
        await offload(self._preflight_sync, settings)

        job: dict[str, Any] | None = None
        for attempt in range(MAX_ATTEMPTS):
            location = TaskLocation.new(settings.s3_bucket_name, dispatch_id, node_id, attempt)
            digest = await self._upload_task(settings, location, (function, args, kwargs))
            if await self.get_cancel_requested():
                await offload(self._delete_objects_sync, settings, location)
                raise TaskCancelledError(
                    f"task {dispatch_id}:{node_id} was cancelled before submission"
                )
            job = await self.submit_task(settings, location, python, digest)
            if job is not None:
                break
        if job is None:
            raise BraketJobError(
                f"no free attempt for task {dispatch_id}:{node_id} after {MAX_ATTEMPTS} tries"
            )

        job_arn = job["jobArn"]
        app_log.debug(f"Braket job {job_arn} ({job['status']}) runs {dispatch_id}:{node_id}")
        await self.set_job_handle(job_arn)
        if await self.get_cancel_requested():
            await offload(self._cancel_sync, settings, job_arn)

        if job["status"] not in TERMINAL_STATES:
            job = await self._poll_task(settings, job)
        if job["status"] == "CANCELLED":
            raise TaskCancelledError(f"Braket job {job_arn} was cancelled")
        outcome = await self.query_result(settings, location, job)
        if outcome is None:  # FAILED with no result object: the job never ran the electron
            reason = job.get("failureReason") or "no failure reason given"
            tail = await offload(self._log_tail_sync, settings, job)
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
        if settings.cleanup:  # off the result's path: the node completes without waiting for it
            cleanup = _io_pool.submit(self._delete_objects_sync, settings, location)
            _cleanups.add(cleanup)
            cleanup.add_done_callback(_cleanups.discard)
        return outcome["result"]

    async def cancel(self, task_metadata: dict, job_handle: Any) -> bool:
        """Cancel the Braket job ``job_handle``; True once it is cancelling or cancelled."""
        if not job_handle:
            return False
        settings = self.settings()
        status = await offload(self._cancel_sync, settings, str(job_handle))
        return status in {"CANCELLING", "CANCELLED"}

    # ------------------------------------------------------------------ blocking helpers
    async def _client_python(self) -> str:
        try:
            version = (await self.get_version_info()) or {}
        except Exception:  # outside a server (no runtime) the local interpreter is the client
            version = {}
        full = str(version.get("python") or "")
        if not full:
            return f"{sys.version_info.major}.{sys.version_info.minor}"
        return ".".join(full.split(".")[:2])

    def _preflight_sync(self, settings: BraketSettings) -> None:
        """Check, before anything is created, that the resources the job needs are there.

        The bucket must exist and be reachable; the role, the image and the device must exist
        where the caller may look them up (a missing permission to look is not an error), and
        the device must be online. A success is trusted for ``PREFLIGHT_TTL_SECONDS``.
        """
        key = (settings, aws.clients_for(settings).region)
        with _preflight_lock:
            if time.monotonic() - _preflight_ok.get(key, -1e9) < PREFLIGHT_TTL_SECONDS:
                return
        clients = aws.clients_for(settings)
        _look_up(
            settings,
            "s3_bucket_name",
            None,
            "an existing bucket you can write to ({code})",
            clients.s3,
            "head_bucket",
            Bucket=settings.s3_bucket_name,
        )

        role = settings.braket_job_execution_role_name
        if not settings.role_is_arn or role.split(":")[4] == aws.caller_account(settings)[0]:
            _look_up(
                settings,
                "braket_job_execution_role_name",
                {"NoSuchEntity"},
                "an existing IAM role that Braket can assume",
                clients.iam,
                "get_role",
                RoleName=role.rsplit("/", 1)[-1],
            )

        registry = settings.ecr_image_uri.partition(".dkr.ecr.")[0]
        repository_and_ref = settings.ecr_image_uri.split("/", 1)[1]
        if "@" in repository_and_ref:
            repository, digest = repository_and_ref.split("@", 1)
            image_id = {"imageDigest": digest}
        else:
            repository, tag = repository_and_ref.rsplit(":", 1)
            image_id = {"imageTag": tag}
        _look_up(
            settings,
            "ecr_image_uri",
            {"RepositoryNotFoundException", "ImageNotFoundException"},
            "an image that exists in ECR ({code})",
            clients.ecr,
            "describe_images",
            registryId=registry,
            repositoryName=repository,
            imageIds=[image_id],
        )

        device = _look_up(
            settings,
            "quantum_device",
            {"ResourceNotFoundException", "ValidationException"},
            f"a Braket device that exists in {clients.region}",
            clients.braket,
            "get_device",
            deviceArn=settings.quantum_device,
        )
        if device is not None and device.get("deviceStatus") != "ONLINE":
            raise InvalidSettingError(
                "quantum_device",
                settings.quantum_device,
                f"an ONLINE device (it is {device.get('deviceStatus')})",
            )
        with _preflight_lock:
            _preflight_ok[key] = time.monotonic()

    def _upload_task_sync(
        self, settings: BraketSettings, location: TaskLocation, payload: Any
    ) -> str:
        """Upload the runner and ``(function, args, kwargs)``; return the input's SHA-256.

        The pickle is hashed as it is written and kept as the pieces written, large buffers
        by reference (see ``_Spool``). Up to 8 MiB it travels inside the runner archive (one
        conditional ``PutObject``); beyond, it goes up beside the runner in 8 MiB parts,
        from memory or, for a pickle made of many small objects, from a spool file in
        ``cache_dir``. If this attempt's input is already there (an executor rebuilt for the
        same task), it is kept and its recorded digest returned, so the resubmitted
        ``CreateJob`` is identical.
        """
        import cloudpickle

        clients = aws.clients_for(settings)
        with _Spool(settings.cache_dir, SMALL_OBJECT_BYTES) as spool:
            cloudpickle.dump(payload, spool)
            spool.settle()
            sha = spool.sha256()
            extra = {**settings.encryption, "Metadata": {"sha256": sha}}
            if spool.name is None and spool.size <= SMALL_OBJECT_BYTES:
                bundle = _Concatenation(runner_archive_with(spool.pieces, INPUT_KEY))
                checked = {**extra, "ChecksumCRC32": bundle.checksum_crc32()}
                if self._put_new_sync(settings, location, RUNNER_KEY, bundle, checked):
                    return sha
                return self._recorded_digest_sync(settings, location, RUNNER_KEY) or sha
            spool.flush()
            # The runner goes up beside the input, at the same time (it is small; the input is
            # not); every path waits for it, so a job is never created without its entry point.
            runner = _side_pool.submit(self._upload_runner_sync, settings, location)
            try:
                recorded = self._recorded_digest_sync(settings, location, INPUT_KEY)
                key = location.key(INPUT_KEY)
                if recorded:
                    sha = recorded
                elif spool.name is None:  # large buffers held by reference: sent from memory
                    _upload_parts_sync(clients.s3, location.bucket, key, spool.pieces, extra)
                else:
                    aws.call(
                        clients.s3,
                        "upload_file",
                        Filename=spool.name,
                        Bucket=location.bucket,
                        Key=key,
                        ExtraArgs=extra,
                        Config=_transfer_config(),
                    )
            except BaseException:
                wait_for([runner])  # not left running; the first error is the one raised
                raise
            runner.result()
        return sha

    @staticmethod
    def _put_new_sync(
        settings: BraketSettings, location: TaskLocation, name: str, body: Any, extra: dict
    ) -> bool:
        """PutObject only if the key is free (``If-None-Match: *``); False if it was taken."""
        answer = aws.call_unless(
            _KEY_TAKEN,
            aws.clients_for(settings).s3,
            "put_object",
            Bucket=location.bucket,
            Key=location.key(name),
            Body=body,
            IfNoneMatch="*",
            **extra,
        )
        return answer is not None

    def _head_sync(
        self, settings: BraketSettings, location: TaskLocation, name: str
    ) -> dict[str, Any] | None:
        """HeadObject on one of this attempt's objects; None if it is not there."""
        return aws.call_unless(
            _NO_SUCH_KEY,
            aws.clients_for(settings).s3,
            "head_object",
            Bucket=location.bucket,
            Key=location.key(name),
        )

    def _recorded_digest_sync(
        self, settings: BraketSettings, location: TaskLocation, name: str
    ) -> str | None:
        """The input SHA-256 recorded on this attempt's existing object, or None if there is none."""
        head = self._head_sync(settings, location, name)
        return head.get("Metadata", {}).get("sha256") if head is not None else None

    def _upload_runner_sync(self, settings: BraketSettings, location: TaskLocation) -> None:
        """Upload the job runner next to the task's input.

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
            **settings.encryption,
        )

    def _submit_sync(
        self, settings: BraketSettings, location: TaskLocation, python: str, digest: str
    ) -> dict[str, Any] | None:
        """CreateJob (idempotent); return the job to follow, or None if this attempt is spent.

        The same client token returns the same job, so a retried request (or a rebuilt
        executor) never makes a second job. A job found FAILED or CANCELLED, or COMPLETED
        with its result already collected, belongs to an earlier attempt.
        """
        clients = aws.clients_for(settings)
        hyperparameters = {
            HP_TASK_URI: location.uri,
            HP_PYTHON_VERSION: python,
            HP_INPUT_SHA256: digest,
        }
        output: dict[str, Any] = {"s3Path": f"{location.uri}/output"}
        if settings.kms_key_id:
            hyperparameters[HP_KMS_KEY_ID] = settings.kms_key_id
            output["kmsKeyId"] = settings.kms_key_id
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
            "outputDataConfig": output,
            "checkpointConfig": {"s3Uri": f"{location.uri}/checkpoints"},
            "hyperParameters": hyperparameters,
            "tags": {
                "covalent:dispatch_id": location.dispatch_id,
                "covalent:node_id": location.node_id,
                "covalent:attempt": str(location.attempt),
            },
        }
        try:
            job_arn = aws.call(clients.braket, "create_job", **request)["jobArn"]
        except aws.AwsError as exc:
            if exc.code == "ConflictException":  # the name is taken by an older attempt
                return None
            self._delete_objects_sync(settings, location)
            raise
        try:
            job = self._get_job_sync(settings, job_arn)
        except aws.AwsError as exc:
            if not exc.transient:
                raise
            return {
                "jobArn": job_arn,
                "jobName": location.job_name,
                "status": "QUEUED",
            }  # polling will tell
        status = job["status"]
        if status in ("FAILED", "CANCELLED"):
            return None
        if status == "COMPLETED" and self._head_sync(settings, location, RESULT_KEY) is None:
            return None
        return job

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
        """Download, check and unpickle ``result.pkl``; None when a FAILED job left none."""
        import cloudpickle

        clients = aws.clients_for(settings)
        key = location.key(RESULT_KEY)
        where = f"s3://{location.bucket}/{key}"
        try:
            data, spool = self._fetch_sync(clients, location.bucket, key, settings.cache_dir)
        except aws.AwsError as exc:
            if job["status"] == "FAILED":
                return None
            raise BraketJobError(
                f"Braket job {job['jobArn']} completed but its result {where} could not be read: {exc}"
            ) from exc
        try:
            outcome = cloudpickle.loads(data) if spool is None else cloudpickle.load(spool)
        except Exception as exc:
            raise BraketJobError(
                f"Braket job {job['jobArn']} left a corrupt result at {where}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            del data
            if spool is not None:
                spool.close()
        if not isinstance(outcome, dict) or outcome.get("format") != RESULT_FORMAT:
            raise BraketJobError(
                f"Braket job {job['jobArn']} left an unrecognised result at {where}"
            )
        if outcome.get("task_uri") != location.uri or outcome.get("job_name") != job["jobName"]:
            raise BraketJobError(
                f"the result at {where} was written by job {outcome.get('job_name')!r} for "
                f"{outcome.get('task_uri')!r}, not by Braket job {job['jobArn']}; it was not used"
            )
        return outcome

    @staticmethod
    def _fetch_sync(
        clients: aws.AwsClients, bucket: str, key: str, cache_dir: str
    ) -> tuple[bytes, Any]:
        """Read an object: up to 1 MiB into memory, ``(data, None)``; larger streamed into a
        spool file in ``cache_dir`` (ranged GETs in parallel beyond 8 MiB), ``(b"", file)``
        with the file at its start. Never a second copy of a large object in memory."""
        from botocore.exceptions import BotoCoreError

        response = aws.call(clients.s3, "get_object", Bucket=bucket, Key=key)
        body = response["Body"]
        size = response.get("ContentLength", 0)
        try:
            if size <= IN_MEMORY_RESULT_BYTES:
                return body.read(), None
            os.makedirs(cache_dir, exist_ok=True)
            spool = tempfile.TemporaryFile(dir=cache_dir)  # noqa: SIM115 (returned open)
            try:
                if size > SMALL_OBJECT_BYTES:
                    body.close()
                    # Four ranged GETs at a time: downloads fill a file; more buffers, no speed.
                    aws.call(
                        clients.s3,
                        "download_fileobj",
                        Bucket=bucket,
                        Key=key,
                        Fileobj=spool,
                        Config=_transfer_config(concurrency=4),
                    )
                else:
                    for chunk in body.iter_chunks(1 << 20):
                        spool.write(chunk)
                spool.seek(0)
            except BaseException:
                spool.close()
                raise
            return b"", spool
        except BotoCoreError as exc:  # a connection dropped mid-body: let the caller report it
            raise aws.AwsError("get_object", type(exc).__name__, str(exc)) from exc

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

    def _log_tail_sync(
        self, settings: BraketSettings, job: dict[str, Any], limit: int = 200
    ) -> str:
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
        return (
            f"--- last lines of the Braket job log ({job['jobName']}) ---\n"
            + "\n".join(lines[-limit:])
            + "\n"
        )


#: S3's answers to a conditional PutObject whose key exists, and to a HeadObject of no object.
_KEY_TAKEN = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
_NO_SUCH_KEY = frozenset({"404", "NoSuchKey", "NotFound"})
_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"})


def _look_up(
    settings: BraketSettings,
    setting: str,
    missing: set[str] | None,
    allowed: str,
    client: Any,
    operation: str,
    **kwargs: Any,
) -> dict[str, Any] | None:
    """A read-only pre-flight look-up of the resource ``setting`` names.

    An error code in ``missing`` (any code, if None) means the setting names nothing usable:
    :class:`InvalidSettingError`. A denial means the caller may not look: None, no verdict.
    Anything else propagates.
    """
    try:
        return aws.call(client, operation, **kwargs)
    except aws.AwsError as exc:
        if exc.code in _DENIED:
            return None
        if missing is None or exc.code in missing:
            raise InvalidSettingError(
                setting, getattr(settings, setting), allowed.format(code=exc.code)
            ) from exc
        raise


class _Spool:
    """A write-only pickle sink that hashes what passes through it (SHA-256, one pass).

    What the pickler writes stays in memory as the pieces it wrote: a large buffer (a
    ``bytes`` or an array's memory, at least ``_REFERENCED_BYTES``) is kept by reference, not
    copied, so an argument holding a big array costs no second copy. Once the pieces the
    pickler made itself pass ``limit`` bytes, everything spills to a named file in
    ``directory`` (deleted on exit): a pickle of many small objects, or of large strings
    (which the pickler encodes into new ``bytes``), is never held whole in memory beside them.

    Which large ``bytes`` the pickler made is told by who else holds them: once the pickler
    lets go (at the next large write, and in :meth:`settle` after the dump), a piece held by
    this spool alone was a copy (a string's UTF-8, an ``array.array``'s or a strided array's
    bytes), and counts toward ``limit``; one the arguments hold is theirs.
    """

    def __init__(self, directory: str, limit: int) -> None:
        self._directory = directory
        self._limit = limit
        self._digest = hashlib.sha256()
        self._pieces: list[Any] | None = []
        self._made = 0
        #: Indices of large ``bytes`` pieces not yet known to be the arguments' own.
        self._unsure: list[int] = []
        self._file: Any = None
        self.size = 0

    @property
    def name(self) -> str | None:
        """The spill file's path, or None while the content is in memory."""
        return self._file.name if self._file is not None else None

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if not view.c_contiguous:  # the raw bytes, in the order the pickler means them
            view = memoryview(view.tobytes(order="A"))
        view = view.cast("B")
        length = view.nbytes
        self._digest.update(view)
        self.size += length
        if self._pieces is None:
            return self._file.write(view)
        if length >= _REFERENCED_BYTES:
            self.settle()
            if self._pieces is None:  # spilled: copies held passed the limit
                return self._file.write(view)
            if type(data) is bytes:  # the object itself, so that who holds it can be told
                self._unsure.append(len(self._pieces))
                self._pieces.append(data)
            else:
                self._pieces.append(view)
        else:
            self._pieces.append(data if type(data) is bytes else bytes(view))  # frames: bytes
            self._made += length
            if self._made > self._limit:
                self._spill()
        return length

    def settle(self) -> None:
        """Count the large ``bytes`` pieces nothing but this spool holds any more (copies the
        pickler made and let go of) toward the limit; spill if they pass it. Called at each
        large write and once after the dump, when the pickler and its memo are gone."""
        pieces = self._pieces
        if not self._unsure or pieces is None:
            return
        unsure = []
        for index in self._unsure:
            if _references(pieces, index) <= _SOLE_REFERENCES:
                self._made += len(pieces[index])
            else:
                unsure.append(index)
        self._unsure = unsure
        if self._made > self._limit:
            self._spill()

    def _spill(self) -> None:
        os.makedirs(self._directory, exist_ok=True)
        self._file = tempfile.NamedTemporaryFile(dir=self._directory, suffix=".pkl")  # noqa: SIM115 (closed in __exit__)
        for piece in self._pieces or ():
            self._file.write(piece)
        self._pieces = None
        self._unsure = []
        self._file.flush()

    @property
    def pieces(self) -> list[Any]:
        """The pickle as the buffers written, in order (only while it is in memory)."""
        assert self._pieces is not None
        return self._pieces

    def sha256(self) -> str:
        return self._digest.hexdigest()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
        self._pieces = None


def _references(items: list[Any], index: int) -> int:
    """How many references ``items[index]`` has, as counted from here."""
    return sys.getrefcount(items[index])


#: What :func:`_references` counts for an object only its list holds (measured, not assumed:
#: the count a call sees differs between Python versions).
_SOLE_REFERENCES = _references([object()], 0)


class _Concatenation(io.RawIOBase):
    """A seekable, read-only file over a list of buffers, as if they were one: a request body
    made of the pickle's pieces without joining them (reads copy only what they return)."""

    def __init__(self, pieces: list[Any]) -> None:
        super().__init__()
        self._pieces = [memoryview(piece).cast("B") for piece in pieces]
        self._starts = [0]
        for piece in self._pieces:
            self._starts.append(self._starts[-1] + len(piece))
        self._position = 0

    def __len__(self) -> int:
        return self._starts[-1]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self)}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes, at most ``_READ_BYTES`` of them: a raw file's short read,
        which every reader of a request body loops over, so that a reader asking for a large
        chunk copies a small one at a time. A negative or None ``size`` reads all that is
        left, in one copy."""
        if size is None or size < 0:
            end = len(self)
        else:
            end = min(len(self), self._position + min(size, _READ_BYTES))
        if end <= self._position:
            return b""
        index = bisect.bisect_right(self._starts, self._position) - 1
        taken = []
        while self._position < end:
            piece = self._pieces[index]
            start = self._position - self._starts[index]
            chunk = piece[start : start + end - self._position]
            taken.append(chunk)
            self._position += len(chunk)
            index += 1
        return bytes(taken[0]) if len(taken) == 1 else b"".join(taken)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer).cast("B")))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def checksum_crc32(self) -> str:
        """The body's CRC32 as S3 takes it (``ChecksumCRC32``: base64 of the big-endian value),
        computed over the buffers in place; given with the request, botocore does not read the
        body a second time to compute it."""
        crc = 0
        for piece in self._pieces:
            crc = zlib.crc32(piece, crc)
        return base64.b64encode(crc.to_bytes(4, "big")).decode()

    def section(self, start: int, end: int) -> _Concatenation:
        """Bytes ``start`` to ``end`` as a file of their own, sharing this one's buffers."""
        index = bisect.bisect_right(self._starts, start) - 1
        views = []
        while start < end and index < len(self._pieces):
            offset = start - self._starts[index]
            view = self._pieces[index][offset : offset + end - start]
            views.append(view)
            start += len(view)
            index += 1
        return _Concatenation(views)


def _upload_parts_sync(s3: Any, bucket: str, key: str, pieces: list[Any], extra: dict) -> None:
    """A multipart upload of a body held in memory as ``pieces``: 8 MiB parts sent in
    parallel, each a view of the pieces (no copy of the body is made); aborted on failure, so
    no parts are left behind (and should the abort itself fail, the bucket's lifecycle rule
    in ``infra/terraform`` removes incomplete uploads after a day).

    The pieces include the arguments' own buffers, read here, after the hash was taken: the
    arguments must not change in between (Covalent hands each task arguments of its own).
    """
    body = _Concatenation(pieces)
    started = aws.call(
        s3, "create_multipart_upload", Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32", **extra
    )
    upload = {"Bucket": bucket, "Key": key, "UploadId": started["UploadId"]}

    def send(number: int, start: int) -> dict[str, Any]:
        part = body.section(start, min(start + PART_BYTES, len(body)))
        crc = part.checksum_crc32()
        answer = aws.call(
            s3, "upload_part", PartNumber=number, Body=part, ChecksumCRC32=crc, **upload
        )
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": crc}

    parts: list[Any] = []
    try:
        for number, start in enumerate(range(0, len(body), PART_BYTES), start=1):
            parts.append(_part_pool.submit(send, number, start))
        done = [part.result() for part in parts]
        aws.call(
            s3,
            "complete_multipart_upload",
            MultipartUpload={"Parts": done},
            **upload,
        )
    except BaseException:
        for part in parts:
            part.cancel()
        wait_for(parts)
        with contextlib.suppress(Exception):  # the first error is the one raised
            aws.call(s3, "abort_multipart_upload", **upload)
        raise


def _transfer_config(concurrency: int = 10) -> Any:
    """Multipart transfers in 8 MiB parts: buffers stay bounded whatever the payload's size."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=SMALL_OBJECT_BYTES,
        multipart_chunksize=PART_BYTES,
        max_concurrency=concurrency,
        max_io_queue=16,
    )


#: Objects up to this size go in one request; larger ones in parallel parts of this size.
SMALL_OBJECT_BYTES = 8 * 1024 * 1024
PART_BYTES = 8 * 1024 * 1024
#: Results up to this size are read into memory; larger ones stream into a spool file.
IN_MEMORY_RESULT_BYTES = 1024 * 1024
#: A write of the pickler at least this large is kept by reference: an argument's own buffer.
_REFERENCED_BYTES = 1024 * 1024
#: The threads every blocking AWS call of every executor in the process runs on, bounded:
#: botocore holds the GIL while it signs and parses, and the event loop waits its turn behind
#: every thread that wants it (500 tasks starting at once: worst loop lag 46-98 ms with 8
#: threads, 31 ms with 4); a call may sleep in botocore's retry backoff, so there are a few,
#: so that throttling does not stall every other task. Calls beyond wait off the loop.
_io_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="covalent-braket-io")
#: The most a read of a request body made of pieces returns (and copies) at a time.
_READ_BYTES = 64 * 1024
#: Threads sending the parts of inputs held in memory, shared by every upload of the process.
_part_pool = ThreadPoolExecutor(max_workers=10, thread_name_prefix="covalent-braket-part")
#: Threads for the small uploads that run beside a large one (the runner beside the input).
_side_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="covalent-braket-side")


_cleanups: set[Any] = set()
_heap = {"tasks": 0, "frozen_by_us": False}
_heap_lock = threading.Lock()


@contextlib.contextmanager
def _heap_frozen_while_running(enabled: bool) -> Iterator[None]:
    """``freeze_heap``: while tasks are in flight, the objects alive when the first began sit
    in the collector's permanent generation, and are put back when the last ends.

    A full collection walks every tracked object while holding the GIL (about 200,000 in a
    server with covalent and boto3 loaded: 0.1-0.2 s on two cores, a pause of every task on
    the event loop); frozen, it walks only what was made since. Freezing and thawing are
    constant-time list splices. Objects made while frozen are collected as usual; frozen
    ones are still freed when their last reference goes, but a cycle among them that became
    garbage waits for the thaw (at most the heap alive when the first task began, if tasks
    follow one another without a gap). A heap someone else froze first is left alone; a
    ``gc.freeze()`` of someone else's while ours holds is undone by our thaw.
    """
    import gc

    if not enabled:
        yield
        return
    with _heap_lock:
        _heap["tasks"] += 1
        if _heap["tasks"] == 1 and gc.get_freeze_count() == 0:
            gc.freeze()
            _heap["frozen_by_us"] = True
    try:
        yield
    finally:
        with _heap_lock:
            _heap["tasks"] -= 1
            if _heap["tasks"] == 0 and _heap["frozen_by_us"]:
                gc.unfreeze()
                _heap["frozen_by_us"] = False


def wait_for_cleanups(timeout: float = 60.0) -> None:
    """Block until the background clean-ups started so far are done (for tests, benchmarks
    and orderly shutdown)."""
    wait_for(list(_cleanups), timeout=timeout)


def offload(function: Any, *args: Any) -> Any:
    """Run a blocking call on the executor's I/O threads; awaitable from the event loop."""
    return asyncio.get_running_loop().run_in_executor(_io_pool, functools.partial(function, *args))


_preflight_lock = threading.Lock()
_preflight_ok: dict[Any, float] = {}


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
