"""Shared set-up of the benchmarks: an emulator in its own process, and what a task needs."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

BUCKET = "amazon-braket-covalent-bench"
ROLE = "arn:aws:iam::123456789012:role/CovalentBraketJobsExecutionRole"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/covalent-braket:latest"


@contextlib.contextmanager
def emulator(
    max_concurrent_jobs: int = 32,
    lowest_priority: bool = False,
    quotas: bool = True,
    job_quota: int | None = None,
) -> Iterator[str]:
    """Start ``covalent-braket emulator`` in its own process (so it does not share this
    process's GIL and event loop) and point this process's AWS settings at it.

    ``lowest_priority`` runs the emulator and its job processes at nice 19: they stand in for
    the service's own machines, so they must not take the CPU from the process measured.
    ``quotas`` False turns off Braket's request quotas (enforced by default). ``job_quota``
    raises the account's job quotas (jobs at once, ``ml.m5.large`` instances) to that many, as
    a user with raised quotas has them (the service's by default: 5).
    """
    raised = ["--concurrent-jobs", str(job_quota), "--instance-quota", f"ml.m5.large={job_quota}"]
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
            *([] if quotas else ["--no-quotas"]),
            *(raised if job_quota else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.nice(19)) if lowest_priority else None,
    )
    try:
        url = process.stdout.readline().strip().rsplit(" ", 1)[1]
        # The emulator's own credentials and token (its process makes them), as it prints them.
        exported = shlex.split(process.stdout.readline())[1:]
        from covalent_braket_plugin.testing import emulator_env, provision

        for name in [k for k in os.environ if k.startswith("AWS_")]:
            del os.environ[name]
        os.environ.update(emulator_env(url))  # a benchmark process of its own
        os.environ.update(pair.split("=", 1) for pair in exported)
        provision(BUCKET, ROLE, IMAGE)
        yield url
        from covalent_braket_plugin.usage import wait_for_accounts

        wait_for_accounts()  # every usage.json written before the emulator goes
    finally:
        process.terminate()
        process.wait(timeout=30)


def control(url: str, path: str, body: Any = None, method: str = "GET") -> Any:
    """A call of the emulator's control API, with the token it printed."""
    data = json.dumps(body).encode() if body is not None else None
    token = os.environ.get("BRAKET_EMULATOR_TOKEN", "")
    request = urllib.request.Request(
        f"{url}/_emulator{path}", data=data, method=method, headers={"X-Emulator-Token": token}
    )
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
    from covalent_braket_plugin.config import DEFAULTS

    # Every setting given: what this machine's covalent.conf says (written by an older
    # version, with its defaults) does not change the figures.
    given = {
        **DEFAULTS,
        "s3_bucket_name": BUCKET,
        "ecr_image_uri": IMAGE,
        "braket_job_execution_role_name": ROLE,
        **settings,
    }
    executor = _HOSTED(**given)
    executor._task_stdout = io.StringIO()
    executor._task_stderr = io.StringIO()
    return executor


class LoopLag:
    """Measures the delays of the event loop while it runs (a 10 ms tick that comes late),
    and the full (generation 2) garbage collections of the process meanwhile: a full
    collection holds the GIL for as long as it walks every object, whichever thread runs it."""

    def __init__(self, tick: float = 0.01) -> None:
        self.tick = tick
        self.lags: list[float] = []
        self.full_collections: list[float] = []
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def worst(self) -> float:
        return max(self.lags, default=0.0)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.lags)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else 0.0

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.tick)
            self.lags.append(max(loop.time() - before - self.tick, 0.0))

    def _on_gc(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.full_collections.append(time.perf_counter() - self._gc_started)

    def __enter__(self) -> LoopLag:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        gc.callbacks.remove(self._on_gc)


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[Any]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [f"\n{title}", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in rows]
    return "\n".join(out)


def machine() -> str:
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{python}, {os.cpu_count()} cores, {platform.machine()}"


def now() -> float:
    return time.perf_counter()
