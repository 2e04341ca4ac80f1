"""The electron travels unwrapped from Covalent's wrapper: the job needs no covalent.

Covalent's runner hands the executor ``partial(wrapper_fn, function, call_before,
call_after)`` over ``TransportableObject``\\ s. The executor unwraps it in the server, the job
calls the same function with the same hooks on plain values, and Covalent gets back what its
wrapper would have returned. On Amazon's managed image the job installs only cloudpickle,
pinned by its hashes; Braket-in-a-box's pip keeps pip's hash-checking mode.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from functools import partial
from importlib import metadata
from typing import Any

import cloudpickle
import pytest
from covalent import DepsBash, DepsCall, DepsPip
from covalent._workflow.transport import TransportableObject
from covalent.executor.utils.wrappers import wrapper_fn

from covalent_braket_plugin import electron_call, images
from covalent_braket_plugin.config import InvalidSettingError
from covalent_braket_plugin.emulator.runtime import bootstrap
from covalent_braket_plugin.job import calls, runner
from tests.test_braket import hosted, keys, run
from tests.test_managed_image import PYTHON, job_archive, only_job

pytestmark = pytest.mark.timeout(180)
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job cannot import the tests

#: Python code that makes ``import covalent`` fail, as in a job on Amazon's managed image.
NO_COVALENT = """
import sys
class NoCovalent:
    def find_spec(self, name, path=None, target=None):
        if name == "covalent" or name.startswith("covalent."):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NoCovalent())
"""


@pytest.fixture(autouse=True)
def _fresh_image_knowledge() -> Any:
    from covalent_braket_plugin import aws as aws_module

    aws_module.reset_cache()
    yield
    aws_module.reset_cache()


def as_covalent_hands_it(function: Any, before: list | None = None, after: list | None = None):
    return partial(wrapper_fn, TransportableObject(function), before or [], after or [])


def seven_times(x: int, offset: int = 0) -> int:
    return 7 * x + offset


def test_on_the_managed_image_the_job_installs_only_cloudpickle_pinned_by_hash(aws: Any) -> None:
    aws.settings(managed_image_python=PYTHON)
    function = as_covalent_hands_it(seven_times)
    args, kwargs = [TransportableObject(6)], {"offset": TransportableObject(1)}
    executor = hosted(ecr_image_uri="", cleanup=False)
    value = run_wrapped(executor, function, args, kwargs)

    assert isinstance(value, TransportableObject)  # what Covalent's wrapper returns
    assert value.get_deserialized() == 43
    version = metadata.version("cloudpickle")
    assert only_job(aws)["hyperParameters"][runner.HP_REQUIRED] == f"cloudpickle=={version}"
    archive = job_archive(aws)
    hashes = "".join(f" --hash=sha256:{digest}" for digest in images.CLOUDPICKLE_SHA256[version])
    assert archive["requirements.txt"].decode() == (
        f"--require-hashes\ncloudpickle=={version}{hashes}\n"
    )
    assert runner.USER_REQUIREMENTS_FILE not in archive  # no covalent, nothing of the user's

    # The job's input unpickles and runs where covalent cannot be imported.
    script = NO_COVALENT + (
        "import cloudpickle\n"
        "function, args, kwargs = cloudpickle.loads(sys.stdin.buffer.read())\n"
        "print(function(*args, **kwargs))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=archive[runner.INPUT_KEY], capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "43"


def test_hooks_run_in_the_job_as_covalents_wrapper_runs_them(aws: Any, tmp_path: Any) -> None:
    """Commands and the user's calls before, their values by keyword, calls after: the same
    value as Covalent's own wrapper gives, and no covalent needed."""

    def electron(word: str, greeting: str = "", extra: Any = None) -> str:
        with open("made-by-bash.txt") as handle:
            made = handle.read().strip()
        return f"{greeting} {word} {made} {extra}"

    def say(what: str) -> str:
        return what

    def after_hook(path: str) -> None:
        with open(path, "w") as handle:
            handle.write("after ran")

    marker = tmp_path / "after.txt"
    before = [
        DepsBash(["echo from-bash > made-by-bash.txt"]).apply(),
        DepsCall(say, args=["hello"], retval_keyword="greeting").apply(),
        DepsCall(say, args=["one"], retval_keyword="extra").apply(),
        DepsCall(say, args=["two"], retval_keyword="extra").apply(),
    ]
    after = [DepsCall(after_hook, args=[str(marker)]).apply()]
    args = [TransportableObject("world")]

    unwrapped = electron_call.unwrap(as_covalent_hands_it(electron, before, after), args, {})
    assert isinstance(unwrapped.function, calls.ElectronCall)
    assert not unwrapped.needs_covalent

    here = os.getcwd()
    os.chdir(tmp_path)
    try:  # Covalent's own wrapper, here: what the job must match
        expected = as_covalent_hands_it(electron, before, after)(*args).get_deserialized()
    finally:
        os.chdir(here)
    marker.unlink()

    value = run_wrapped(hosted(), as_covalent_hands_it(electron, before, after), args, {})
    assert value.get_deserialized() == expected == "hello world from-bash ['one', 'two']"
    assert marker.read_text() == "after ran"  # the job ran the hook after the electron


