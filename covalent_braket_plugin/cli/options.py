"""Arguments more than one ``covalent-braket`` command takes."""

from __future__ import annotations

import argparse
from typing import Any


def add_region_and_profile(parser: argparse.ArgumentParser) -> None:
    """Add ``--region`` and ``--profile``, each over covalent.conf's.

    Args:
        parser: the command's parser.
    """
    parser.add_argument("--region", default="", help="override covalent.conf's region")
    parser.add_argument("--profile", default="", help="override covalent.conf's profile")


def dispatch_parser(subparsers: Any, name: str, summary: str) -> argparse.ArgumentParser:
    """Add the parser of a command about one dispatch, with its ``dispatch_id`` argument.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers`` returned.
        name: the command's name.
        summary: the command's help.

    Returns:
        The command's parser, for its other arguments.
    """
    parser = subparsers.add_parser(name, help=summary)
    parser.add_argument("dispatch_id", help="the Covalent dispatch id")
    return parser
