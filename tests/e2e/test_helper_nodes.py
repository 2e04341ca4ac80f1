"""Covalent's helper nodes run in the server: a workflow of five electrons makes five jobs."""

from __future__ import annotations

import sys
from typing import Any

import cloudpickle
import covalent as ct
import pytest

from covalent_braket_plugin.testing import CovalentServer
from tests.e2e.helpers import diagnose, executor, jobs_of, run

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@ct.electron(executor=executor())
def pair(n: int) -> tuple[int, int]:
    return n, n + 1


@ct.electron(executor=executor())
def f(i: int) -> complex:
    return complex(i * i)


@ct.electron(executor=executor())
def total(values: list, named: dict) -> float:
    return sum(values) + sum(named.values())


@ct.lattice
def five_electrons(n: int) -> float:
    a, b = pair(n)  # two __getitem__ nodes
    z = f(n).real  # a __getattr__ node
    return total([f(a), f(b)], {"z": z})  # :electron_list: and :electron_dict: nodes


def test_helper_nodes_make_no_jobs(aws: Any, server: CovalentServer) -> None:
    result = run(server, five_electrons, 3)
    assert str(result.status) == "COMPLETED", diagnose(result)
    assert result.result == 9 + 16 + 9
    nodes = [result.get_node_result(node) for node in result.lattice.transport_graph._graph.nodes]
    helpers = [node for node in nodes if node["node_name"].startswith((":pair", ":f", ":electron"))]
    assert len(helpers) == 7 and all(str(node["status"]) == "COMPLETED" for node in helpers)
    created = [
        entry
        for entry in aws.control.journal(service="braket", operation="CreateJob")
        if entry.get("status", 201) < 300
    ]
    jobs = jobs_of(aws, result.dispatch_id)
    assert len(jobs) == 5
    assert sorted(job["tags"]["covalent:node_id"] for job in jobs) == sorted(
        str(node["node_id"]) for node in nodes if node["node_name"] in ("pair", "f", "total")
    )
    assert len(created) == 5
