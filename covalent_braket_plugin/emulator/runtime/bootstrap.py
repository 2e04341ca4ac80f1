"""The emulated job container's entry point: what Amazon's job image runs, in our own words.

Run as ``python -m covalent_braket_plugin.emulator.runtime.bootstrap`` in a job's working directory,
it plays two parts, as the real image does:

- the training toolkit around the script: the ``Training Env`` it logs (``"user_entry_point":
  "braket_container.py"``), ``Invoking script with the following command:``, and at the end
  ``Reporting training SUCCESS`` or ``FAILURE``; an exception the container script lets out
  (an import error of the entry module, say) is written to the failure file as the toolkit's
  ``ExecuteUserScriptError`` and ends the process with status 1;
- the Braket container script: :func:`covalent_braket_plugin.job.container.run`, the same code
  a BYOC image runs, on the job's directory (``BRAKET_EMULATOR_CODE_DIR``,
  ``BRAKET_EMULATOR_FAILURE_FILE``). In the environment of its image (see
  :mod:`.environments`) every ``requirements.txt`` is installed with pip, as in the real
  container; in the emulator's own environment it is checked by :func:`check_requirements`
  instead, and the log's first line says so.

The service reports the failure file as the job's ``failureReason``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from ...job import container

#: Set in a job's environment when it runs in its image's environment (the image URI), not
#: the emulator's own.
IMAGE_ENVIRONMENT_VARIABLE = "BRAKET_EMULATOR_IMAGE_ENVIRONMENT"


def check_requirements(path: Path, code: Path | None = None) -> None:
    """What ``pip install -r path`` would do in the job, said as pip says it, without
    installing anything: the emulator's jobs run in the emulator's environment, which a job
    must not change. A requirement the environment does not satisfy is an error line, and the
    job goes on, as the real container goes on when pip fails. As pip, a file in hash-checking
    mode (``--require-hashes``, or any requirement with a ``--hash``) installs nothing unless
    every requirement in it is pinned with ``==`` and carries a hash. (``code``, where pip
    would run, is not needed: nothing is installed.)"""
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    if _refused_in_hash_mode(lines):
        return
    for line in lines:
        if line.startswith("-"):
            if line != "--require-hashes":
                print(f"(emulator) pip option not applied: {line}", flush=True)
            continue
        _check_one(line)


def _split(line: str) -> tuple[str, list[str]]:
    """A requirement line's requirement and its hashes (``--hash=sha256:...`` options)."""
    requirement, *options = re.split(r"\s+(?=--)", line)
    hashes = [option.partition("=")[2] for option in options if option.startswith("--hash")]
    return requirement.strip(), hashes


def _refused_in_hash_mode(lines: list[str]) -> bool:
    """pip's hash-checking mode: on when any requirement has a hash (or the file says
    ``--require-hashes``); then every requirement must be pinned with ``==`` and hashed, or
    pip refuses the whole file (what it says is printed). Whether it refused."""
    requirements = [_split(line) for line in lines if not line.startswith("-")]
    if "--require-hashes" not in lines and not any(hashes for _, hashes in requirements):
        return False
    unpinned = [
        text for text, _ in requirements if not re.search(r"===?[^,;]*$", text.split(";")[0])
    ]
    unhashed = [text for text, hashes in requirements if not hashes]
    malformed = [
        digest
        for _, hashes in requirements
        for digest in hashes
        if not re.fullmatch(r"sha(256|384|512):[0-9a-f]+", digest)
    ]
    if unpinned:
        print(
            "ERROR: In --require-hashes mode, all requirements must have their versions pinned "
            "with ==. These do not:\n" + "\n".join(f"    {text}" for text in unpinned),
            flush=True,
        )
    elif unhashed:
        print(
            "ERROR: Hashes are required in --require-hashes mode, but they are missing from "
            "some requirements. (If you did not enable --require-hashes manually, note that it "
            "turns on automatically when any package has a hash.)\n"
            + "\n".join(f"    {text}" for text in unhashed),
            flush=True,
        )
    elif malformed:
        print(f"ERROR: not a hash pip accepts: {', '.join(malformed)}", flush=True)
    return bool(unpinned or unhashed or malformed)


def _check_one(line: str) -> None:
    """One requirement: satisfied by the emulator's environment, or pip's error lines."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    text, _ = _split(line)
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        print(f"(emulator) not checked, the emulator installs nothing: {line}", flush=True)
        return
    if requirement.marker is not None and not requirement.marker.evaluate():
        print(
            f"Ignoring {requirement.name}: markers '{requirement.marker}' "
            "don't match your environment",
            flush=True,
        )
        return
    try:
        version = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        version = None
    if version is not None and requirement.specifier.contains(version, prereleases=True):
        print(f"Requirement already satisfied: {text} ({version})", flush=True)
        return
    found = f"installed: {version}" if version else "from versions: none"
    print(
        f"ERROR: Could not find a version that satisfies the requirement {text} ({found})\n"
        f"ERROR: No matching distribution found for {text}",
        flush=True,
    )


def _as_process_one(signum: int, frame: Any) -> None:
    """SIGTERM to a container's process 1 that has no handler: nothing happens."""


def main() -> None:
    """The toolkit's part around the container script. Like the toolkit in a container, where
    it is process 1 and has no handler, it neither dies of SIGTERM nor passes it on: at the
    time limit the job's code runs on until it is killed (see ``stop_grace_seconds``)."""
    signal.signal(signal.SIGTERM, _as_process_one)
    image = os.environ.get(IMAGE_ENVIRONMENT_VARIABLE)
    if image:
        print(f"(emulator) running in the environment of image {image}", flush=True)
        requirements = container.install_requirements
    else:
        print(
            "(emulator) this image has no registered environment: the job runs in "
            "Braket-in-a-box's own Python environment, and its requirements are checked, "
            "not installed (see the image_environments setting)",
            flush=True,
        )
        requirements = check_requirements
    failure = Path(os.environ["BRAKET_EMULATOR_FAILURE_FILE"])
    environment = {
        "user_entry_point": container.CONTAINER_SCRIPT,
        "job_name": os.environ.get("AMZN_BRAKET_JOB_NAME", ""),
        "hyperparameters": container.hyperparameters(),
        "module_dir": os.environ.get("BRAKET_EMULATOR_CODE_DIR", ""),
    }
    print("Training Env:\n\n" + json.dumps(environment, indent=4, sort_keys=True) + "\n")
    script = container.CONTAINER_SCRIPT
    print(f"Invoking script with the following command:\n\n{sys.executable} {script}\n")
    sys.stdout.flush()
    try:
        code = Path(os.environ["BRAKET_EMULATOR_CODE_DIR"])
        status = container.run(code, failure, requirements=requirements)
    except Exception as exc:  # an import error of the entry module, say: not caught there
        traceback.print_exc()
        container.record_failure(
            failure,
            f'ExecuteUserScriptError:\nExitCode 1\nErrorMessage "{type(exc).__name__}: {exc}"',
        )
        status = 1
    if status == 0 and not failure.exists():
        print("Reporting training SUCCESS", flush=True)
    else:
        print("Reporting training FAILURE", flush=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
