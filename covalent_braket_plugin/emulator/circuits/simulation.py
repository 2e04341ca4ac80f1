"""One quantum task's simulation and its ``results.json``, as the managed simulators write it.

This module runs inside a simulator worker process (see
:mod:`~covalent_braket_plugin.emulator.circuits.workers`), never in the emulator's own: the
local simulators must not run in two threads of one process at once. ``python -m
covalent_braket_plugin.emulator.circuits.simulation`` serves requests on stdin, one JSON line
each, and answers on stdout, one JSON line each.

What the service writes and the local simulators do not:

- with shots, each requested result type with its value, computed from the measurements;
- without shots, array and complex values as JSON (a complex number as ``[real, imag]``);
- ``additionalMetadata.simulatorMetadata.executionDuration`` (milliseconds);
- the ``adjoint_gradient`` result type on SV1 (see :mod:`.gradients`);
- every ``#pragma`` honoured, also several on one line.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any

_PRAGMA_AFTER_CODE = re.compile(r"(?<=\S)[ \t]*(?=#pragma\b)")
_RESULT_PRAGMA = re.compile(r"^[ \t]*#pragma\s+braket\s+result\b", re.MULTILINE)


def simulate(request: dict[str, Any]) -> str:
    """Run one task; return its ``results.json`` text.

    Args:
        request: ``simulator`` (``braket_sv`` or ``braket_dm``), ``action`` (the OpenQASM
            program's JSON), ``shots``, ``inputs``, ``taskArn`` and ``deviceArn``.
    """
    import warnings

    from braket.ir.openqasm import Program

    from ..api.devices import simulator_class
    from . import gradients

    warnings.simplefilter("ignore")  # a noise-free circuit on DM1, and the like: not the task's
    program = Program.parse_raw(request["action"])
    inputs = {**(program.inputs or {}), **(request.get("inputs") or {})}
    source, gradient = gradients.split(_one_pragma_per_line(program.source))
    shots = int(request["shots"])
    started = time.perf_counter()
    result = None
    if gradient is None or _RESULT_PRAGMA.search(source):
        result = simulator_class(request["simulator"])().run(
            Program(source=source, inputs=inputs or None), shots=shots
        )
    values = _result_types(result, shots) if result is not None else []
    if gradient is not None:
        values.append(gradient.compute(source, inputs))
    duration = max(1, round((time.perf_counter() - started) * 1000))
    metadata = (
        json.loads(result.taskMetadata.json(exclude_none=True))
        if result is not None
        else {"braketSchemaHeader": {"name": "braket.task_result.task_metadata", "version": "1"}}
    )
    metadata.update({"id": request["taskArn"], "deviceId": request["deviceArn"], "shots": shots})
    body: dict[str, Any] = {
        "braketSchemaHeader": {"name": "braket.task_result.gate_model_task_result", "version": "1"},
        "taskMetadata": metadata,
        "additionalMetadata": {
            "action": json.loads(program.json(exclude_none=True)),
            "simulatorMetadata": {
                "braketSchemaHeader": {
                    "name": "braket.task_result.simulator_metadata",
                    "version": "1",
                },
                "executionDuration": duration,
            },
        },
    }
    if result is None:
        body["resultTypes"] = values
        return json.dumps(body)
    if result.measurements:
        body["measurements"] = [[int(bit) for bit in shot] for shot in result.measurements]
    if result.measuredQubits:
        body["measuredQubits"] = [int(qubit) for qubit in result.measuredQubits]
    if values:
        body["resultTypes"] = values
    return json.dumps(body)


def _one_pragma_per_line(source: str) -> str:
    """The program with every ``#pragma`` on a line of its own, as the service reads it (a
    pragma after code or another pragma on one line is still a pragma)."""
    return _PRAGMA_AFTER_CODE.sub("\n", source)


def _result_types(result: Any, shots: int) -> list[dict[str, Any]]:
    """The requested result types with their values, as JSON."""
    if not result.resultTypes:
        return []
    if shots == 0:
        return [
            {"type": _spec(item.type), "value": jsonable(item.value)} for item in result.resultTypes
        ]
    import numpy as np
    from braket.tasks import GateModelQuantumTaskResult

    specs = [_spec(item) for item in result.resultTypes]
    computed = GateModelQuantumTaskResult._calculate_result_types(
        json.dumps({"results": specs}),
        np.asarray(result.measurements, dtype=int),
        list(result.measuredQubits),
    )
    return [
        {"type": spec, "value": jsonable(item.value)}
        for spec, item in zip(specs, computed, strict=True)
    ]


def _spec(model: Any) -> dict[str, Any]:
    return json.loads(model.json(exclude_none=True))


def jsonable(value: Any) -> Any:
    """A result value as the service writes it: arrays as lists, complex numbers as
    ``[real, imag]``, numpy scalars as numbers."""
    import numpy as np

    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, (complex, np.complexfloating)):
        return [float(value.real), float(value.imag)]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def serve() -> None:
    """Answer simulation requests on stdin until it closes: ``{"ok": results}`` or
    ``{"error": "Type: message"}`` per request. Faults staged by the emulator's tests crash
    or hang this process on purpose."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the emulator stops its workers itself
    from braket.ir.openqasm import Program  # noqa: F401  (what simulate() needs, loaded first)

    from ..api.devices import simulator_class

    simulator_class("braket_sv")  # imports the default simulator, DM1's class too
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but answers on the protocol's stream
    out.write(json.dumps({"ready": True}) + "\n")  # imported: a task's time starts now
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        fault = request.get("fault")
        if fault == "crash":
            os.abort()
        if fault == "hang":
            time.sleep(10**6)
        try:
            answer = {"ok": simulate(request)}
        except Exception as exc:  # the program's fault: the task fails, the worker goes on
            answer = {"error": f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__}
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    serve()
