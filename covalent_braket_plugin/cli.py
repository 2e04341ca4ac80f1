"""The ``covalent-braket`` command.

``covalent-braket emulator``  serve Braket-in-a-box on a loopback port until SIGINT/SIGTERM.
``covalent-braket demo``      run a workflow through a throw-away Covalent server onto the
                              emulator, then stop everything it started.
``covalent-braket setup``     create the AWS resources the executor needs (idempotent).
``covalent-braket doctor``    check the whole setup, one line per check.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from collections.abc import Sequence


def _emulator(args: argparse.Namespace) -> int:
    from .emulator import BraketEmulator, RuntimeSettings
    from .testing import emulator_env

    settings = RuntimeSettings(
        queue_seconds=args.queue_seconds,
        max_concurrent_jobs=args.max_concurrent_jobs,
        quotas=args.quotas,
    )
    for mapping in args.image_command:
        image, _, command = mapping.partition("=")
        if not image or not command:
            raise SystemExit(f"--image-command wants IMAGE_URI=COMMAND, got {mapping!r}")
        settings.image_commands[image] = shlex.split(command)
    emulator = BraketEmulator(
        host=args.host,
        port=args.port,
        work_dir=args.work_dir,
        settings=settings,
        devices_file=args.devices,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    url = emulator.start()
    print(f"Braket emulator listening on {url}", flush=True)
    env = emulator_env(url)
    exported = (
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
    )
    print("  export " + " ".join(f"{name}={env[name]}" for name in exported), flush=True)
    if args.provision:
        print(_provision(url), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        print("Braket emulator stopped", flush=True)
    return 0


def _provision(url: str) -> str:
    """Create the executor's default bucket and role and a placeholder image in the emulator;
    the ``[executors.braket]`` section that uses them."""
    import boto3

    from .config import DEFAULTS
    from .emulator.aws_services.identity import (
        CLIENT_ACCESS_KEY,
        CLIENT_SECRET_KEY,
        DEFAULT_ACCOUNT,
    )
    from .emulator.aws_services.identity import DEFAULT_REGION as REGION
    from .testing import provision

    def client(service: str) -> object:
        return boto3.session.Session().client(
            service,
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id=CLIENT_ACCESS_KEY,
            aws_secret_access_key=CLIENT_SECRET_KEY,
        )

    settings = {
        "region": REGION,
        "s3_bucket_name": DEFAULTS["s3_bucket_name"],
        "braket_job_execution_role_name": DEFAULTS["braket_job_execution_role_name"],
        "ecr_image_uri": f"{DEFAULT_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/covalent-braket:latest",
    }
    provision(
        settings["s3_bucket_name"],
        settings["braket_job_execution_role_name"],
        settings["ecr_image_uri"],
        client=client,
    )
    lines = ["Provisioned the executor's bucket, job role and image; in covalent.conf:", ""]
    lines.append("[executors.braket]")
    lines.extend(f'{name} = "{value}"' for name, value in settings.items())
    lines.append("")
    lines.append(
        "Start the Covalent server with the exports above, so that its AWS calls come here."
    )
    return "\n".join(lines)


def _setup(args: argparse.Namespace) -> int:
    from . import aws
    from .config import InvalidSettingError
    from .doctor import config_path
    from .provisioning import Options, run

    options = Options(
        region=args.region,
        profile=args.profile,
        credentials=args.credentials,
        bucket=args.bucket,
        role_name=args.role_name,
        kms_key_id=args.kms_key_id,
        ecr_repository=args.ecr_repository,
        expiry_days=args.expiry_days,
        dry_run=args.dry_run,
    )
    try:
        outcome = run(options)
    except (InvalidSettingError, aws.AwsError) as exc:
        print(f"covalent-braket setup: {exc}", file=sys.stderr)
        return 1
    print(outcome.report(str(config_path())))
    if args.submitter_policy:
        import json

        with open(args.submitter_policy, "w", encoding="utf-8") as handle:
            json.dump(outcome.submitter_policy, handle, indent=2)
        print(f"\nThe policy for whoever runs the Covalent server is in {args.submitter_policy}.")
    if options.dry_run:
        print("\nDry run: nothing was created or changed.")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import PROBLEM, Doctor, as_json, render

    overrides = {"region": args.region, "profile": args.profile}
    checks = Doctor(overrides, python=args.python).run()
    print(as_json(checks) if args.json else render(checks))
    return 1 if any(check.status == PROBLEM for check in checks) else 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(poll_freq=args.poll_freq)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="covalent-braket", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    from .emulator.settings import RuntimeSettings

    defaults = RuntimeSettings()
    emulator = commands.add_parser("emulator", help="serve the local Braket emulator")
    emulator.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=4566, help="port to bind; 0 picks a free one")
    emulator.add_argument("--work-dir", default=None, help="where job working directories go")
    emulator.add_argument(
        "--queue-seconds",
        type=float,
        default=defaults.queue_seconds,
        help="seconds a job stays QUEUED",
    )
    emulator.add_argument(
        "--max-concurrent-jobs",
        type=int,
        default=defaults.max_concurrent_jobs,
        help="jobs that run at once",
    )
    emulator.add_argument("--devices", default=None, help="JSON catalogue of emulated QPUs to add")
    emulator.add_argument(
        "--no-quotas",
        dest="quotas",
        action="store_false",
        help="do not enforce Braket's request quotas (they are enforced by default)",
    )
    emulator.add_argument(
        "--provision",
        action="store_true",
        help="create the executor's default bucket, role and a placeholder image, and print the "
        "[executors.braket] section that uses them",
    )
    emulator.add_argument(
        "--image-command",
        action="append",
        default=[],
        metavar="IMAGE_URI=COMMAND",
        help="run COMMAND for image-mode jobs on IMAGE_URI (repeatable)",
    )
    emulator.set_defaults(handler=_emulator)

    from .config import DEFAULTS

    setup = commands.add_parser(
        "setup",
        help="create the bucket, job role (and ECR repository) the executor needs; idempotent",
    )
    setup.add_argument("--region", default="", help="AWS Region (default: the profile's)")
    setup.add_argument("--profile", default="", help="AWS profile (default: the usual chain)")
    setup.add_argument("--credentials", default="", help="AWS shared credentials file")
    setup.add_argument(
        "--bucket",
        default="",
        help="bucket name (default: amazon-braket-covalent-<region>-<account>)",
    )
    setup.add_argument(
        "--role-name",
        default=DEFAULTS["braket_job_execution_role_name"],
        help="job role name (default: %(default)s)",
    )
    setup.add_argument("--kms-key-id", default="", help="KMS key for the bucket and the tasks")
    setup.add_argument(
        "--ecr-repository", default="", help="also create this ECR repository for your image"
    )
    setup.add_argument(
        "--expiry-days", type=int, default=30, help="days task objects are kept (default 30)"
    )
    setup.add_argument(
        "--submitter-policy",
        default="",
        metavar="FILE",
        help="write the policy for whoever runs the Covalent server to FILE",
    )
    setup.add_argument(
        "--dry-run", action="store_true", help="only look; say what would be created"
    )
    setup.set_defaults(handler=_setup)

    doctor = commands.add_parser("doctor", help="check the whole setup, one line per check")
    doctor.add_argument("--region", default="", help="override covalent.conf's region")
    doctor.add_argument("--profile", default="", help="override covalent.conf's profile")
    doctor.add_argument(
        "--python", default="", help="the Covalent server's Python (default: this one's)"
    )
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.set_defaults(handler=_doctor)

    demo = commands.add_parser("demo", help="run a workflow on the emulator through Covalent")
    demo.add_argument("--poll-freq", type=float, default=1.0, help="executor poll interval (s)")
    demo.set_defaults(handler=_demo)

    from .report import add_commands

    add_commands(commands)  # jobs, logs: a dispatch's Braket jobs, their cost and logs

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
