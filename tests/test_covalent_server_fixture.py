"""The ``covalent_server`` fixture, as a user's test uses it: a workflow through a real Covalent
server onto Braket-in-a-box, with nothing set up by hand (no covalent.conf, no bucket, no
role, no Dask setting, no pickling by value)."""

from __future__ import annotations

from typing import Any

import covalent as ct
import pytest

from covalent_braket_plugin.braket import BraketExecutor
from covalent_braket_plugin.testing import covalent_server_settings

pytestmark = pytest.mark.timeout(180)


@ct.electron(executor="braket")
def add(a: int, b: int) -> int:
    return a + b


@ct.electron(executor=BraketExecutor(**covalent_server_settings(), time_limit=120))
def total(values: list) -> int:
    return sum(values)


@ct.lattice
def flow(a: int, b: int) -> int:
    return total([add(a, b), add(b, b)])


def test_a_users_lattice_runs_through_the_fixtures_server(
    covalent_server: Any, braket_emulator: Any
) -> None:
    result = covalent_server.run(flow, 1, 2)
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == 7
    created = braket_emulator.journal(service="braket", operation="CreateJob")
    assert len(created) == 3  # two adds and the total; Covalent's list helper is no job
    bucket = covalent_server.settings["s3_bucket_name"]
    assert bucket == "amazon-braket-covalent-us-east-1-123456789012"
