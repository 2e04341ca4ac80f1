"""A workflow runs as its author wrote it: its own modules travel with the electron (pickled by
value), through a real Covalent server onto Braket-in-a-box; a secret beside the script does
not; Covalent's ``DepsBash`` and ``DepsCall`` still run in the job."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from covalent_braket_plugin import local_code
from covalent_braket_plugin.config import InvalidSettingError

pytestmark = pytest.mark.timeout(300)

SECRET = "hunter2-never-leaves-this-machine"
MARKER = "the-helpers-module-travelled"

SCRIPT = """
import os
import sys

# A module from a directory the rule does not look in: include_modules names it.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "elsewhere"))

import covalent as ct

import extra_mod
import helpers
from mypkg.sub import deep
from covalent_braket_plugin.braket import BraketExecutor

ex = BraketExecutor(include_modules=["extra_mod"], cleanup=False)


def prepare():
    with open("called.txt", "w") as handle:
        handle.write("call_before ran")


@ct.electron(
    executor=ex,
    deps_bash=ct.DepsBash(["echo bash ran > bash.txt"]),
    call_before=[ct.DepsCall(prepare)],
)
def compute(x):
    return {
        "scaled": helpers.scale(x),
        "marker": helpers.MARKER,
        "deep": deep.triple(x),
        "extra": extra_mod.plus_one(x),
        "bash": open("bash.txt").read().strip(),
        "called": open("called.txt").read(),
    }


@ct.lattice
def flow(x):
    return compute(x)


print(repr(ct.get_result(ct.dispatch(flow)(2), wait=True).result))
"""


def write_project(root: Path) -> Path:
    (root / "helpers.py").write_text(f"MARKER = {MARKER!r}\n\ndef scale(x):\n    return 10 * x\n")
    (root / "mypkg" / "sub").mkdir(parents=True)
    (root / "mypkg" / "__init__.py").write_text("")
    (root / "mypkg" / "sub" / "__init__.py").write_text("")
    (root / "mypkg" / "sub" / "deep.py").write_text(
        "from mypkg.sub import helpers_of_deep\n\ndef triple(x):\n"
        "    return helpers_of_deep.times(x, 3)\n"
    )
    (root / "mypkg" / "sub" / "helpers_of_deep.py").write_text(
        "def times(x, n):\n    return x * n\n"
    )
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "extra_mod.py").write_text("def plus_one(x):\n    return x + 1\n")
    (root / ".env").write_text(f"API_TOKEN={SECRET}\n")
    (root / "credentials").write_text(f"[default]\naws_secret_access_key = {SECRET}\n")
    script = root / "workflow.py"
    script.write_text(textwrap.dedent(SCRIPT))
    return script


def test_local_modules_travel_and_secrets_stay(
    covalent_server: Any, braket_emulator: Any, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    script = write_project(project)
    done = subprocess.run(
        [sys.executable, str(script)],
        env=covalent_server.env,  # the server's covalent.conf: its address and settings
        cwd=tmp_path,  # not the project: the script's own directory is what counts
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr + covalent_server.log()
    assert done.stdout.strip().splitlines()[-1] == repr(
        {
            "scaled": 20,
            "marker": MARKER,
            "deep": 6,
            "extra": 3,
            "bash": "bash ran",
            "called": "call_before ran",
        }
    ), done.stdout + done.stderr

    # What the job received: the modules' code, inside the pickle; nothing of the secrets.
    s3 = braket_emulator.client("s3")
    bucket = covalent_server.settings["s3_bucket_name"]
    shipped = b"".join(
        s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        for item in s3.list_objects_v2(Bucket=bucket, Prefix="covalent-braket/")["Contents"]
    )
    assert MARKER.encode() in shipped  # helpers travelled by value (it is in the input)
    assert SECRET.encode() not in shipped


def test_a_module_tree_over_the_limit_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "hugepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "data.py").write_text("X = 1\n" + "#" * (local_code.MAX_SOURCE_BYTES + 1))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InvalidSettingError, match=r"hugepkg .* MiB"):
        local_code.ship(("hugepkg",), ())


def test_installed_code_and_excluded_modules_do_not_travel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cloudpickle

    (tmp_path / "mine_kept_home.py").write_text("VALUE = 1\n")
    (tmp_path / "mine_travels.py").write_text("VALUE = 2\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import mine_kept_home  # noqa: F401
    import mine_travels  # noqa: F401

    shipped = local_code.ship((), ("mine_kept_home",))
    registered = cloudpickle.list_registry_pickle_by_value()
    assert "mine_travels" in shipped and "mine_travels" in registered
    assert "mine_kept_home" not in registered
    for installed in ("covalent_braket_plugin", "boto3", "json", "covalent"):
        assert installed not in registered

    with pytest.raises(InvalidSettingError, match="include_modules"):
        local_code.ship(("no_such_module_anywhere",), ())
