"""The job lifecycle: jobs wait for a slot, start as local processes in their emulated
container, and end COMPLETED, FAILED, CANCELLED or past their runtime.

A script-mode job's process is forked from the warm launcher's parent, which has the usual
job imports loaded (:mod:`.launcher`); an image-mode job's command is started cold
(:func:`~.launcher.start_cold`, as the launcher starts a job it cannot fork).

Each job's process runs in a process group of its own (so that its whole tree can be stopped)
inside the emulator's session, so it shares the emulator's scheduling group and priority:
``nice covalent-braket emulator`` lowers the jobs too. Its output goes to CloudWatch Logs
(:class:`~.log_shipping.LogShipper`), its results directory to S3.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..api.models import Job
from ..aws_services.own_clients import InternalClients
from ..settings import RuntimeSettings
from .bootstrap import IMAGE_ENVIRONMENT_VARIABLE
from .contract import JobContainer
from .environments import (
    DEFAULT_CACHE_DIR,
    ImageEnvironmentError,
    job_layer,
    plugin_path,
    python_of,
)
from .launcher import LaunchedProcess, Launcher, start_cold
from .log_shipping import LogShipper

if TYPE_CHECKING:
    from ..api.backend import BraketBackend

_KILL_GRACE_SECONDS = 3.0
#: The command of a script-mode job: the container's bootstrap, which the warm launcher forks.
_BOOTSTRAP = ["-u", "-m", "covalent_braket_plugin.emulator.runtime.bootstrap"]


class _Run:
    """Book-keeping of one job's process."""

    def __init__(self, job: Job, states: BraketBackend) -> None:
        self.job = job
        self.states = states
        self.process: subprocess.Popen[bytes] | None = None
        #: Killed while RUNNING but before its process was started: killed once it is.
        self.kill_pending = False
        self.stop_requested = threading.Event()
        #: Set when the process exits or a stop is requested: the job's thread waits on it.
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def request_stop(self) -> None:
        self.stop_requested.set()
        self.wake.set()

    def wait_for_exit(self) -> None:
        assert self.process is not None
        self.process.wait()
        self.wake.set()

    def cancelled(self) -> None:
        self.states.transition(self.job, "CANCELLED", event="CANCELLED")


