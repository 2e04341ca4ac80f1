"""The ``covalent-braket`` command.

``covalent-braket emulator``  serve Braket-in-a-box on a loopback port until SIGINT/SIGTERM.
``covalent-braket demo``      run a workflow through a throw-away Covalent server onto the
                              emulator, then stop everything it started.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence


def _emulator(args: argparse.Namespace) -> int:
    from .emulator import BraketEmulator, RuntimeSettings

    settings = RuntimeSettings(queue_seconds=args.queue_seconds, max_concurrent_jobs=args.max_concurrent_jobs)
    emulator = BraketEmulator(host=args.host, port=args.port, work_dir=args.work_dir, settings=settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    url = emulator.start()
    print(f"Braket emulator listening on {url}", flush=True)
    print(f"  export AWS_ENDPOINT_URL={url} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
          "AWS_DEFAULT_REGION=us-east-1", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        print("Braket emulator stopped", flush=True)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(poll_freq=args.poll_freq)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="covalent-braket", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    emulator = commands.add_parser("emulator", help="serve the local Braket emulator")
    emulator.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=4566, help="port to bind; 0 picks a free one")
    emulator.add_argument("--work-dir", default=None, help="where job working directories go")
    emulator.add_argument("--queue-seconds", type=float, default=0.0, help="seconds a job stays QUEUED")
    emulator.add_argument("--max-concurrent-jobs", type=int, default=32, help="jobs that run at once")
    emulator.set_defaults(handler=_emulator)

    demo = commands.add_parser("demo", help="run a workflow on the emulator through Covalent")
    demo.add_argument("--poll-freq", type=float, default=1.0, help="executor poll interval (s)")
    demo.set_defaults(handler=_demo)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
