"""``covalent-braket setup``: create the bucket, the job role (and an ECR repository) the
executor needs, idempotently (see :mod:`~covalent_braket_plugin.provisioning`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_command(subparsers: Any) -> None:
    """Register ``setup`` with the ``covalent-braket`` command's subparsers.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers`` returned.
    """
    from ..config import DEFAULTS

    parser = subparsers.add_parser(
        "setup",
        help="create the bucket, job role (and ECR repository) the executor needs; idempotent",
    )
    parser.add_argument("--region", default="", help="AWS Region (default: the profile's)")
    parser.add_argument("--profile", default="", help="AWS profile (default: the usual chain)")
    parser.add_argument("--credentials", default="", help="AWS shared credentials file")
    parser.add_argument(
        "--bucket",
        default="",
        help="bucket name (default: amazon-braket-covalent-<region>-<account>)",
    )
    parser.add_argument(
        "--role-name",
        default=DEFAULTS["braket_job_execution_role_name"],
        help="job role name (default: %(default)s)",
    )
    parser.add_argument("--kms-key-id", default="", help="KMS key for the bucket and the tasks")
    parser.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="ARN",
        help="a device the job role may create quantum tasks on; repeat for more "
        f"(default: {DEFAULTS['quantum_device']})",
    )
    parser.add_argument(
        "--ecr-repository", default="", help="also create this ECR repository for your image"
    )
    parser.add_argument(
        "--expiry-days", type=int, default=30, help="days task objects are kept (default 30)"
    )
    parser.add_argument(
        "--submitter-policy",
        default="",
        metavar="FILE",
        help="write the policy for whoever runs the Covalent server to FILE",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="only look; say what would be created and how covalent.conf would change",
    )
    parser.add_argument(
        "--print",
        action="store_true",
        dest="print_only",
        help="print the [executors.braket] settings instead of writing them into covalent.conf",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Create (or with ``--dry-run`` only look for) the executor's AWS resources, print what
    was found, made or planned, and merge the settings that use them into covalent.conf
    (``--print``: only print them).

    Args:
        args: the parsed ``setup`` arguments.

    Returns:
        0, or 1 when a setting is invalid or an AWS call fails.
    """
    from .. import aws, conf_file
    from ..config import InvalidSettingError
    from ..doctor import config_path
    from ..provisioning import Options
    from ..provisioning import run as provision

    options = Options(
        region=args.region,
        profile=args.profile,
        credentials=args.credentials,
        bucket=args.bucket,
        role_name=args.role_name,
        kms_key_id=args.kms_key_id,
        ecr_repository=args.ecr_repository,
        expiry_days=args.expiry_days,
        devices=tuple(args.device) or Options.devices,
        dry_run=args.dry_run,
    )
    try:
        if not args.print_only:
            conf_file.check(config_path())  # a file it cannot write to: before anything is made
        outcome = provision(options)
    except (InvalidSettingError, aws.AwsError, conf_file.ConfFileError) as exc:
        print(f"covalent-braket setup: {exc}", file=sys.stderr)
        return 1
    print(outcome.report())
    print()
    if not write_conf(outcome, args.print_only, args.dry_run):
        return 1
    if args.submitter_policy:
        import json

        with open(args.submitter_policy, "w", encoding="utf-8") as handle:
            json.dump(outcome.submitter_policy, handle, indent=2)
        print(f"\nThe policy for whoever runs the Covalent server is in {args.submitter_policy}.")
    if options.dry_run:
        print("\nDry run: nothing was created or changed.")
    return 0


def write_conf(outcome: Any, print_only: bool, dry_run: bool) -> bool:
    """Merge the settings into covalent.conf's ``[executors.braket]`` (or only say how it
    would change, or only print them) and say what was done; False if the file is unusable."""
    from ..conf_file import ConfFileError, merge_section
    from ..doctor import config_path

    path = config_path()
    if print_only:
        print(
            f"Nothing was written to {path}. Set these keys in its [executors.braket] section "
            "(Covalent has written one there already: edit it, do not add a second):\n\n"
            + outcome.section_text()
        )
        return True
    try:
        print(merge_section(path, outcome.section, write=not dry_run).report())
    except ConfFileError as exc:
        print(f"covalent-braket: {exc}", file=sys.stderr)
        return False
    return True