class JobRuntime:
    """Starts, watches and stops job processes; reports each job's state to the backend it
    was started by.

    Args:
        clients: The emulator's own clients (its endpoint, the job's credentials).
        work_dir: Where job working directories go.
        settings: Pace and concurrency, read afresh for every job.
        launcher: Starts script-mode jobs forked from a warm parent (``warm_launcher``).
    """

    def __init__(
        self,
        clients: InternalClients,
        work_dir: Path,
        settings: RuntimeSettings,
        launcher: Launcher,
    ) -> None:
        self.clients = clients
        self.work_dir = Path(work_dir)
        self.settings = settings
        self.launcher = launcher
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._slots = threading.Condition(self._lock)
        self._running = 0

    # ---------------------------------------------------------------- JobHost protocol
    def start(self, job: Job, states: BraketBackend) -> None:
        run = _Run(job, states)
        with self._lock:
            self._runs[job.arn] = run
        run.thread = threading.Thread(
            target=self._lifecycle, args=(run,), name=f"job-{job.name}", daemon=True
        )
        run.thread.start()

    def stop(self, job: Job, states: BraketBackend) -> None:
        with self._lock:
            run = self._runs.get(job.arn)
            if run is not None:
                run.request_stop()
                self._slots.notify_all()
        if run is None:
            states.transition(job, "CANCELLED", event="CANCELLED")

    def kill(self, arn: str) -> bool:
        """SIGKILL a running job's process (as if its instance died); False if none runs. A
        job that is RUNNING while its process is still being started is killed once it is."""
        with self._lock:
            run = self._runs.get(arn)
            if run is not None and run.process is None and run.job.status == "RUNNING":
                run.kill_pending = True
                return True
        if run is None or run.process is None or run.process.poll() is not None:
            return False
        return _sigkill(run.process)

    def stop_all(self) -> None:
        """Stop every job (a reset); the launcher stays warm."""
        with self._lock:
            runs = list(self._runs.values())
            for run in runs:
                run.request_stop()
            self._slots.notify_all()
        for run in runs:
            _kill(run)
        for run in runs:
            if run.thread is not None:
                run.thread.join(timeout=10)
        with self._lock:
            self._runs.clear()

    def shutdown(self) -> None:
        """Stop every job and the launcher (the emulator stops)."""
        self.stop_all()
        self.launcher.shutdown()

    # ---------------------------------------------------------------- the job's life
    def _lifecycle(self, run: _Run) -> None:
        job = run.job
        try:
            if not self._wait_for_slot(run):
                run.cancelled()
                return
            try:
                self._run(run)
            finally:
                with self._lock:
                    self._running -= 1
                    self._slots.notify_all()
        except Exception as exc:  # the emulator must never lose a job silently
            run.states.transition(
                job, "FAILED", event="FAILED", reason=f"InternalServiceError: {exc}"
            )
        finally:
            with self._lock:
                self._runs.pop(job.arn, None)
            # A cancel that came between two steps (the job is CANCELLING, so every other
            # transition was refused) ends here: a job never stays CANCELLING.
            if job.status == "CANCELLING":
                run.cancelled()

    def _wait_for_slot(self, run: _Run) -> bool:
        """Wait in the queue for ``queue_seconds``, a slot of this machine's
        (``max_concurrent_jobs``) and the account's leave (its QPU free, room within its job
        quotas); False when the job is stopped first."""
        deadline = time.monotonic() + self.settings.queue_seconds
        with self._lock:
            while True:
                if run.stop_requested.is_set():
                    return False
                remaining = deadline - time.monotonic()
                if (
                    remaining <= 0
                    and self._running < self.settings.max_concurrent_jobs
                    and run.states.admit(run.job)
                ):
                    self._running += 1
                    return True
                self._slots.wait(timeout=remaining if remaining > 0 else 0.5)

    def _run(self, run: _Run) -> None:
        job, states = run.job, run.states
        states.add_event(job, "STARTING_INSTANCE")
        if run.stop_requested.wait(self.settings.job_start_seconds):
            return  # cancelled while its instance started (and never billed)
        try:  # the image's environment, built (once) while the instance starts: not billed
            image_python = self._image_python(job)
            refusal = platform_refusal(self.clients, _image(job))
        except ImageEnvironmentError as exc:
            refusal = f"CannotStartContainerError: {exc}"
        if refusal:
            states.transition(job, "FAILED", event="FAILED", reason=refusal)
            return
        states.instance_ready(job)
        container = JobContainer(job, self.work_dir / job.job_id, self.clients)
        container.prepare()
        states.add_event(job, "DOWNLOADING_DATA")
        container.stage_inputs()
        if not states.transition(job, "RUNNING", event="RUNNING"):
            return
        if run.stop_requested.is_set():
            run.cancelled()
            return

        env = container.environment(self.clients.endpoint_url)
        command = self._command(run, container, env, image_python)
        if command is None:
            return

        code, timed_out = self._execute(run, container, command, env)
        if run.stop_requested.is_set():
            run.cancelled()
            return
        failure = container.failure_text()
        limit = job.request["stoppingCondition"]["maxRuntimeInSeconds"]
        if code == 0 and not failure and not timed_out:
            states.add_event(job, "UPLOADING_RESULTS")
            container.upload_results()
            container.upload_checkpoints()
            states.transition(job, "COMPLETED", event="COMPLETED")
            return
        container.upload_checkpoints()
        if timed_out:
            states.transition(
                job,
                "FAILED",
                event="MAX_RUNTIME_EXCEEDED",
                reason=f"MaxRuntimeExceeded: the job ran longer than maxRuntimeInSeconds={limit}",
            )
            return
        if not failure and code < 0:
            failure = f"the job process was killed by signal {-code}"
        reason = f"AlgorithmError: {failure or 'the job process failed'}, exit code: {code}"
        states.transition(job, "FAILED", event="FAILED", reason=reason)

    def _image_python(self, job: Job) -> Path | None:
        """The Python of the job's image environment (built if need be), or None when the
        image has none registered: the job runs in the emulator's own environment."""
        spec = self.settings.image_environments.get(_image(job))
        if spec is None or not job.request["algorithmSpecification"].get("scriptModeConfig"):
            return None
        return python_of(spec, self._cache_dir())

    def _cache_dir(self) -> Path:
        return Path(self.settings.environments_cache_dir or DEFAULT_CACHE_DIR)

    def _command(
        self,
        run: _Run,
        container: JobContainer,
        env: dict[str, str],
        image_python: Path | None,
    ) -> list[str] | None:
        """The job's process, in its image's environment if it has one; None when it cannot
        have one (the job FAILED)."""
        command = container.command(env, self.settings.image_commands)
        if command is None:
            run.states.transition(
                run.job,
                "FAILED",
                event="FAILED",
                reason=(
                    f"ClientError: the emulator has no command mapped to image {_image(run.job)}; "
                    "map one with the image_commands setting, or use script mode (scriptModeConfig)"
                ),
            )
            return None
        if image_python is None:
            return command
        python = job_layer(image_python, container.root / "environment")
        plugin = str(plugin_path(self._cache_dir()))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [plugin, env.get("PYTHONPATH")]))
        env[IMAGE_ENVIRONMENT_VARIABLE] = _image(run.job)
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        if self.settings.package_index:  # the only source pip has
            for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
                env.pop(name, None)
            env.update(PIP_INDEX_URL=self.settings.package_index, PIP_RETRIES="0", PIP_TIMEOUT="5")
        return [str(python), *command[1:]]

    def _execute(
        self, run: _Run, container: JobContainer, command: list[str], env: dict[str, str]
    ) -> tuple[int, bool]:
        """Run the job's process to its end (exit, stop or time-out); its exit code, and
        whether it ran out of time."""
        logger = LogShipper(self.clients, run.job)
        if self.settings.warm_launcher and command == [sys.executable, *_BOOTSTRAP]:
            process = self.launcher.spawn(command[-1], container.root, env)
        else:
            process = start_cold(command, container.root, env)
        with self._lock:
            run.process = process  # type: ignore[assignment]
            kill = run.kill_pending
        if kill:
            _sigkill(process)
        reader = threading.Thread(target=logger.pump, args=(run.process.stdout,), daemon=True)
        reader.start()
        deadline = time.monotonic() + run.job.request["stoppingCondition"]["maxRuntimeInSeconds"]
        timed_out = False
        # The job ends the moment its process exits (no polling), is stopped, or times out.
        threading.Thread(target=run.wait_for_exit, daemon=True).start()
        while run.process.poll() is None and not run.stop_requested.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            run.wake.wait(timeout=remaining)
        if timed_out:
            _stop_at_time_limit(run, self.settings.stop_grace_seconds)
            if run.process.poll() is None and _sigkill(run.process):  # then everything goes
                run.process.wait()
        if run.process.poll() is None:
            _kill(run)
        reader.join(timeout=10)
        logger.close()
        return run.process.returncode, timed_out


