"""The devices Braket-in-a-box serves, and what each can run.

The managed simulators SV1, DM1 and TN1 keep their real ARNs and report capabilities derived
from the local simulators' own properties (``braket.default_simulator``): what the emulator can
really run. A catalogue file can add emulated QPU ARNs that run on a local simulator with the
device's qubit count, native gates and connectivity, clearly reported as emulated.

The simulator packages are imported on first use, so an emulator that serves only hybrid
jobs starts quickly.
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ...service import arn_region
from ..exceptions import ValidationException

SV1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
DM1 = "arn:aws:braket:::device/quantum-simulator/amazon/dm1"
TN1 = "arn:aws:braket:::device/quantum-simulator/amazon/tn1"
OPENQASM = "braket.ir.openqasm.program"
#: Environment variable naming a JSON device catalogue that adds emulated devices.
CATALOGUE_ENV = "BRAKET_EMULATOR_DEVICES"
_NOISE_RE = re.compile(r"#pragma\s+braket\s+noise", re.IGNORECASE)
_ADJOINT_GRADIENT_RE = re.compile(r"#pragma\s+braket\s+result\s+adjoint_gradient\b")
_MEASURE_RE = re.compile(r"\bmeasure\b")
_NOT_GATES = frozenset({"measure", "reset", "barrier", "qubit", "bit", "let", "box"})
#: A gate applied to qubits: ``h q[0];``, ``rx(0.1) $3;``, ``cnot __qubits__[0], ...``.
_GATE_LINE_RE = re.compile(
    r"^\s*([a-z_]\w*)\s*(?:\([^)]*\))?\s+(?:q\b|q\[|\$\d|__qubits__)", re.MULTILINE | re.IGNORECASE
)


@dataclass(frozen=True)
class Device:
    """One device the emulator serves.

    Attributes:
        arn: The device ARN clients use.
        name: ``deviceName``.
        provider: ``providerName``.
        device_type: ``SIMULATOR`` or ``QPU``.
        simulator: The local simulator that runs its tasks: ``braket_sv`` or ``braket_dm``.
        shots_range: Inclusive (min, max) shots.
        noise: Whether programs may carry noise pragmas.
        qubit_count: Qubits reported (None: the local simulator's own count).
        native_gates: For emulated QPUs, the gates reported and accepted (lower case).
        connectivity: For emulated QPUs, the coupling graph ``{"0": ["1"], ...}``; None is
            all-to-all.
        emulated_qpu: Marks a QPU stand-in; its name and capabilities say so.
        status: ``deviceStatus``.
        adjoint_gradient: Whether it computes the ``adjoint_gradient`` result type (SV1).
        all_qubits_measured: Whether a program that measures must measure every qubit it uses
            (SV1 refuses partial measurement).
    """

    arn: str
    name: str
    provider: str
    device_type: str
    simulator: str
    shots_range: tuple[int, int]
    noise: bool = False
    qubit_count: int | None = None
    native_gates: tuple[str, ...] = ()
    connectivity: dict[str, list[str]] | None = None
    emulated_qpu: bool = False
    status: str = "ONLINE"
    adjoint_gradient: bool = False
    all_qubits_measured: bool = False

    @property
    def region(self) -> str:
        """The Region in the device's ARN; empty for the managed simulators (every Region)."""
        return arn_region(self.arn)

    def serves(self, region: str) -> bool:
        """Whether the device answers in ``region``: its own, or any, for a simulator."""
        return not self.region or self.region == region

    def summary(self) -> dict[str, Any]:
        return {
            "deviceArn": self.arn,
            "deviceName": self.name,
            "providerName": self.provider,
            "deviceType": self.device_type,
            "deviceStatus": self.status,
        }

    def describe(self) -> dict[str, Any]:
        body = self.summary()
        body["deviceCapabilities"] = json.dumps(self.capabilities())
        body["deviceQueueInfo"] = [
            {"queue": "QUANTUM_TASKS_QUEUE", "queueSize": "0", "queuePriority": "Normal"},
            {"queue": "QUANTUM_TASKS_QUEUE", "queueSize": "0", "queuePriority": "Priority"},
            {"queue": "JOBS_QUEUE", "queueSize": "0"},
        ]
        return body

    def capabilities(self) -> dict[str, Any]:
        """The capabilities document, derived from the local simulator's properties."""
        base = copy.deepcopy(_local_properties(self.simulator))
        base["service"]["shotsRange"] = list(self.shots_range)
        base["service"]["getTaskPollIntervalMillis"] = 100  # results come fast: poll often
        action = base["action"][OPENQASM]
        base["action"] = {OPENQASM: action}  # OpenQASM 3 is what the SDK and PennyLane send
        self._limit_action(action)
        if self.qubit_count is not None:
            base["paradigm"]["qubitCount"] = min(self.qubit_count, base["paradigm"]["qubitCount"])
        if self.emulated_qpu:
            # A gate-model QPU document (the SDK's generic QPU schema, IQM's header), so that
            # clients see the native gate set and connectivity as they would on hardware.
            base["braketSchemaHeader"] = {
                "name": "braket.device_schema.iqm.iqm_device_capabilities",
                "version": "1",
            }
            base["paradigm"] = self._qpu_paradigm(base["paradigm"]["qubitCount"])
        if self.adjoint_gradient:
            _add_adjoint_gradient(action)
        if self.all_qubits_measured:
            action["requiresAllQubitsMeasurement"] = True
        base["emulated"] = {
            "by": "covalent-braket-plugin Braket-in-a-box",
            "simulator": self.simulator,
            "emulatedQpu": self.emulated_qpu,
        }
        return base

    def _limit_action(self, action: dict[str, Any]) -> None:
        """Take out of the OpenQASM action what the device does not run: noise without
        ``noise``, results with fewer shots than its least, gates not native to it."""
        if not self.noise:
            action["supportedPragmas"] = [
                p for p in action.get("supportedPragmas", []) if "noise" not in p
            ]
            action["supportedOperations"] = [
                op for op in action["supportedOperations"] if op not in _noise_operations()
            ]
        if self.shots_range[0] > 0:
            for result_type in action.get("supportedResultTypes", []):
                result_type["minShots"] = max(result_type.get("minShots") or 0, self.shots_range[0])
        if self.native_gates:
            action["supportedOperations"] = [
                op for op in action["supportedOperations"] if op.lower() in self.native_gates
            ]

    def _qpu_paradigm(self, qubit_count: int) -> dict[str, Any]:
        """An emulated QPU's paradigm: its qubits, native gates and connectivity."""
        return {
            "braketSchemaHeader": {
                "name": "braket.device_schema.gate_model_qpu_paradigm_properties",
                "version": "1",
            },
            "qubitCount": qubit_count,
            "nativeGateSet": list(self.native_gates),
            "connectivity": {
                "fullyConnected": self.connectivity is None,
                "connectivityGraph": self.connectivity or {},
            },
        }

    def check_program(self, source: str, shots: int) -> None:
        """Reject what this device cannot run, with the service's kind of message."""
        low, high = self.shots_range
        if not low <= shots <= high:
            raise ValidationException(
                f"Device {self.arn} requires shots between {low} and {high}; got {shots}"
            )
        if not self.noise and _NOISE_RE.search(source):
            raise ValidationException(
                f"Device {self.arn} does not support noise pragmas; "
                f"use DM1 ({DM1}) for noise simulation"
            )
        if _ADJOINT_GRADIENT_RE.search(source):
            if not self.adjoint_gradient:
                raise ValidationException(
                    f"Device {self.arn} does not support the adjoint_gradient result type"
                )
            if shots != 0:
                raise ValidationException(
                    "The adjoint_gradient result type is only supported with shots=0"
                )
        if self.all_qubits_measured and _MEASURE_RE.search(source):
            _check_all_measured(source)
        if self.native_gates:
            used = set(_GATE_LINE_RE.findall(source))
            unknown = sorted(
                gate
                for gate in used
                if gate.lower() not in self.native_gates and gate.lower() not in _NOT_GATES
            )
            if unknown:
                raise ValidationException(
                    f"Device {self.arn} does not support the operations {unknown}; "
                    f"its native gates are {sorted(self.native_gates)}"
                )


def _add_adjoint_gradient(action: dict[str, Any]) -> None:
    """Add SV1's ``adjoint_gradient`` result type (and its pragma) to an OpenQASM action."""
    action["supportedPragmas"] = [
        *action.get("supportedPragmas", []),
        "braket_result_type_adjoint_gradient",
    ]
    action["forbiddenPragmas"] = [
        p for p in action.get("forbiddenPragmas", []) if "adjoint_gradient" not in p
    ]
    action.setdefault("supportedResultTypes", []).append(
        {
            "name": "AdjointGradient",
            "observables": ["x", "y", "z", "h", "i"],
            "minShots": 0,
            "maxShots": 0,
        }
    )


def _check_all_measured(source: str) -> None:
    """A program that measures must measure every qubit it uses, numbered 0 to n - 1."""
    from braket.default_simulator.openqasm.interpreter import Interpreter

    try:
        circuit = Interpreter().build_circuit(source)
    except Exception:  # an input left open, or the like: the simulator will say what is wrong
        return
    measured = set(getattr(circuit, "measured_qubits", ()) or ())
    every = set(circuit.qubit_set) | measured
    if measured and (measured != every or every != set(range(len(every)))):
        raise ValidationException(
            "Device requires all qubits in the program to be measured. This may be caused by "
            "declaring non-contiguous qubits or measuring partial qubits"
        )


@lru_cache(maxsize=4)
def _local_properties(simulator: str) -> dict[str, Any]:
    return json.loads(simulator_class(simulator)().properties.json())


@lru_cache(maxsize=1)
def _noise_operations() -> frozenset[str]:
    return frozenset(
        {
            "amplitude_damping",
            "bit_flip",
            "depolarizing",
            "generalized_amplitude_damping",
            "pauli_channel",
            "phase_damping",
            "phase_flip",
            "two_qubit_dephasing",
            "two_qubit_depolarizing",
            "kraus",
        }
    )


def simulator_class(simulator: str) -> Any:
    from braket.default_simulator import DensityMatrixSimulator, StateVectorSimulator

    return {"braket_sv": StateVectorSimulator, "braket_dm": DensityMatrixSimulator}[simulator]


def builtin_devices() -> list[Device]:
    return [
        Device(
            SV1,
            "SV1",
            "Amazon Braket",
            "SIMULATOR",
            "braket_sv",
            (0, 100_000),
            adjoint_gradient=True,
            all_qubits_measured=True,
        ),
        Device(DM1, "dm1", "Amazon Braket", "SIMULATOR", "braket_dm", (0, 100_000), noise=True),
        # Retired by the service; kept so that its ARN answers as the service answers it.
        Device(TN1, "TN1", "Amazon Braket", "SIMULATOR", "braket_sv", (1, 1_000), status="RETIRED"),
    ]


def load_catalogue(path: str | None) -> list[Device]:
    """Devices from a JSON catalogue file (see :func:`parse_catalogue`)."""
    if not path:
        return []
    with open(path, encoding="utf-8") as handle:
        return parse_catalogue(json.load(handle), source=path)


def parse_catalogue(entries: Any, source: str = "catalogue") -> list[Device]:
    """Emulated QPUs from a list of objects with ``arn``, ``name``, ``provider``,
    ``qubitCount`` and optionally ``nativeGates``, ``connectivity``, ``simulator``
    (``braket_sv``/``braket_dm``), ``shotsRange`` and ``status``."""
    if not isinstance(entries, list):
        raise ValueError(f"device {source} must be a JSON list of devices")
    devices = []
    for entry in entries:
        try:
            devices.append(
                Device(
                    arn=entry["arn"],
                    name=f"{entry.get('name', entry['arn'].rsplit('/', 1)[-1])} (emulated)",
                    provider=entry.get("provider", "Emulated"),
                    device_type="QPU",
                    simulator=entry.get("simulator", "braket_sv"),
                    shots_range=tuple(entry.get("shotsRange", (1, 100_000))),  # type: ignore[arg-type]
                    noise=entry.get("simulator") == "braket_dm",
                    qubit_count=int(entry["qubitCount"]),
                    native_gates=tuple(g.lower() for g in entry.get("nativeGates", ())),
                    connectivity=entry.get("connectivity"),
                    emulated_qpu=True,
                    status=entry.get("status", "ONLINE"),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"device {source}: bad entry {entry!r}: {exc}") from exc
    return devices


class DeviceCatalogue:
    """The devices served: the managed simulators plus any emulated QPUs."""

    def __init__(self, extra: list[Device] | None = None) -> None:
        self._lock = threading.Lock()
        self._initial = [
            *builtin_devices(),
            *(extra if extra is not None else load_catalogue(os.environ.get(CATALOGUE_ENV))),
        ]
        self._devices = {device.arn: device for device in self._initial}

    def reset(self) -> None:
        """Forget devices added at run time; keep the built-in ones and the catalogue file's."""
        with self._lock:
            self._devices = {device.arn: device for device in self._initial}

    def add(self, device: Device) -> None:
        with self._lock:
            self._devices[device.arn] = device

    def get(self, arn: str) -> Device | None:
        with self._lock:
            return self._devices.get(arn)

    def all(self) -> list[Device]:
        with self._lock:
            return list(self._devices.values())
