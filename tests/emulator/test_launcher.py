"""The warm launcher starts jobs as ``python -u -m`` would: each in its own directory,
environment and process group, its output streamed, its exit status (or signal) reported;
jobs do not see each other's changes; a zygote that dies is replaced; without a zygote,
the job starts cold with the same interface."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from covalent_braket_plugin.emulator.runtime.launcher import LaunchedProcess, Launcher

pytestmark = pytest.mark.timeout(180)

#: Written into a job's directory: what the job saw of its process.
SEEN = """
import json, os, sys, tempfile
seen = {
    "cwd": os.getcwd(),
    "name": os.environ.get("JOB_NAME"),
    "only_other": os.environ.get("ONLY_" + ("B" if os.environ.get("JOB_NAME") == "a" else "A")),
    "environb": os.environb.get(b"JOB_NAME", b"").decode(),
    "tmp": tempfile.gettempdir(),
    "path0": sys.path[0],
    "main": __name__,
    "pgid_is_pid": os.getpgid(0) == os.getpid(),
    "stdin": sys.stdin.read(),
    "leak": os.environ.get("LEAK"),
    "leaked_attribute": hasattr(json, "LEAKED"),
    "leaked_module": "leaky_helper" in sys.modules,
}
with open("seen.json", "w") as handle:
    json.dump(seen, handle)
"""


@pytest.fixture(scope="module")
def launcher() -> Iterator[Launcher]:
    """One warm launcher (the default preload) for the module's tests."""
    events: list[dict[str, Any]] = []
    launcher = Launcher(on_event=events.append)
    launcher.events = events  # type: ignore[attr-defined]
    yield launcher
    launcher.shutdown()


def write(directory: Path, name: str, code: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(code))
    return path


