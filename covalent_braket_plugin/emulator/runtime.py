"""Runs emulated hybrid jobs as subprocesses under the Braket base container's contract.

Each job gets its own working directory laid out like the container's ``/opt/ml`` tree, a
hyperparameters file, the ``AMZN_BRAKET_*`` variables pointing into that directory, and every
AWS endpoint variable pointing back at the emulator. The process is
:mod:`covalent_braket_plugin.emulator.bootstrap` in the current Python environment. Its output
goes to CloudWatch Logs (``/aws/braket/jobs``, stream ``<jobName>/algo-1-<epoch>``) and its
results directory is tarred to ``{outputDataConfig.s3Path}/output/model.tar.gz``.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from .models import BraketBackend, Job, QuantumTask
    from .quantum import Device

LOG_GROUP = "/aws/braket/jobs"
_OWN_PROCESS_GROUP: dict[str, Any] = (
    {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
)
_KILL_GRACE_SECONDS = 3.0
_LOG_FLUSH_SECONDS = 0.5


@dataclass
class RuntimeSettings:
    """Knobs of the job runtime, changeable at run time over the control API."""

    #: Seconds a job stays QUEUED before it may start.
    queue_seconds: float = 0.0
    #: Jobs that may run at once; more wait in QUEUED, as on the real service.
    max_concurrent_jobs: int = 32
    #: Seconds a quantum task stays QUEUED before it runs.
    task_queue_seconds: float = 0.0
    #: Image-mode jobs: container image URI -> the command (argv) that stands in for it.
    image_commands: dict[str, list[str]] = field(default_factory=dict)


def split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


class _Run:
    """Book-keeping of one job's process."""

    def __init__(self, job: Job, workdir: Path) -> None:
        self.job = job
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.stop_requested = threading.Event()
        #: Set when the process exits or a stop is requested: the job's thread waits on it.
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def request_stop(self) -> None:
        self.stop_requested.set()
        self.wake.set()

    def _wait_for_exit(self) -> None:
        assert self.process is not None
        self.process.wait()
        self.wake.set()


