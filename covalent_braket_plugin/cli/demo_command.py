"""``covalent-braket demo``: run a workflow through a throw-away Covalent server onto the
emulator, then stop everything it started (see :mod:`~covalent_braket_plugin.demo`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_command(subparsers: Any) -> None:
    """Register ``demo`` with the ``covalent-braket`` command's subparsers.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers`` returned.
    """
    parser = subparsers.add_parser("demo", help="run a workflow on the emulator through Covalent")
    parser.add_argument("--poll-freq", type=float, default=1.0, help="executor poll interval (s)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo.

    Args:
        args: the parsed ``demo`` arguments.

    Returns:
        The demo's exit code.
    """
    from ..demo import run_demo

    return run_demo(poll_freq=args.poll_freq)
