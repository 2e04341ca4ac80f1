"""``covalent-braket jobs``: a dispatch's Braket jobs, their state, queue, times, quantum
tasks and estimated cost, as a table or JSON (see
:mod:`~covalent_braket_plugin.dispatch_jobs` and :mod:`~covalent_braket_plugin.job_table`).

An electron that waits for one of the account's job slots has no job yet: its row, read from
the slot board of the Covalent server it waits in (:mod:`~covalent_braket_plugin.server_board`),
says ``WAITING FOR A JOB SLOT`` and ``N ahead``, as the server log does."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .options import add_region_and_profile


def add_command(subparsers: Any) -> None:
    """Register ``jobs`` with the ``covalent-braket`` command's subparsers.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers`` returned.
    """
    parser = subparsers.add_parser(
        "jobs", help="a dispatch's Braket jobs: state, queue, times, quantum tasks, estimated cost"
    )
    parser.add_argument("dispatch_id", nargs="?", help="the Covalent dispatch id")
    parser.add_argument(
        "--orphans",
        action="store_true",
        help="instead, this plugin's running jobs that no live Covalent server follows (their "
        "server stopped or crashed; Covalent resumes nothing): stop them with "
        "'covalent-braket cancel --orphans'",
    )
    parser.add_argument("--json", action="store_true", help="print the jobs as JSON")
    add_region_and_profile(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the dispatch's jobs, as a table or JSON.

    Args:
        args: the dispatch id; ``json``, to print JSON; ``region`` and ``profile`` over
            covalent.conf's.

    Returns:
        0, or 1 when the dispatch has no jobs, a setting is invalid or an AWS call fails.
    """
    from .. import aws
    from ..config import InvalidSettingError
    from ..dispatch_jobs import jobs_rows, orphan_rows, settings_for
    from ..job_table import render

    if bool(args.orphans) == bool(args.dispatch_id):
        print("covalent-braket jobs: give a dispatch id, or --orphans", file=sys.stderr)
        return 2
    try:
        settings = settings_for(args.region, args.profile)
        rows = orphan_rows(settings) if args.orphans else jobs_rows(settings, args.dispatch_id)
    except (InvalidSettingError, aws.AwsError) as exc:
        print(f"covalent-braket jobs: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        print(render(rows))
        if args.orphans:
            print("\nStop them with: covalent-braket cancel --orphans")
    if rows:
        return 0
    if args.orphans:
        if not args.json:
            print("covalent-braket jobs: no orphaned Braket jobs", file=sys.stderr)
        return 0
    print(
        f"covalent-braket jobs: no Braket jobs of dispatch {args.dispatch_id}, and none of "
        "its electrons waits for a job slot",
        file=sys.stderr,
    )
    return 1
