"""Shared set-up of the benchmarks: an emulator in its own process, and what a task needs."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

BUCKET = "covalent-braket-bench"
ROLE = "arn:aws:iam::123456789012:role/CovalentBraketJobsExecutionRole"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/covalent-braket:latest"


@contextlib.contextmanager
def emulator(max_concurrent_jobs: int = 32) -> Iterator[str]:
    """Start ``covalent-braket emulator`` in its own process (so it does not share this
    process's GIL and event loop) and point this process's AWS settings at it."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "covalent_braket_plugin.cli",
            "emulator",
            "--port",
            "0",
            "--max-concurrent-jobs",
            str(max_concurrent_jobs),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip().rsplit(" ", 1)[1]
        from covalent_braket_plugin.sandbox import emulator_env, provision

        for name in [k for k in os.environ if k.startswith("AWS_")]:
            del os.environ[name]
        os.environ.update(emulator_env(url))  # a benchmark process of its own
        provision(BUCKET, ROLE, IMAGE)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def control(url: str, path: str, body: Any = None, method: str = "GET") -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}/_emulator{path}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def journal(url: str) -> list[dict[str, Any]]:
    return control(url, "/journal")["requests"]


def clear_journal(url: str) -> None:
    control(url, "/journal", method="DELETE")


_HOSTED: Any = None


def BenchExecutor(**settings: Any) -> Any:
    """A BraketExecutor with Covalent's server-side plumbing answered in-process."""
    global _HOSTED
    if _HOSTED is None:
        from covalent_braket_plugin.braket import BraketExecutor

        class Hosted(BraketExecutor):
            async def get_cancel_requested(self) -> bool:
                return False

            async def get_version_info(self) -> dict:
                return {"python": platform.python_version()}

            async def set_job_handle(self, handle: Any) -> None:
                self.handle = handle

        _HOSTED = Hosted
    executor = _HOSTED(
        s3_bucket_name=BUCKET, ecr_image_uri=IMAGE, braket_job_execution_role_name=ROLE, **settings
    )
    executor._task_stdout = io.StringIO()
    executor._task_stderr = io.StringIO()
    return executor


class LoopLag:
    """Measures the worst delay of the event loop while it runs."""

    def __init__(self, tick: float = 0.01) -> None:
        self.tick = tick
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.tick)
            self.worst = max(self.worst, loop.time() - before - self.tick)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [f"\n{title}", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in rows]
    return "\n".join(out)


def machine() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}"


def now() -> float:
    return time.perf_counter()
