"""``covalent-braket logs``: the CloudWatch log of a dispatch's Braket jobs (of one node),
each headed; with ``--follow``, read on until the jobs end (see
:mod:`~covalent_braket_plugin.logs`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, TextIO

from .options import add_region_and_profile, dispatch_parser

if TYPE_CHECKING:
    from ..config import BraketSettings


def add_command(subparsers: Any) -> None:
    """Register ``logs`` with the ``covalent-braket`` command's subparsers.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers`` returned.
    """
    parser = dispatch_parser(subparsers, "logs", "the CloudWatch log of a dispatch's Braket jobs")
    parser.add_argument("node", nargs="?", default=None, help="only this node's jobs")
    parser.add_argument(
        "--follow", action="store_true", help="keep reading running jobs until they end"
    )
    add_region_and_profile(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the logs of the dispatch's jobs (of one node).

    Args:
        args: the dispatch id; the ``node`` (None: every node); ``follow``, to read on
            until the jobs end; ``region`` and ``profile`` over covalent.conf's.

    Returns:
        0; 1 when there are no such jobs, a setting is invalid or an AWS call fails; 130 when
        interrupted.
    """
    from .. import aws
    from ..config import InvalidSettingError
    from ..dispatch_jobs import settings_for

    try:
        settings = settings_for(args.region, args.profile)
        shown = write_logs(settings, args.dispatch_id, args.node, sys.stdout, follow=args.follow)
    except (InvalidSettingError, aws.AwsError) as exc:
        print(f"covalent-braket logs: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if not shown:
        which = f" node {args.node}" if args.node is not None else ""
        print(
            f"covalent-braket logs: no Braket jobs of dispatch {args.dispatch_id}{which}",
            file=sys.stderr,
        )
        return 1
    return 0


def write_logs(
    settings: BraketSettings,
    dispatch_id: str,
    node: str | None,
    out: TextIO,
    follow: bool = False,
    every: float | None = None,
) -> int:
    """Write the logs of the dispatch's jobs (of one node), each headed. Blocking.

    Args:
        settings: the executor's settings.
        dispatch_id: the Covalent dispatch id.
        node: only this node's jobs (None: all of them).
        out: where the logs go.
        follow: keep reading each job's log until the job ends.
        every: seconds between looks at a followed job (default
            :data:`~covalent_braket_plugin.logs.FOLLOW_SECONDS`).

    Returns:
        How many jobs were shown.

    Raises:
        AwsError: when a Braket or CloudWatch call fails.
    """
    from ..config import ATTEMPT_TAG, NODE_TAG
    from ..dispatch_jobs import find_jobs
    from ..logs import FOLLOW_SECONDS, show_log

    pause = FOLLOW_SECONDS if every is None else every
    found = [
        (where, job)
        for where, job in find_jobs(settings, dispatch_id)
        if node is None or str((job.get("tags") or {}).get(NODE_TAG)) == str(node)
    ]
    for where, job in found:
        tags = job.get("tags") or {}
        out.write(
            f"==> {job['jobName']} (node {tags.get(NODE_TAG)}, attempt {tags.get(ATTEMPT_TAG)}, "
            f"{job['status']}) <==\n"
        )
        state = show_log(where, job, out, follow=follow, every=pause)
        if state != job["status"]:
            out.write(f"==> {job['jobName']} ended {state} <==\n")
    out.flush()
    return len(found)