def test_covalents_package_hook_is_the_jobs_own_and_another_of_covalents_needs_covalent(
    aws: Any,
) -> None:
    hooks = [DepsPip(packages=["packaging==24.1"]).apply()]
    unwrapped = electron_call.unwrap(as_covalent_hands_it(seven_times, hooks), [], {})
    (hook, hook_args, _, _) = unwrapped.function.before[0]
    assert hook is calls.install_packages and list(hook_args[0]) == ["packaging==24.1"]
    assert not unwrapped.needs_covalent

    covalents = [DepsCall(metadata.version, args=["cloudpickle"]).apply()]
    assert not electron_call.unwrap(
        as_covalent_hands_it(seven_times, covalents), [], {}
    ).needs_covalent
    theirs = [DepsCall(TransportableObject, args=[1]).apply()]  # a function of covalent's
    needing = electron_call.unwrap(as_covalent_hands_it(seven_times, theirs), [], {})
    assert needing.needs_covalent

    aws.settings(managed_image_python=PYTHON)
    image = images.prepare(
        hosted(ecr_image_uri="", requirements=["packaging"]).settings(), PYTHON, True
    )
    covalent = f"covalent=={metadata.version('covalent')}"
    assert image.pins == f"cloudpickle=={metadata.version('cloudpickle')} {covalent}"
    assert image.user_requirements.splitlines() == [covalent, "packaging"]  # pip, no hashes


def test_a_cloudpickle_whose_hashes_are_unknown_is_refused_before_anything_is_created(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.settings(managed_image_python=PYTHON)
    real = metadata.version
    monkeypatch.setattr(
        images.metadata, "version", lambda name: "9.9.9" if name == "cloudpickle" else real(name)
    )
    with pytest.raises(InvalidSettingError) as info:
        run(hosted(ecr_image_uri=""), lambda: 1)
    message = str(info.value)
    assert "ecr_image_uri" in message and "cloudpickle 9.9.9" in message
    assert "3.1.3" in message  # what it knows
    assert keys(aws) == []
    assert aws.braket.search_jobs(filters=[])["jobs"] == []


def test_braket_in_a_box_keeps_pips_hash_checking_mode(tmp_path: Any, capsys: Any) -> None:
    version = metadata.version("cloudpickle")
    hashed = f"cloudpickle=={version} --hash=sha256:{'0' * 64}"
    listed = tmp_path / "requirements.txt"

    listed.write_text(hashed + "\n")
    bootstrap.check_requirements(listed)
    assert f"Requirement already satisfied: cloudpickle=={version}" in capsys.readouterr().out

    listed.write_text(hashed + "\npackaging==24.1\n")  # one hash turns the mode on
    bootstrap.check_requirements(listed)
    out = capsys.readouterr().out
    assert "Hashes are required in --require-hashes mode" in out and "packaging==24.1" in out
    assert "already satisfied" not in out  # pip refuses the whole file

    listed.write_text(hashed + "\npackaging>=20 --hash=sha256:" + "1" * 64 + "\n")
    bootstrap.check_requirements(listed)
    out = capsys.readouterr().out
    assert "must have their versions pinned with ==" in out and "packaging>=20" in out

    listed.write_text("--require-hashes\npackaging==24.1\n")
    bootstrap.check_requirements(listed)
    assert "Hashes are required" in capsys.readouterr().out


def test_the_table_of_hashes_knows_the_servers_cloudpickle() -> None:
    assert metadata.version("cloudpickle") in images.CLOUDPICKLE_SHA256
    for digests in images.CLOUDPICKLE_SHA256.values():
        assert len(digests) == 2 and all(len(d) == 64 and int(d, 16) >= 0 for d in digests)


def run_wrapped(executor: Any, function: Any, args: list, kwargs: dict) -> Any:
    """``executor.run`` as Covalent's runner calls it."""
    task = {"dispatch_id": "e1ec7e1e-0000-0000-0000-000000000000", "node_id": 0}
    return asyncio.run(executor.run(function, args, kwargs, {**task, "results_dir": "/tmp"}))
