"""A packed job's gauge of its instance's cores: one member per core, more while cores idle.

The arithmetic is shown on a ``/proc`` written here and a clock set by the test; the reading
of the real ``/proc`` on processes started here; the member runner's use of it in
``tests/test_members.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from covalent_braket_plugin.job import cores


class Proc:
    """A ``/proc`` of processes with set CPU ticks (at 100 a second, as Linux reports them)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def set(self, pid: int, ticks: int, reaped: int = 0, parent: int | None = None) -> None:
        """Process ``pid`` has used ``ticks`` (and its reaped children ``reaped``); a child of
        ``parent`` (listed in its main thread's ``children``) if given."""
        fields = ["S", str(parent or 1), str(pid), *["0"] * 8, str(ticks), "0", str(reaped), "0"]
        (self.root / str(pid) / "task" / str(pid)).mkdir(parents=True, exist_ok=True)
        (self.root / str(pid) / "stat").write_text(f"{pid} (a (strange) name) {' '.join(fields)}")
        if parent is not None:
            children = self.root / str(parent) / "task" / str(parent) / "children"
            known = children.read_text().split() if children.exists() else []
            children.write_text(" ".join(sorted({*known, str(pid)})) + " ")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(cores.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(cores.os, "sysconf", lambda name: 100)
    return now


def test_members_that_leave_their_cores_idle_make_room_for_more(
    tmp_path: Path, clock: list[float]
) -> None:
    proc = Proc(tmp_path)
    gauge = cores.Gauge(2, proc=str(tmp_path))
    assert gauge.room([]) == 2
    for pid in (10, 20):
        gauge.started(pid)
        proc.set(pid, 0)
    assert gauge.room([10, 20]) == 0  # not looked at yet: each counts as a core
    clock[0] += 0.5
    proc.set(10, 2)  # 0.02 s of CPU in 0.5 s: waiting
    proc.set(11, 1, reaped=1, parent=10)  # a process it started, and a child that one reaped
    proc.set(20, 1)
    assert gauge.room([10, 20]) == 2  # two whole cores idle
    gauge.started(30)
    gauge.started(40)
    assert gauge.room([10, 20, 30, 40]) == 0  # the new ones count as a core each
    clock[0] += 0.5
    for pid in (30, 40):
        proc.set(pid, 50)  # a whole core each: computing
    assert gauge.room([10, 20, 30, 40]) == 0
    clock[0] += 0.5
    proc.set(40, 100)  # still computing: one core in use, once the other ended
    gauge.ended(30)
    assert gauge.room([10, 20, 40]) == 1
    clock[0] += 0.5
    proc.set(40, 103)  # 0.03 s in 0.5 s: now it waits too
    assert gauge.room([10, 20, 40]) == 2


def test_new_members_count_as_the_settled_ones_do_until_looked_at(
    tmp_path: Path, clock: list[float]
) -> None:
    """A member's first look covers its start, a burst of CPU; once members have been looked
    at twice, a new one counts as they do until its own first look: waiting members start a
    core's worth at a time, computing ones one a core."""
    proc = Proc(tmp_path)
    gauge = cores.Gauge(2, proc=str(tmp_path))
    for pid in (10, 20):
        gauge.started(pid)
        proc.set(pid, 40)  # their start: 0.4 s of CPU in the first 0.5 s
    clock[0] += 0.5
    assert gauge.room([10, 20]) == 0  # one look, and it saw them busy
    clock[0] += 0.5
    assert gauge.room([10, 20]) == 2  # looked at twice: they wait
    gauge.started(30)
    gauge.started(40)
    assert gauge.room([10, 20, 30, 40]) == 2  # not looked at: taken to wait as 10 and 20 do
    for pid in (30, 40):
        proc.set(pid, 0)
    clock[0] += 0.5
    proc.set(30, 50)  # its first look: a whole core
    assert gauge.room([10, 20, 30, 40]) == 1

    busy = cores.Gauge(2, proc=str(tmp_path))
    for pid in (50, 60):
        busy.started(pid)
        proc.set(pid, 0)
    clock[0] += 0.5
    for pid in (50, 60):
        proc.set(pid, 50)
    assert busy.room([50, 60]) == 0
    clock[0] += 0.5
    for pid in (50, 60):
        proc.set(pid, 100)  # still computing, a core each
    busy.started(70)
    assert busy.room([50, 60, 70]) == 0  # the new one counts as a core, as they do


def test_no_more_than_per_core_members_and_none_without_proc(
    tmp_path: Path, clock: list[float]
) -> None:
    proc = Proc(tmp_path)
    gauge = cores.Gauge(1, proc=str(tmp_path))
    pids = list(range(100, 100 + cores.PER_CORE))
    for pid in pids:
        gauge.started(pid)
        proc.set(pid, 0)
    clock[0] += 1
    assert gauge.room(pids[:-1]) == 1 and gauge.room(pids) == 0  # idle, but the most

    blind = cores.Gauge(2, proc=str(tmp_path / "no-proc"))
    blind.started(1)
    blind.started(2)
    clock[0] += 1
    assert blind.room([1]) == 1 and blind.room([1, 2]) == 0  # one per core, no more


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_the_real_proc_tells_a_computing_member_from_a_waiting_one() -> None:
    """A member's CPU time is its process tree's: a process that waits on a child that
    computes is computing."""
    spin = "import time\nend = time.time() + 30\nwhile time.time() < end: pass"
    through_a_child = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {spin!r}])"

    def started(code: str) -> Any:
        return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)

    spinning, waiting, parent = (
        started(spin),
        started("import time\ntime.sleep(30)"),
        started(through_a_child),
    )
    try:
        time.sleep(1.5)
        used = cores.tree_cpu_seconds({spinning.pid, waiting.pid, parent.pid})
        assert used is not None
        assert used[spinning.pid] > used[waiting.pid] + 0.05, used
        assert used[parent.pid] > used[waiting.pid] + 0.05, used  # its child's CPU time
        assert used[waiting.pid] < 0.5, used  # its start-up only
    finally:
        for process in (spinning, waiting, parent):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
