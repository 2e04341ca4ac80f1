"""The emulator's knobs, changeable at run time over the control API."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RuntimeSettings:
    """How the emulated service paces and runs work. A reset returns to the values the
    emulator was started with."""

    #: Seconds a job stays QUEUED before it may start.
    queue_seconds: float = 0.0
    #: Jobs that may run at once on this machine; more wait in QUEUED.
    max_concurrent_jobs: int = 32
    #: A real account's job regime, per account and Region (see .api.job_quotas): the quotas
    #: on concurrent jobs and on each instance type's instances (past them ``CreateJob`` is
    #: refused, HTTP 402), and one job at a time on a QPU. Off: only ``max_concurrent_jobs``.
    job_quotas: bool = True
    #: The concurrent-jobs quota; None: the service's default.
    concurrent_jobs_quota: int | None = None
    #: Instance quotas changed: instance type -> instances (the others: the service's).
    instance_quotas: dict[str, int] = field(default_factory=dict)
    #: Past a job quota, accept the job and keep it QUEUED until the quota has room, instead
    #: of refusing it.
    queue_past_quota: bool = False
    #: Seconds a job's instance takes to start (between QUEUED and RUNNING; AWS takes a minute
    #: or more). Not billed.
    job_start_seconds: float = 0.0
    #: Seconds after CreateJob during which the new job is not found yet (GetJob, CancelJob,
    #: SearchJobs), as the service's reads can lag its writes.
    job_visibility_seconds: float = 0.0
    #: Seconds the emulated service's clock is ahead of this machine's (negative: behind), in
    #: every time it tells: ``createdAt`` and the like, events, each answer's ``Date`` header.
    clock_offset_seconds: float = 0.0
    #: At a job's ``maxRuntimeInSeconds`` its container's main process gets SIGTERM (which the
    #: training toolkit, process 1 without a handler, neither dies of nor passes on) and
    #: everything is killed this many seconds later (SageMaker's 120 s).
    stop_grace_seconds: float = 120.0
    #: Every account starts onboarded, as after opening Braket in the console: with the role
    #: ``service-role/AmazonBraketJobsExecutionRole`` (see .aws_services.onboarding). Off: bare
    #: accounts, for testing onboarding itself.
    onboarded_accounts: bool = True
    #: Seconds a quantum task stays QUEUED before it runs.
    task_queue_seconds: float = 0.0
    #: Simulations that run at once, each in a worker process; more tasks wait in QUEUED.
    simulator_workers: int = 4
    #: A simulation running longer is stopped and its task FAILED (SV1 allows 3 hours).
    task_time_limit_seconds: float = 10_800.0
    #: The Python (``major.minor``) the managed job images are tagged with in the emulated
    #: ECR: the one emulated jobs run on, unless a mismatch is staged.
    managed_image_python: str = f"{sys.version_info.major}.{sys.version_info.minor}"
    #: Braket's request quotas enforced (per account, Region and operation; see .quotas).
    quotas: bool = True
    #: Quotas changed: operation (or ``"*"``, the whole API) -> [rate per second, burst].
    quota_limits: dict[str, list[float]] = field(default_factory=dict)
    #: Script-mode jobs are forked from a warm parent that has their usual imports loaded
    #: (see .launcher); off: each starts as a fresh Python process.
    warm_launcher: bool = True
    #: Image-mode jobs: container image URI -> the command (argv) that stands in for it.
    image_commands: dict[str, list[str]] = field(default_factory=dict)
    #: Script-mode jobs on these images run in the image's own Python environment, not the
    #: emulator's: image URI -> ``{"venv": DIR}`` or ``{"python": EXE, "requirements":
    #: [FILE, ...]}`` (built once, cached; see .runtime.environments). There a job's
    #: ``requirements.txt`` is installed with pip, for real. Other images' jobs run in the
    #: emulator's environment, where requirements are checked, not installed.
    image_environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Where built image environments are cached; empty: ``~/.cache/covalent-braket``.
    environments_cache_dir: str = ""
    #: The package index pip reaches from jobs in an image environment (``PIP_INDEX_URL``);
    #: empty: pip's own. An address nothing answers on stands for an unreachable index.
    package_index: str = ""