class JobRuntime:
    """Starts, watches and stops job processes; reports state to the backend."""

    def __init__(
        self, endpoint_url: str, work_dir: Path, settings: RuntimeSettings | None = None
    ) -> None:
        self.endpoint_url = endpoint_url
        self.work_dir = Path(work_dir)
        self.settings = settings or RuntimeSettings()
        self.backend: BraketBackend | None = None
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._slots = threading.Condition(self._lock)
        self._running = 0
        self._clients: dict[str, Any] = {}

    # ---------------------------------------------------------------- AWS clients
    def client(self, service: str, region: str) -> Any:
        key = f"{service}:{region}"
        with self._lock:
            if key not in self._clients:
                import boto3
                from botocore.config import Config

                from .faults import INTERNAL_AGENT

                self._clients[key] = boto3.session.Session().client(
                    service,
                    region_name=region,
                    endpoint_url=self.endpoint_url,
                    aws_access_key_id="emulator",
                    aws_secret_access_key="emulator",
                    config=Config(user_agent_extra=INTERNAL_AGENT, retries={"mode": "standard"}),
                )
            return self._clients[key]

    # ---------------------------------------------------------------- Runtime protocol
    def start(self, job: Job) -> None:
        workdir = self.work_dir / job.job_id
        run = _Run(job, workdir)
        with self._lock:
            self._runs[job.arn] = run
        run.thread = threading.Thread(
            target=self._lifecycle, args=(run,), name=f"job-{job.name}", daemon=True
        )
        run.thread.start()

    def stop(self, job: Job) -> None:
        with self._lock:
            run = self._runs.get(job.arn)
            if run is not None:
                run.request_stop()
                self._slots.notify_all()
        if run is None:
            self._finish_cancel(job)

    def kill(self, arn: str) -> bool:
        """SIGKILL a running job's process (as if its instance died); False if none runs."""
        with self._lock:
            run = self._runs.get(arn)
        if run is None or run.process is None or run.process.poll() is not None:
            return False
        try:
            os.killpg(run.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def shutdown(self) -> None:
        with self._lock:
            runs = list(self._runs.values())
            for run in runs:
                run.request_stop()
            self._slots.notify_all()
        for run in runs:
            self._kill(run)
        for run in runs:
            if run.thread is not None:
                run.thread.join(timeout=10)
        with self._lock:
            self._runs.clear()

    # ---------------------------------------------------------------- the job's life
    def _finish_cancel(self, job: Job) -> None:
        assert self.backend is not None
        self.backend.transition(job, "CANCELLED", event="CANCELLED")

    def _lifecycle(self, run: _Run) -> None:
        backend = self.backend
        assert backend is not None
        job = run.job
        try:
            if not self._wait_for_slot(run):
                self._finish_cancel(job)
                return
            try:
                self._run(run)
            finally:
                with self._lock:
                    self._running -= 1
                    self._slots.notify_all()
        except Exception as exc:  # the emulator must never lose a job silently
            backend.transition(job, "FAILED", event="FAILED", reason=f"InternalServiceError: {exc}")
        finally:
            with self._lock:
                self._runs.pop(job.arn, None)
            # A cancel that came between two steps (the job is CANCELLING, so every other
            # transition was refused) ends here: a job never stays CANCELLING.
            if job.status == "CANCELLING":
                self._finish_cancel(job)

    def _wait_for_slot(self, run: _Run) -> bool:
        deadline = time.monotonic() + self.settings.queue_seconds
        with self._lock:
            while True:
                if run.stop_requested.is_set():
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0 and self._running < self.settings.max_concurrent_jobs:
                    self._running += 1
                    return True
                self._slots.wait(timeout=remaining if remaining > 0 else 0.5)

    def _run(self, run: _Run) -> None:
        backend = self.backend
        assert backend is not None
        job = run.job
        request = job.request
        backend.add_event(job, "STARTING_INSTANCE")
        paths = self._prepare_workdir(run)
        backend.add_event(job, "DOWNLOADING_DATA")
        self._download_inputs(job, paths)
        if not backend.transition(job, "RUNNING", event="RUNNING"):
            return
        if run.stop_requested.is_set():
            self._finish_cancel(job)
            return

        env = self._environment(job, paths)
        command = self._command(job, env)
        if command is None:
            image = request["algorithmSpecification"].get("containerImage", {}).get("uri")
            backend.transition(
                job,
                "FAILED",
                event="FAILED",
                reason=(
                    f"ClientError: the emulator has no command mapped to image {image}; map one with "
                    "the image_commands setting, or use script mode (scriptModeConfig)"
                ),
            )
            return

        logger = _LogShipper(self, job)
        run.process = subprocess.Popen(
            command,
            cwd=paths["root"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # A process group of its own (to stop the job's whole tree), in the emulator's
            # session: the job shares the emulator's scheduling group and priority, so
            # ``nice covalent-braket emulator`` lowers the jobs too.
            **_OWN_PROCESS_GROUP,
        )
        reader = threading.Thread(target=logger.pump, args=(run.process.stdout,), daemon=True)
        reader.start()
        limit = request["stoppingCondition"]["maxRuntimeInSeconds"]
        deadline = time.monotonic() + limit
        timed_out = False
        # The job ends the moment its process exits (no polling), is stopped, or times out.
        threading.Thread(target=run._wait_for_exit, daemon=True).start()
        while run.process.poll() is None and not run.stop_requested.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            run.wake.wait(timeout=remaining)
        if run.process.poll() is None:
            self._kill(run)
        reader.join(timeout=10)
        logger.close()
        code = run.process.returncode

        if run.stop_requested.is_set():
            self._finish_cancel(job)
            return
        backend.add_event(job, "UPLOADING_RESULTS")
        self._upload_outputs(job, paths)
        if timed_out:
            backend.transition(
                job,
                "FAILED",
                event="MAX_RUNTIME_EXCEEDED",
                reason=f"MaxRuntimeExceeded: the job ran longer than maxRuntimeInSeconds={limit}",
            )
        elif code == 0:
            backend.transition(job, "COMPLETED", event="COMPLETED")
        else:
            failure = (
                paths["failure"].read_text(errors="replace").strip()
                if paths["failure"].exists()
                else ""
            )
            if not failure and code < 0:
                failure = f"the job process was killed by signal {-code}"
            reason = f"AlgorithmError: {failure or 'the job process failed'}, exit code: {code}"
            backend.transition(job, "FAILED", event="FAILED", reason=reason)

    def _command(self, job: Job, env: dict[str, str]) -> list[str] | None:
        """The job's process: the bootstrap in script mode, the mapped command in image mode.

        In image mode the hyperparameters are also exported as ``SM_HP_<NAME>`` (and all of
        them as ``SM_HPS``), as the SageMaker training toolkit does.
        """
        algorithm = job.request["algorithmSpecification"]
        if algorithm.get("scriptModeConfig"):
            return [sys.executable, "-u", "-m", "covalent_braket_plugin.emulator.bootstrap"]
        command = self.settings.image_commands.get(
            algorithm.get("containerImage", {}).get("uri", "")
        )
        if not command:
            return None
        hyperparameters = job.request.get("hyperParameters") or {}
        env["SM_HPS"] = json.dumps(hyperparameters)
        for name, value in hyperparameters.items():
            env[f"SM_HP_{re.sub(r'[^A-Za-z0-9_]', '_', name).upper()}"] = value
        return [str(part) for part in command]

    def _kill(self, run: _Run) -> None:
        process = run.process
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, _KILL_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    # ---------------------------------------------------------------- container contract
    def _prepare_workdir(self, run: _Run) -> dict[str, Path]:
        root = run.workdir
        if root.exists():
            shutil.rmtree(root)
        paths = {
            "root": root,
            "code": root / "opt" / "braket" / "code" / "customer_code",
            "input_config": root / "opt" / "braket" / "input" / "config",
            "input_data": root / "opt" / "braket" / "input" / "data",
            "model": root / "opt" / "braket" / "model",
            "checkpoints": root / "opt" / "jobs" / "checkpoints",
            "output": root / "opt" / "ml" / "output",
        }
        for path in paths.values():
            path.mkdir(parents=True, exist_ok=True)
        paths["hp_file"] = paths["input_config"] / "hyperparameters.json"
        paths["hp_file"].write_text(json.dumps(run.job.request.get("hyperParameters") or {}))
        paths["failure"] = paths["output"] / "failure"
        return paths

    def _download_inputs(self, job: Job, paths: dict[str, Path]) -> None:
        s3 = self.client("s3", job.region)
        for channel in job.request.get("inputDataConfig") or []:
            uri = channel["dataSource"]["s3DataSource"]["s3Uri"]
            self._download_prefix(s3, uri, paths["input_data"] / channel["channelName"])
        checkpoint = (job.request.get("checkpointConfig") or {}).get("s3Uri")
        if checkpoint:
            self._download_prefix(s3, checkpoint, paths["checkpoints"])

    @staticmethod
    def _download_prefix(s3: Any, uri: str, target: Path) -> None:
        bucket, prefix = split_s3(uri)
        paginator = s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    relative = item["Key"][len(prefix) :].lstrip("/") or os.path.basename(
                        item["Key"]
                    )
                    destination = target / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    s3.download_file(bucket, item["Key"], str(destination))
        except Exception:  # a missing bucket or prefix leaves the channel empty, as on AWS
            return

    def _upload_outputs(self, job: Job, paths: dict[str, Path]) -> None:
        s3 = self.client("s3", job.region)
        bucket, prefix = split_s3(job.request["outputDataConfig"]["s3Path"])
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            for item in sorted(paths["model"].rglob("*")):
                tar.add(item, arcname=str(item.relative_to(paths["model"])), recursive=False)
        key = f"{prefix.rstrip('/')}/output/model.tar.gz".lstrip("/")
        s3.put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
        checkpoint = (job.request.get("checkpointConfig") or {}).get("s3Uri")
        if checkpoint:
            cbucket, cprefix = split_s3(checkpoint)
            for item in paths["checkpoints"].rglob("*"):
                if item.is_file():
                    relative = item.relative_to(paths["checkpoints"]).as_posix()
                    s3.upload_file(
                        str(item), cbucket, f"{cprefix.rstrip('/')}/{relative}".lstrip("/")
                    )

    def _environment(self, job: Job, paths: dict[str, Path]) -> dict[str, str]:
        request = job.request
        out_bucket, out_prefix = split_s3(request["outputDataConfig"]["s3Path"])
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "AMZN_BRAKET_", "BRAKET_", "SM_", "COVALENT_BRAKET_"))
        }
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                # Every AWS call from the job comes back to the emulator, never to AWS.
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "BRAKET_ENDPOINT": self.endpoint_url,
                "AWS_ACCESS_KEY_ID": "emulator",
                "AWS_SECRET_ACCESS_KEY": "emulator",
                "AWS_REGION": job.region,
                "AWS_DEFAULT_REGION": job.region,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true",
                # As in a real job, the code's own AWS calls retry throttling and 5xx.
                "AWS_RETRY_MODE": "standard",
                "AWS_MAX_ATTEMPTS": "10",
                "AMZN_BRAKET_JOB_NAME": job.name,
                "AMZN_BRAKET_DEVICE_ARN": job.device,
                "AMZN_BRAKET_JOB_RESULTS_DIR": str(paths["model"]),
                "AMZN_BRAKET_CHECKPOINT_DIR": str(paths["checkpoints"]),
                "AMZN_BRAKET_HP_FILE": str(paths["hp_file"]),
                "AMZN_BRAKET_INPUT_DIR": str(paths["input_data"]),
                "AMZN_BRAKET_OUT_S3_BUCKET": out_bucket,
                "AMZN_BRAKET_TASK_RESULTS_S3_URI": f"s3://{out_bucket}/jobs/{job.name}/tasks",
                "AMZN_BRAKET_JOB_RESULTS_S3_PATH": f"{out_prefix.rstrip('/')}/output",
                "AMZN_BRAKET_JOB_TOKEN": job.token,
                "BRAKET_EMULATOR_JOB_ROOT": str(paths["root"]),
                "BRAKET_EMULATOR_FAILURE_FILE": str(paths["failure"]),
                "BRAKET_EMULATOR_CODE_DIR": str(paths["code"]),
            }
        )
        script = request["algorithmSpecification"].get("scriptModeConfig")
        if script:
            env["AMZN_BRAKET_SCRIPT_S3_URI"] = script["s3Uri"]
            env["AMZN_BRAKET_SCRIPT_ENTRY_POINT"] = script["entryPoint"]
            env["AMZN_BRAKET_SCRIPT_COMPRESSION_TYPE"] = script.get("compressionType", "NONE")
        return env


