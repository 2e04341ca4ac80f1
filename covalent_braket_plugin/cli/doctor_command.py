"""``covalent-braket doctor``: check the whole setup, one line per check (see
:mod:`~covalent_braket_plugin.doctor`)."""

from __future__ import annotations

import argparse
from typing import Any

from .options import add_region_and_profile


def add_command(subparsers: Any) -> None:
    """Register ``doctor`` with the ``covalent-braket`` command's subparsers.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers`` returned.
    """
    parser = subparsers.add_parser("doctor", help="check the whole setup, one line per check")
    add_region_and_profile(parser)
    parser.add_argument(
        "--python", default="", help="the Covalent server's Python (default: this one's)"
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Make the checks and print them, as text or JSON.

    Args:
        args: the parsed ``doctor`` arguments.

    Returns:
        1 when a check found a problem, else 0.
    """
    from ..doctor import PROBLEM, Doctor, as_json, render

    overrides = {"region": args.region, "profile": args.profile}
    checks = Doctor(overrides, python=args.python).run()
    print(as_json(checks) if args.json else render(checks))
    return 1 if any(check.status == PROBLEM for check in checks) else 0
