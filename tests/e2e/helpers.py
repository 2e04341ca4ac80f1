"""Helpers of the end-to-end tests: executors, dispatching, and reading what happened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import covalent as ct

from covalent_braket_plugin.braket import BraketExecutor
from covalent_braket_plugin.testing import CovalentServer, emulator_env, write_braket_config
from tests.conftest import BUCKET, IMAGE, ROLE

POLL = 0.5
CONFIGURED = {
    "s3_bucket_name": BUCKET,
    "ecr_image_uri": IMAGE,
    "braket_job_execution_role_name": "CovalentBraketJobsExecutionRole",
    "poll_freq": POLL,
    "time_limit": 600,
}


def configured_server(
    emulator: Any, home: Path, port: int | None = None, **env: str
) -> CovalentServer:
    """A Covalent server (not started) in ``home``, its covalent.conf :data:`CONFIGURED`, its
    AWS calls sent to ``emulator`` (and ``env`` besides)."""
    write_braket_config(home, CONFIGURED)
    return CovalentServer(env={**emulator_env(emulator.url), **env}, home=home, port=port)


def executor(**changes: Any) -> BraketExecutor:
    settings = {**CONFIGURED, "braket_job_execution_role_name": ROLE, **changes}
    return BraketExecutor(**settings)


def run(server: CovalentServer, lattice: Any, *args: Any) -> Any:
    dispatch_id = ct.dispatch(lattice, dispatcher_addr=server.address)(*args)
    return ct.get_result(dispatch_id, wait=True, dispatcher_addr=server.address)


def diagnose(result: Any) -> str:
    """Every node's status, error and stderr: the message of a failed assertion."""
    lines = [f"workflow {result.status}: {result.error}"]
    for node_id in range(len(result.lattice.transport_graph._graph.nodes)):
        node = result.get_node_result(node_id)
        lines.append(
            f"node {node_id} {node['node_name']} {node['status']}: {node['error']}\n"
            f"{node['stderr']}"
        )
    return "\n".join(lines)


def jobs_of(aws: Any, dispatch_id: str, braket: Any = None) -> list[dict[str, Any]]:
    """The dispatch's Braket jobs (SearchJobs filters on ARN and time only: tags are read here),
    in the Region of ``braket`` (the tests' Region by default)."""
    jobs = [
        job
        for page in (braket or aws.braket).get_paginator("search_jobs").paginate(filters=[])
        for job in page["jobs"]
    ]
    return [job for job in jobs if job["tags"].get("covalent:dispatch_id") == dispatch_id]