class QuantumTaskRunner:
    """Runs quantum tasks on the local simulators, a few at a time, in worker threads."""

    def __init__(self, runtime: JobRuntime, workers: int = 4) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.runtime = runtime
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="quantum-task")

    def start(self, task: QuantumTask, device: Device) -> None:
        self._pool.submit(self._execute, task, device)

    def _execute(self, task: QuantumTask, device: Device) -> None:
        from .quantum import simulate

        backend = self.runtime.backend
        assert backend is not None
        delay = self.runtime.settings.task_queue_seconds
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and task.status == "QUEUED":
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        if not backend.start_task(task):
            return
        try:
            request = task.request
            inputs = request.get("inputs") or None
            results = simulate(device, request["action"], int(request["shots"]), inputs, task.arn)
            self.runtime.client("s3", task.region).put_object(
                Bucket=request["outputS3Bucket"], Key=task.results_key, Body=results.encode()
            )
        except Exception as exc:  # a program the simulator rejects fails the task, as on AWS
            backend.finish_task(task, "FAILED", f"{type(exc).__name__}: {exc}")
            return
        backend.finish_task(task, "COMPLETED")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _LogShipper:
    """Copies a job's output lines to CloudWatch Logs in small batches."""

    def __init__(self, runtime: JobRuntime, job: Job) -> None:
        self.logs = runtime.client("logs", job.region)
        self.stream = f"{job.name}/algo-1-{int(time.time())}"
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._ensure_stream()

    def _ensure_stream(self) -> None:
        try:
            self.logs.create_log_group(logGroupName=LOG_GROUP)
        except self.logs.exceptions.ResourceAlreadyExistsException:
            pass
        self.logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=self.stream)

    def pump(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._lock:
                self._pending.append({"timestamp": int(time.time() * 1000), "message": line or " "})
            if time.monotonic() - self._last_flush > _LOG_FLUSH_SECONDS:
                self.flush()
        stream.close()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._last_flush = time.monotonic()
        for start in range(0, len(batch), 1000):
            try:
                self.logs.put_log_events(
                    logGroupName=LOG_GROUP,
                    logStreamName=self.stream,
                    logEvents=batch[start : start + 1000],
                )
            except Exception:  # logs are best effort; the job's state is not
                return

    def close(self) -> None:
        self.flush()
