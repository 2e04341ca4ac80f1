"""``covalent-braket cancel --orphans``: stop this plugin's Braket jobs that no live Covalent
server follows (see :func:`~covalent_braket_plugin.dispatch_jobs.orphans`): their server
stopped or crashed, Covalent 0.240 resumes nothing, and they run on, billed, for no one."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .options import add_region_and_profile


def add_command(subparsers: Any) -> None:
    """Register ``cancel`` with the ``covalent-braket`` command's subparsers.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers`` returned.
    """
    parser = subparsers.add_parser(
        "cancel", help="stop this plugin's Braket jobs that no live Covalent server follows"
    )
    parser.add_argument(
        "--orphans",
        action="store_true",
        required=True,
        help="the jobs 'covalent-braket jobs --orphans' lists",
    )
    add_region_and_profile(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Cancel every orphaned job, paced within the account's quotas; one line each.

    Returns:
        0, or 1 when a setting is invalid or an AWS call fails.
    """
    from .. import aws, jobs, pacing
    from ..config import DISPATCH_TAG, NODE_TAG, InvalidSettingError
    from ..dispatch_jobs import orphans, settings_for

    try:
        settings = settings_for(args.region, args.profile)
        found = orphans(settings)
        for where, summary in found:
            pacing.wait_sync(*aws.quota_key(where), ["CancelJob"])
            status = jobs.cancel(where, summary["jobArn"])
            tags = summary.get("tags") or {}
            print(
                f"{summary['jobArn']} (dispatch {tags.get(DISPATCH_TAG)}, node "
                f"{tags.get(NODE_TAG)}): {status}"
            )
    except (InvalidSettingError, aws.AwsError) as exc:
        print(f"covalent-braket cancel: {exc}", file=sys.stderr)
        return 1
    if not found:
        print("covalent-braket cancel: no orphaned Braket jobs", file=sys.stderr)
    return 0
