"""The benchmark scripts still run and print what BENCHMARKS.md reports, at the smallest sizes.

Figures are not checked here (speed is for the benchmarks themselves); what is checked is that
each script runs against its own emulator, both paths do the work, and the tables have the
rows and columns the documentation quotes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def bench(script: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        cwd=BENCHMARKS.parent,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def rows(output: str, first_cell: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in output.splitlines()
        if line.startswith("|") and line.strip("|").split("|")[0].strip() == first_cell
    ]


def test_overhead_splits_both_paths_into_the_same_phases() -> None:
    output = bench("overhead.py", "--tasks", "2")
    (ratio,) = rows(output, "ratio (executor / raw)")
    assert float(ratio[-1]) > 0
    for phase in ("serialize", "upload", "submit", "detect completion", "download"):
        (row,) = rows(output, phase)
        assert float(row[1]) >= 0 and float(row[2]) >= 0, row  # measured on both paths


def test_concurrency_reports_calls_lag_and_correctness() -> None:
    output = bench("concurrency.py", "--sizes", "3", "--poll", "0.5")
    (row,) = rows(output, "3")
    assert row[-1] == "True"  # every result right
    assert "CreateJob 3" in row[3]
    assert float(row[7]) >= 0 and float(row[8]) >= float(row[7])  # p99 <= worst lag


def test_payload_compares_both_paths_with_memory() -> None:
    output = bench("payload.py", "--sizes", "1", "--repeat", "1")
    for direction in ("upload", "download"):
        (row,) = [r for r in rows(output, "1 MiB") if r[1] == direction]
        assert float(row[2]) > 0 and float(row[3]) > 0 and float(row[4]) > 0
        assert float(row[7]) > 0.9 and float(row[8]) > 0.9  # heap peaks count the payload


def test_import_time_reports_no_braket_sdk() -> None:
    output = bench("import_time.py", "--runs", "1")
    assert "Braket SDK or PennyLane imported: False" in output


def test_quotas_reports_the_floor_throttling_and_calls() -> None:
    output = bench("quotas.py", "--sizes", "8", "--poll", "1")
    (row,) = rows(output, "8")
    assert row[-1] == "True"  # every result right
    assert float(row[2]) == 3  # (8 - 5) / 1 s of CreateJob
    assert float(row[3]) > 0  # one electron alone, the target's allowance
    assert row[6] == "0"  # no throttled response
    assert "CreateJob 8" in row[8]


def test_sweep_brings_every_electron_home_within_the_job_quota() -> None:
    output = bench(
        "sweep.py",
        *("--electrons", "12", "--start-seconds", "0.2", "--work-seconds", "0.1"),
        *("--modes", "0,1"),  # one job per electron, and packed (the SDK's takes long)
    )
    assert "floor of one job per electron N / slots x (start + work) = 1 s" in output
    (alone,) = rows(output, "one job per electron (pack=False)")
    (packed,) = rows(output, "packed (defaults: a member per core, more while cores idle)")
    for row in (alone, packed):
        assert row[1] == "12" and row[2] == "0"  # every electron correct, none failed
        assert float(row[3]) > 0 and float(row[5]) > 0 and float(row[7]) > 0
        assert row[9] == "0"  # nothing throttled or refused
    assert alone[6] == "12"  # one job each
    assert int(packed[6]) < 12  # the seven that waited shared jobs


def test_job_start_compares_warm_and_cold_jobs() -> None:
    output = bench("job_start.py", "--runs", "1")
    for kind in ("prints one line", "imports covalent, cloudpickle", "one SV1 task (Braket SDK)"):
        (row,) = rows(output, kind)
        assert len(row) == 6 and row[-1].endswith("x")
    assert "fallbacks 0" in output and "jobs forked 0" not in output


def test_chain_pays_one_job_start_with_warm_jobs() -> None:
    output = bench(
        "chain.py",
        *("--electrons", "3", "--start-seconds", "0.2", "--work-seconds", "0.1"),
        *("--warm-seconds", "3", "--poll", "0.3"),
    )
    (each,) = rows(output, "a job each (warm_seconds=0)")
    (warm,) = rows(output, "warm jobs (warm_seconds=3)")
    assert each[1] == "1" and warm[1] == "1"  # the chain's value is right
    assert each[3] == "3" and warm[3] == "1"  # three job starts, and one
    assert float(warm[4]) > 0 and float(each[4]) > 0
