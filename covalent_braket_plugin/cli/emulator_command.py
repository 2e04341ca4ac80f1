"""``covalent-braket emulator``: serve Braket-in-a-box on a loopback port until SIGINT or
SIGTERM (also ``python -m covalent_braket_plugin.emulator``); with ``--provision``, the
executor's bucket, role and a placeholder image made in it."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any


def add_command(subparsers: Any) -> None:
    """Register ``emulator`` with the ``covalent-braket`` command's subparsers.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers`` returned.
    """
    from ..emulator.settings import RuntimeSettings

    defaults = RuntimeSettings()
    parser = subparsers.add_parser("emulator", help="serve the local Braket emulator")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1); a non-loopback one needs --insecure-bind",
    )
    parser.add_argument(
        "--insecure-bind",
        action="store_true",
        help="allow a non-loopback --host: anyone who reaches the port may run code here",
    )
    parser.add_argument(
        "--legacy-test-keys",
        action="store_true",
        help="also take the fixed testing/testing credentials of old scripts (off by default)",
    )
    parser.add_argument("--port", type=int, default=4566, help="port to bind; 0 picks a free one")
    parser.add_argument("--work-dir", default=None, help="where job working directories go")
    _add_job_regime(parser, defaults)
    parser.add_argument("--devices", default=None, help="JSON catalogue of emulated QPUs to add")
    parser.add_argument(
        "--no-quotas",
        dest="quotas",
        action="store_false",
        help="do not enforce Braket's request quotas (they are enforced by default)",
    )
    parser.add_argument(
        "--provision",
        action="store_true",
        help="make what covalent-braket setup makes (the bucket, the job role, a placeholder "
        "image) and merge the settings that use them into covalent.conf",
    )
    parser.add_argument(
        "--print",
        action="store_true",
        dest="print_only",
        help="with --provision: print the [executors.braket] settings instead of writing "
        "them into covalent.conf",
    )
    _add_images(parser)
    parser.set_defaults(handler=run)


def _add_images(parser: argparse.ArgumentParser) -> None:
    """The options that say how jobs on an image run: a command, or an environment."""
    parser.add_argument(
        "--image-command",
        action="append",
        default=[],
        metavar="IMAGE_URI=COMMAND",
        help="run COMMAND for image-mode jobs on IMAGE_URI (repeatable)",
    )
    parser.add_argument(
        "--image-environment",
        action="append",
        default=[],
        metavar="IMAGE_URI=PATH",
        help=(
            "run script-mode jobs on IMAGE_URI in an environment of their own: PATH is a "
            "virtualenv, or requirements files (comma-separated) to build one from on this "
            "Python, once (repeatable)"
        ),
    )


def _numbers(defaults: Any) -> tuple[tuple[str, type, Any, str, str], ...]:
    """The numeric options of the job regime: flag, type, default, metavar, help."""
    return (
        ("--queue-seconds", float, defaults.queue_seconds, "S", "seconds a job stays QUEUED"),
        (
            "--max-concurrent-jobs",
            int,
            defaults.max_concurrent_jobs,
            "N",
            "jobs that run at once on this machine",
        ),
        (
            "--concurrent-jobs",
            int,
            defaults.concurrent_jobs_quota,
            "N",
            "the quota on hybrid jobs at once per account and Region (default: the service's)",
        ),
        (
            "--job-start-seconds",
            float,
            defaults.job_start_seconds,
            "S",
            "seconds a job's instance takes to start, QUEUED before RUNNING (not billed)",
        ),
        (
            "--stop-grace-seconds",
            float,
            defaults.stop_grace_seconds,
            "S",
            "seconds from a job's time limit (SIGTERM, passed on to nobody) to its kill",
        ),
        (
            "--clock-offset",
            float,
            defaults.clock_offset_seconds,
            "S",
            "seconds the service's clock is ahead of this machine's (negative: behind)",
        ),
    )


def _add_job_regime(parser: argparse.ArgumentParser, defaults: Any) -> None:
    """The options of how jobs wait and start: this machine's limit, and a real account's job
    regime (its quotas, one job per QPU, an instance's start and stop, the service's clock)."""
    for flag, kind, default, metavar, text in _numbers(defaults):
        parser.add_argument(flag, type=kind, default=default, metavar=metavar, help=text)
    parser.add_argument(
        "--instance-quota",
        action="append",
        default=[],
        metavar="TYPE=N",
        help="the quota on instances of TYPE for jobs (repeatable; default: the service's)",
    )
    parser.add_argument(
        "--no-job-quotas",
        dest="job_quotas",
        action="store_false",
        help="do not enforce the job quotas nor one job per QPU (only --max-concurrent-jobs)",
    )
    parser.add_argument(
        "--queue-past-quota",
        action="store_true",
        help="accept jobs past a job quota and keep them QUEUED, instead of refusing them (402)",
    )
    parser.add_argument(
        "--bare-accounts",
        dest="onboarded_accounts",
        action="store_false",
        help="accounts start bare, not onboarded (no service-role/AmazonBraketJobsExecutionRole)",
    )


def run(args: argparse.Namespace) -> int:
    """Serve the emulator until SIGINT or SIGTERM; print its URL and the environment that
    points AWS clients at it, with this run's credentials and token (and, with
    ``--provision``, the executor's settings).

    Args:
        args: the parsed ``emulator`` arguments.

    Returns:
        0 once the emulator has stopped.
    """
    from ..emulator import BraketEmulator

    try:
        emulator = BraketEmulator(
            host=args.host,
            port=args.port,
            work_dir=args.work_dir,
            settings=_settings(args),
            devices_file=args.devices,
            insecure_bind=args.insecure_bind,
            legacy_test_keys=args.legacy_test_keys,
        )
    except ValueError as refused:
        raise SystemExit(f"covalent-braket emulator: {refused}") from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    url = emulator.start()
    print(f"Braket emulator listening on {url}", flush=True)
    print("  export " + _exports(url, emulator.token), flush=True)
    if args.legacy_test_keys:
        print("  (the fixed testing/testing credentials are taken too)", flush=True)
    if args.provision:
        print(_provision(url, args.print_only), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        print("Braket emulator stopped", flush=True)
    return 0


def _settings(args: argparse.Namespace) -> Any:
    """The emulator's runtime settings from the command's arguments."""
    from ..emulator import RuntimeSettings

    settings = RuntimeSettings(
        queue_seconds=args.queue_seconds,
        max_concurrent_jobs=args.max_concurrent_jobs,
        quotas=args.quotas,
        job_quotas=args.job_quotas,
        concurrent_jobs_quota=args.concurrent_jobs,
        queue_past_quota=args.queue_past_quota,
        onboarded_accounts=args.onboarded_accounts,
        job_start_seconds=args.job_start_seconds,
        clock_offset_seconds=args.clock_offset,
        stop_grace_seconds=args.stop_grace_seconds,
    )
    for mapping in args.instance_quota:
        kind, _, count = mapping.partition("=")
        if not kind or not count.isdigit():
            raise SystemExit(f"--instance-quota wants TYPE=N, got {mapping!r}")
        settings.instance_quotas[kind] = int(count)
    for mapping in args.image_command:
        image, _, command = mapping.partition("=")
        if not image or not command:
            raise SystemExit(f"--image-command wants IMAGE_URI=COMMAND, got {mapping!r}")
        settings.image_commands[image] = shlex.split(command)
    for mapping in args.image_environment:
        image, _, where = mapping.partition("=")
        if not image or not where:
            raise SystemExit(f"--image-environment wants IMAGE_URI=PATH, got {mapping!r}")
        if Path(where).is_dir():
            settings.image_environments[image] = {"venv": where}
        else:
            files = where.split(",")
            settings.image_environments[image] = {"python": sys.executable, "requirements": files}
    return settings


def _exports(url: str, token: str) -> str:
    """``NAME=value`` for each variable a shell exports to reach the emulator: the endpoint
    (also as the Braket SDK's ``BRAKET_ENDPOINT``), this run's client credentials, the Region,
    the control API's token, and the price list it serves (``BRAKET_PRICE_OFFERS_URL``: the
    SDK's ``Tracker`` and the executor's cost estimates read it instead of Amazon's, online)."""
    from ..emulator.aws_services.identity import TOKEN_ENV
    from ..testing import emulator_env

    env = emulator_env(url, token=token)
    exported = (
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        TOKEN_ENV,
        "BRAKET_ENDPOINT",
        "BRAKET_PRICE_OFFERS_URL",
    )
    return " ".join(f"{name}={shlex.quote(env[name])}" for name in exported)


def _provision(url: str, print_only: bool = False) -> str:
    """Make on the emulator what ``covalent-braket setup`` makes (one way to provision, the
    same as on AWS, with the same default names), which merges the settings into covalent.conf
    (``print_only``: prints them instead); the text to print.

    ``setup`` runs in a child process whose AWS settings are the emulator's, so that nothing
    of this process's environment changes and none of the user's profiles is read.
    """
    import os
    import subprocess
    import sys

    from ..config import DEFAULTS
    from ..testing import emulator_env

    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(emulator_env(url))
    command = [sys.executable, "-m", "covalent_braket_plugin.cli", "setup"]
    command += ["--role-name", str(DEFAULTS["braket_job_execution_role_name"])]
    command += ["--print"] * print_only
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"--provision failed: {done.stderr.strip() or done.stdout.strip()}")
    return "\n".join(
        [
            done.stdout.rstrip(),
            "",
            "Start the Covalent server with the exports above, so that its AWS calls come here.",
        ]
    )
