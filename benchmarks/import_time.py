"""Import time of covalent_braket_plugin.braket beyond covalent and boto3.

Runs ``python -X importtime`` in fresh interpreters and sums the self time of the plugin's own
modules; also checks that the Braket SDK and PennyLane stay unimported.

    python benchmarks/import_time.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from _common import machine, table


def plugin_import_us() -> tuple[int, int, bool]:
    code = (
        "import covalent, boto3\nimport covalent_braket_plugin.braket\nimport sys\n"
        "print(any(m.split('.')[0] in ('braket', 'pennylane') for m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    )
    own = total = 0
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line.split(":", 1)[1].split("|")]
        try:
            self_us, cumulative_us, name = int(parts[0]), int(parts[1]), parts[2]
        except ValueError:
            continue
        if name.strip().startswith("covalent_braket_plugin"):
            own += self_us
        if name.strip() in ("covalent", "boto3"):
            total += cumulative_us
    return own, total, done.stdout.strip() == "True"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    samples = [plugin_import_us() for _ in range(runs)]
    own = statistics.median(s[0] for s in samples) / 1000
    reference = statistics.median(s[1] for s in samples) / 1000
    heavy = any(s[2] for s in samples)
    print(
        table(
            f"Import time ({machine()}, median of {runs} fresh interpreters)",
            ["what", "ms"],
            [
                ["covalent + boto3 (reference)", f"{reference:.1f}"],
                ["covalent_braket_plugin modules (beyond them)", f"{own:.1f}"],
                ["target", "< 50"],
            ],
        )
    )
    print(f"Braket SDK or PennyLane imported: {heavy}")


if __name__ == "__main__":
    main()
