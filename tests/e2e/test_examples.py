"""The examples in examples/, run on the emulator through the session's Covalent server."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from tests.e2e.helpers import POLL, diagnose, executor, jobs_of, run

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    cloudpickle.register_pickle_by_value(module)
    return module


def test_variational_example_improves_on_every_start_and_keeps_the_best(
    aws: Any, server: Any
) -> None:
    example = load("variational")
    starts = [0.3, 1.0, 2.0]
    result = run(server, example.make_workflow(executor(poll_freq=POLL)), starts)
    assert str(result.status) == "COMPLETED", diagnose(result)
    best = result.result
    assert best["start"] in starts
    assert best["energy"] < best["history"][0]
    assert len(best["history"]) == 4
    assert len(jobs_of(aws, result.dispatch_id)) == 3
    tasks = aws.braket.search_quantum_tasks(filters=[])["quantumTasks"]
    assert len(tasks) == 3 * (
        1 + 3 * 3
    )  # per job: the start, then three steps of three evaluations