#: A manifest list's or OCI index's platform entries that are no image (build attestations).
_NOT_AN_IMAGE = ("unknown", "")


def platform_refusal(clients: InternalClients, image: str) -> str:
    """Why a job on ``image`` cannot start on Braket's x86_64 instances: its manifest (in the
    account's emulated ECR) is a list of platforms without ``linux/amd64``, as ``docker
    buildx`` pushes from an Apple-silicon Mac; "" when it has that platform, or names none
    (a single manifest's platform is in its config, which ECR's API does not show)."""
    match = re.match(r"^(\d+)\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/([^:@]+)[:@](.+)$", image)
    if not match:
        return ""
    account, region, repository, reference = match.groups()
    wanted = {"imageDigest": reference} if ":" in reference else {"imageTag": reference}
    try:
        found = clients.get("ecr", region, account).batch_get_image(
            repositoryName=repository, imageIds=[wanted]
        )["images"]
        manifest = json.loads(found[0]["imageManifest"]) if found else {}
    except Exception:  # no such image or repository: not this check's business
        return ""
    platforms = [(entry.get("platform") or {}) for entry in manifest.get("manifests") or []]
    named = sorted(
        f"{p.get('os')}/{p.get('architecture')}"
        for p in platforms
        if p.get("architecture") not in _NOT_AN_IMAGE
    )
    if not named or "linux/amd64" in named:
        return ""
    return (
        f"AlgorithmError: exec format error: the image {image} is built for "
        f"{', '.join(named)}, and every Braket job instance is linux/amd64 (x86_64); build it "
        "with --platform linux/amd64"
    )


def _image(job: Job) -> str:
    """The job's container image URI ("" if none)."""
    return job.request["algorithmSpecification"].get("containerImage", {}).get("uri", "")


def _sigkill(process: LaunchedProcess | subprocess.Popen[bytes]) -> bool:
    """SIGKILL the process's group at once; False if it is gone."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def _stop_at_time_limit(run: _Run, grace: float) -> None:
    """What the service does at a job's time limit: SIGTERM to the container's main process
    only, then ``grace`` seconds for it to end (or a stop request) before it is killed."""
    process = run.process
    if process is None or process.poll() is not None:
        return
    try:
        os.kill(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while process.poll() is None and not run.stop_requested.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        run.wake.wait(timeout=min(remaining, 0.5))


def _kill(run: _Run) -> None:
    """SIGTERM the job's process group, then SIGKILL if it lingers."""
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