def job_env(modules: Path, **extra: str) -> dict[str, str]:
    """The test's environment, the helper modules on ``PYTHONPATH``, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOB_", "ONLY_", "LEAK"))}
    return {**env, "PYTHONPATH": str(modules), **extra}


def output(process: Any) -> str:
    text = process.stdout.read().decode()
    process.stdout.close()
    return text


def test_jobs_launched_at_once_see_only_their_own_directory_and_environment(
    launcher: Launcher, tmp_path: Path
) -> None:
    write(tmp_path / "modules", "seen_job.py", SEEN)
    processes = {}
    for name in ("a", "b"):
        cwd = tmp_path / name
        cwd.mkdir()
        env = job_env(
            tmp_path / "modules", JOB_NAME=name, TMPDIR=str(cwd), **{f"ONLY_{name.upper()}": "1"}
        )
        processes[name] = launcher.spawn("seen_job", str(cwd), env)
    for name, process in processes.items():
        assert isinstance(process, LaunchedProcess)
        assert process.wait() == 0, output(process)
        seen = json.loads((tmp_path / name / "seen.json").read_text())
        assert seen["cwd"] == seen["path0"] == seen["tmp"] == str(tmp_path / name)
        assert seen["name"] == seen["environb"] == name
        assert seen["only_other"] is None
        assert seen["main"] == "__main__"
        assert seen["pgid_is_pid"] is True
        assert seen["stdin"] == ""  # /dev/null


def test_output_comes_line_by_line_and_wait_can_time_out(
    launcher: Launcher, tmp_path: Path
) -> None:
    write(
        tmp_path,
        "talker.py",
        """
        import os, sys, time
        print("first")
        print("to stderr", file=sys.stderr)
        while not os.path.exists("go"):
            time.sleep(0.01)
        print("second")
        """,
    )
    process = launcher.spawn("talker", str(tmp_path), job_env(tmp_path))
    assert process.stdout.readline() == b"first\n"  # while the job still runs
    assert process.stdout.readline() == b"to stderr\n"
    assert process.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.2)
    (tmp_path / "go").touch()
    assert process.stdout.readline() == b"second\n"
    assert process.stdout.readline() == b""
    assert process.wait() == 0 and process.returncode == 0 and process.poll() == 0


@pytest.mark.parametrize(
    ("body", "code", "shown"),
    [
        ("print('fine')", 0, "fine"),
        ("import sys; sys.exit(3)", 3, ""),
        ("raise ValueError('boom')", 1, "ValueError: boom"),
    ],
)
def test_exit_status(launcher: Launcher, tmp_path: Path, body: str, code: int, shown: str) -> None:
    write(tmp_path, "ending.py", body)
    process = launcher.spawn("ending", str(tmp_path), job_env(tmp_path))
    text = output(process)
    assert process.wait() == code, text
    assert shown in text
    if code == 1:
        assert "Traceback (most recent call last)" in text


def test_a_killed_job_reports_the_signal_and_leaves_the_other_running(
    launcher: Launcher, tmp_path: Path
) -> None:
    write(
        tmp_path,
        "waiter.py",
        """
        import os, time
        print("waiting", flush=True)
        while not os.path.exists(os.environ["GO"]):
            time.sleep(0.01)
        print("done")
        """,
    )
    env = job_env(tmp_path, GO=str(tmp_path / "go"))
    doomed = launcher.spawn("waiter", str(tmp_path), env)
    survivor = launcher.spawn("waiter", str(tmp_path), env)
    assert doomed.stdout.readline() == survivor.stdout.readline() == b"waiting\n"
    os.killpg(doomed.pid, signal.SIGKILL)
    assert doomed.wait() == -signal.SIGKILL
    assert survivor.poll() is None
    (tmp_path / "go").touch()
    assert survivor.wait() == 0
    assert output(survivor) == "done\n"


def test_a_dead_zygote_is_replaced(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    launcher = Launcher(preload=("cloudpickle",), on_event=events.append)
    try:
        write(tmp_path, "hello.py", "print('hello')")
        first = launcher.spawn("hello", str(tmp_path), job_env(tmp_path))
        assert first.wait() == 0 and output(first) == "hello\n"
        old = launcher.describe()["zygote_pid"]
        os.kill(old, signal.SIGKILL)
        second = launcher.spawn("hello", str(tmp_path), job_env(tmp_path))
        assert isinstance(second, LaunchedProcess)
        assert second.wait() == 0 and output(second) == "hello\n"
        health = launcher.describe()
        assert health["alive"] and health["zygote_pid"] not in (None, old)
        assert health["zygotes_replaced"] == 1 and health["fallbacks"] == 0
        assert health["jobs_forked"] == 2 and health["preloaded"] == ["cloudpickle"]
        assert [e["event"] for e in events].count("zygote-replaced") == 1
    finally:
        launcher.shutdown()


def test_jobs_started_from_many_threads_at_once(launcher: Launcher, tmp_path: Path) -> None:
    write(tmp_path, "echo.py", "import os\nprint(os.environ['JOB_NAME'])\n")

    def run(number: int) -> tuple[int, str]:
        process = launcher.spawn("echo", str(tmp_path), job_env(tmp_path, JOB_NAME=str(number)))
        text = output(process)
        return process.wait(), text

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(run, range(32)))
    assert results == [(0, f"{number}\n") for number in range(32)]


def test_a_hung_zygote_is_replaced(tmp_path: Path) -> None:
    launcher = Launcher(preload=("cloudpickle",), fork_timeout=1.0)
    try:
        write(tmp_path, "hello.py", "print('hello')")
        assert launcher.spawn("hello", str(tmp_path), job_env(tmp_path)).wait() == 0
        hung = launcher.describe()["zygote_pid"]
        os.kill(hung, signal.SIGSTOP)  # alive, but answers nothing
        process = launcher.spawn("hello", str(tmp_path), job_env(tmp_path))
        assert isinstance(process, LaunchedProcess)
        assert process.wait() == 0 and output(process) == "hello\n"
        health = launcher.describe()
        assert health["zygote_pid"] != hung and health["zygotes_replaced"] == 1
    finally:
        launcher.shutdown()


def test_a_poisoned_zygote_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        tmp_path,
        "threaded.py",
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n",
    )
    write(tmp_path, "hello.py", "print('hello')")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the zygote's preload finds it
    events: list[dict[str, Any]] = []
    launcher = Launcher(preload=("threaded", "no_such_module"), on_event=events.append)
    process = launcher.spawn("hello", str(tmp_path), job_env(tmp_path))
    assert isinstance(process, subprocess.Popen)
    assert process.wait() == 0 and output(process) == "hello\n"
    health = launcher.describe()
    assert "threads running" in health["disabled"] and health["fallbacks"] == 1
    assert health["preloaded"] == ["threaded"] and "no_such_module" in health["skipped"]
    assert [e["event"] for e in events] == ["zygote-failed", "fallback"]


def test_a_job_imports_what_the_zygote_did_not(launcher: Launcher, tmp_path: Path) -> None:
    write(tmp_path / "modules", "not_preloaded_helper.py", "ANSWER = 42\n")
    write(
        tmp_path / "modules",
        "importer.py",
        """
        import sys
        assert "not_preloaded_helper" not in sys.modules
        import not_preloaded_helper, wave
        print(not_preloaded_helper.ANSWER, wave.__name__)
        """,
    )
    process = launcher.spawn("importer", str(tmp_path), job_env(tmp_path / "modules"))
    assert process.wait() == 0
    assert output(process) == "42 wave\n"
    assert "not_preloaded_helper" not in launcher.describe()["preloaded"]


def test_module_and_function_entries(launcher: Launcher, tmp_path: Path) -> None:
    write(
        tmp_path,
        "entries.py",
        """
        import sys
        def main():
            print("function", __name__)
            sys.exit(4)
        if __name__ == "__main__":
            print("module", __name__)
        """,
    )
    as_module = launcher.spawn("entries", str(tmp_path), job_env(tmp_path))
    as_function = launcher.spawn("entries:main", str(tmp_path), job_env(tmp_path))
    assert as_module.wait() == 0 and output(as_module) == "module __main__\n"
    assert as_function.wait() == 4 and output(as_function) == "function entries\n"


def test_changes_a_job_makes_do_not_reach_the_next(launcher: Launcher, tmp_path: Path) -> None:
    write(tmp_path / "modules", "leaky_helper.py", "")
    write(tmp_path / "modules", "seen_job.py", SEEN)
    write(
        tmp_path / "modules",
        "leaker.py",
        """
        import json, os, sys
        import leaky_helper
        os.environ["LEAK"] = "1"
        json.LEAKED = True
        sys.path.insert(0, "/nowhere")
        """,
    )
    env = job_env(tmp_path / "modules", JOB_NAME="a")
    leaker = launcher.spawn("leaker", str(tmp_path), env)
    assert leaker.wait() == 0, output(leaker)
    seer = launcher.spawn("seen_job", str(tmp_path), env)
    assert seer.wait() == 0, output(seer)
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["leak"] is None
    assert seen["leaked_attribute"] is False and seen["leaked_module"] is False
    assert seen["path0"] == str(tmp_path)


def test_without_a_zygote_jobs_start_cold_with_the_same_interface(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    launcher = Launcher(preload=(), on_event=events.append)
    launcher.shutdown()
    write(tmp_path / "modules", "seen_job.py", SEEN)
    write(tmp_path / "modules", "failing.py", "def main():\n    raise SystemExit(5)\n")
    env = job_env(tmp_path / "modules", JOB_NAME="a", TMPDIR=str(tmp_path))
    cold = launcher.spawn("seen_job", str(tmp_path), env)
    assert isinstance(cold, subprocess.Popen)
    assert cold.wait() == 0 and output(cold) == ""
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["cwd"] == seen["path0"] == seen["tmp"] == str(tmp_path)
    assert seen["name"] == "a" and seen["pgid_is_pid"] is True
    function = launcher.spawn("failing:main", str(tmp_path), env)
    assert function.wait() == 5
    assert launcher.describe()["fallbacks"] == 2
    assert [e["event"] for e in events] == ["fallback", "fallback"]
