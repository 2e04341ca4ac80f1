"""The ``covalent-braket`` command.

``covalent-braket emulator``  serve Braket-in-a-box on a loopback port until SIGINT/SIGTERM.
``covalent-braket demo``      run a workflow through a throw-away Covalent server onto the
                              emulator, then stop everything it started.
``covalent-braket setup``     create the AWS resources the executor needs (idempotent).
``covalent-braket doctor``    check the whole setup, one line per check.
``covalent-braket jobs``      a dispatch's Braket jobs: state, queue, times, quantum tasks,
                              estimated cost.
``covalent-braket logs``      the CloudWatch log of a dispatch's Braket jobs, followed with
                              ``--follow``.
``covalent-braket cancel``    ``--orphans``: stop the jobs no live Covalent server follows.

Each command is a module of this package that registers its parser (``add_command``) and
runs it; :func:`main` only builds the top parser from them and dispatches.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import (
    cancel_command,
    demo_command,
    doctor_command,
    emulator_command,
    jobs_command,
    logs_command,
    setup_command,
)

#: The commands, in the order ``--help`` lists them.
COMMANDS = (
    emulator_command,
    setup_command,
    doctor_command,
    demo_command,
    jobs_command,
    logs_command,
    cancel_command,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``covalent-braket`` command.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The command's exit code.
    """
    parser = argparse.ArgumentParser(
        prog="covalent-braket",
        description="Run Covalent electrons as Amazon Braket hybrid jobs: Braket-in-a-box (the "
        "local emulator), setup, doctor, a demo, and a dispatch's jobs and logs.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_command(subparsers)
    args = parser.parse_args(argv)
    return args.handler(args)
