"""The ``adjoint_gradient`` result type of SV1, which the local simulators do not offer.

``#pragma braket result adjoint_gradient expectation(<observable>) <parameters | all>`` asks
for the expectation of a sum of Pauli products and its gradient with respect to the program's
input parameters, without shots. It is computed as SV1 computes it, by the adjoint method:
the state is prepared once, the observable applied, and both are walked back through the
gates, each parametrised gate adding ``2 Re <lambda| dU |phi>`` to its parameters' gradients.

Gates are those of the local simulator's own OpenQASM interpreter. A gate's angle is told to
depend on a parameter, and by how much, by building the circuit again with that parameter
moved; rotations and phase shifts are differentiated exactly, any other gate by a central
difference of its matrix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_PRAGMA = re.compile(
    r"^[ \t]*#pragma\s+braket\s+result\s+adjoint_gradient\s+expectation\((?P<observable>.*)\)"
    r"\s*(?P<parameters>[^\n]*)$",
    re.MULTILINE,
)
_FACTOR = re.compile(r"^(?P<pauli>[xyzhi])\((?:q\[(?P<index>\d+)\]|\$(?P<physical>\d+))\)$")
#: Pauli matrices by name, built on first use.
_PAULIS: dict[str, Any] = {}
#: Step for telling how a gate's angle depends on a parameter.
_PARAMETER_STEP = 1e-3
_MATRIX_STEP = 1e-6


class GradientError(ValueError):
    """The adjoint gradient pragma asks for something SV1 does not compute."""


def split(source: str) -> tuple[str, Gradient | None]:
    """The program without its ``adjoint_gradient`` pragma, and the gradient it asks for."""
    found = list(_PRAGMA.finditer(source))
    if not found:
        return source, None
    if len(found) > 1:
        raise GradientError("a program can request at most one adjoint_gradient result type")
    match = found[0]
    gradient = Gradient.parse(match.group("observable"), match.group("parameters"))
    return source[: match.start()] + source[match.end() :], gradient


@dataclass(frozen=True)
class Term:
    coefficient: float
    #: (Pauli name, qubit) for each factor of the product.
    factors: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Gradient:
    """An ``adjoint_gradient`` request: the observable's terms and the parameters."""

    text: str
    terms: tuple[Term, ...]
    parameters: tuple[str, ...] | None  # None: all of the program's inputs

    @classmethod
    def parse(cls, observable: str, parameters: str) -> Gradient:
        terms = []
        for sign, term in re.findall(r"([+-]?)\s*([^+-]+)", observable.strip().replace(" ", "")):
            coefficient, _, product = term.rpartition("*")
            factors = []
            for factor in product.split("@"):
                found = _FACTOR.match(factor)
                if found is None:
                    raise GradientError(
                        f"adjoint_gradient observable factor {factor!r} is not a Pauli "
                        "(x, y, z, h or i) on one qubit"
                    )
                qubit = found.group("index") or found.group("physical")
                factors.append((found.group("pauli"), int(qubit)))
            value = float(coefficient) if coefficient else 1.0
            terms.append(Term(-value if sign == "-" else value, tuple(factors)))
        names = [name.strip() for name in parameters.split(",") if name.strip()]
        return cls(
            text=re.sub(r"\((?:q\[\d+\]|\$\d+)\)", "", observable).strip(),
            terms=tuple(terms),
            parameters=None if names in ([], ["all"]) else tuple(names),
        )

    def compute(self, source: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """The result type and its value, ``{"expectation": e, "gradient": {name: g}}``."""
        import numpy as np

        names = list(self.parameters if self.parameters is not None else sorted(inputs))
        unknown = [name for name in names if name not in inputs]
        if unknown:
            raise GradientError(f"adjoint_gradient parameters {unknown} are not program inputs")
        gates, qubits = _gates(source, inputs)
        qubits = max([qubits, *(q + 1 for t in self.terms for _, q in t.factors)])
        # How each gate's angle moves with each parameter (0 for most).
        slopes = {name: _slopes(source, inputs, name, gates) for name in names}
        state = np.zeros(2**qubits, dtype=complex)
        state[0] = 1
        for gate in gates:
            state = _apply(state, _matrix(gate), gate.targets, qubits)
        adjoint = sum(
            (term.coefficient * _apply_product(state, term, qubits) for term in self.terms),
            np.zeros_like(state),
        )
        expectation = float(np.vdot(state, adjoint).real)
        gradient = dict.fromkeys(names, 0.0)
        phi = state
        for index in range(len(gates) - 1, -1, -1):
            gate = gates[index]
            inverse = _matrix(gate).conj().T
            phi = _apply(phi, inverse, gate.targets, qubits)
            for name in names:
                slope = slopes[name][index]
                if slope:
                    moved = _apply(phi, _derivative(gate), gate.targets, qubits)
                    gradient[name] += slope * 2 * float(np.vdot(adjoint, moved).real)
            adjoint = _apply(adjoint, inverse, gate.targets, qubits)
        targets = [[qubit for _, qubit in term.factors] for term in self.terms]
        result_type: dict[str, Any] = {
            "type": "adjoint_gradient",
            "observable": self.text,
            "targets": targets,
            "parameters": names,
        }
        return {"type": result_type, "value": {"expectation": expectation, "gradient": gradient}}


def _gates(source: str, inputs: dict[str, Any]) -> tuple[list[Any], int]:
    from braket.default_simulator.openqasm.interpreter import Interpreter

    circuit = Interpreter().build_circuit(source, inputs=inputs or None)
    gates = list(circuit.instructions)
    for gate in gates:
        if not hasattr(gate, "_base_matrix"):
            raise GradientError(
                f"adjoint_gradient needs a noise-free program; it has {type(gate).__name__}"
            )
    return gates, max(circuit.qubit_set, default=-1) + 1


def _slopes(source: str, inputs: dict[str, Any], name: str, gates: list[Any]) -> list[float]:
    """d(angle)/d(parameter) of each gate: exact for angles linear in the parameter."""
    moved, _ = _gates(source, {**inputs, name: float(inputs[name]) + _PARAMETER_STEP})
    if [type(gate) for gate in moved] != [type(gate) for gate in gates]:
        raise GradientError(f"the program's gates change with parameter {name!r}")
    slopes = []
    for gate, other in zip(gates, moved, strict=True):
        angle, shifted = getattr(gate, "_angle", None), getattr(other, "_angle", None)
        if angle is None or shifted is None or float(shifted) == float(angle):
            slopes.append(0.0)
            continue
        slope = (float(shifted) - float(angle)) / _PARAMETER_STEP
        nearest = round(slope * 1024) / 1024
        slopes.append(nearest if abs(slope - nearest) < 1e-7 * max(1.0, abs(slope)) else slope)
    return slopes


def _matrix(gate: Any, base: Any = None, off: complex = 1) -> Any:
    """The gate's matrix on all its targets, its controls (the first targets) included:
    ``base`` (the gate's own matrix by default) where the controls hold their state, ``off``
    times the identity elsewhere."""
    import numpy as np

    base = gate.matrix if base is None else base
    controls = tuple(getattr(gate, "_ctrl_modifiers", ()) or ())
    if not controls:
        return base
    size = base.shape[0]
    full = off * np.eye(size * 2 ** len(controls), dtype=complex)
    block = int("".join(str(int(bit)) for bit in controls), 2) * size
    full[block : block + size, block : block + size] = base
    return full


def _derivative(gate: Any) -> Any:
    """d(matrix)/d(angle) of a one-angle gate, on all its targets."""
    import numpy as np

    name = type(gate).__name__
    base = gate.matrix
    generators = {"RotX": "x", "RotY": "y", "RotZ": "z"}
    if gate._power != 1:
        angle = float(gate._angle)
        extra = {"ctrl_modifiers": (), "power": gate._power}
        ahead = type(gate)(gate.targets, angle + _MATRIX_STEP, **extra).matrix
        behind = type(gate)(gate.targets, angle - _MATRIX_STEP, **extra).matrix
        derivative = (ahead - behind) / (2 * _MATRIX_STEP)
    elif name in generators:
        derivative = -0.5j * _pauli(generators[name]) @ base
    elif name in ("XX", "YY", "ZZ"):
        pauli = _pauli(name[0].lower())
        derivative = -0.5j * np.kron(pauli, pauli) @ base
    elif name == "PhaseShift":
        derivative = np.diag([0, 1j]) @ base
    else:
        angle = float(gate._angle)
        ahead = type(gate)(gate.targets, angle + _MATRIX_STEP).matrix
        behind = type(gate)(gate.targets, angle - _MATRIX_STEP).matrix
        derivative = (ahead - behind) / (2 * _MATRIX_STEP)
    return _matrix(gate, derivative, off=0)


def _pauli(name: str) -> Any:
    import numpy as np

    if not _PAULIS:
        _PAULIS.update(
            {
                "i": np.eye(2, dtype=complex),
                "x": np.array([[0, 1], [1, 0]], dtype=complex),
                "y": np.array([[0, -1j], [1j, 0]], dtype=complex),
                "z": np.array([[1, 0], [0, -1]], dtype=complex),
                "h": np.array([[1, 1], [1, -1]], dtype=complex) / np.sqrt(2),
            }
        )
    return _PAULIS[name]


def _apply(state: Any, matrix: Any, targets: Any, qubits: int) -> Any:
    """``matrix`` applied to ``targets`` of an n-qubit state (qubit 0 most significant)."""
    import numpy as np

    targets = list(targets)
    tensor = state.reshape([2] * qubits)
    gate = matrix.reshape([2] * (2 * len(targets)))
    moved = np.tensordot(gate, tensor, axes=(list(range(len(targets), 2 * len(targets))), targets))
    return np.moveaxis(moved, list(range(len(targets))), targets).reshape(-1)


def _apply_product(state: Any, term: Term, qubits: int) -> Any:
    for pauli, qubit in term.factors:
        state = _apply(state, _pauli(pauli), [qubit], qubits)
    return state
