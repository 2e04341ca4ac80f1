"""pytest fixtures for testing Covalent/Braket workflows against Braket-in-a-box.

Installed as a ``pytest11`` plugin: with ``covalent-braket-plugin[emulator]`` installed, any
test can ask for them.

``braket_emulator``
    A function-scoped :class:`EmulatorControl` on the session's emulator, reset before the
    test, with this process's AWS settings pointed at it (endpoint, this run's credentials,
    region; every other ``AWS_*`` variable removed, so nothing reaches a real account).
``braket_emulator_server``
    The session's :class:`~covalent_braket_plugin.emulator.BraketEmulator` (one per session,
    on a free loopback port).
``covalent_server``
    A :class:`CovalentTestServer`: the session's Covalent server (``covalent start
    --no-cluster`` in a HOME of its own, Dask off for its post-processing), wired to the
    emulated account, whose covalent.conf names what ``covalent-braket setup`` makes there
    (made again for each test on the freshly reset emulator) with ``poll_freq = 1``
    (:func:`~covalent_braket_plugin.testing.covalent_server_settings`). It dispatches a
    workflow (:meth:`CovalentTestServer.run`) whose electrons say ``executor="braket"`` (the
    server's settings), or ``BraketExecutor(**covalent_server_settings(), ...)``: an executor
    built in the test process reads that process's covalent.conf for what it is not given.
    The test's module travels by value (the job cannot import it).

The emulator takes only requests signed with this run's credentials (the fixture's
environment has them); ``pytest --braket-emulator-legacy-keys`` makes it take the fixed
``testing``/``testing`` keys of old tests too.

The emulator keeps a real account's hybrid-job regime by default, per account and Region: 5
jobs at once (QUEUED, RUNNING or CANCELLING), each instance type's quota (``ml.m5.large``: 5
instances), one job at a time on a QPU; past a quota ``CreateJob`` gets
``ServiceQuotaExceededException`` (HTTP 402). A test changes it as a raised quota would, with
the fixture's :meth:`EmulatorControl.settings` (every test starts from the defaults):

- ``concurrent_jobs_quota=N`` (None: the service's), ``instance_quotas={"ml.m5.large": N}``;
- ``queue_past_quota=True``: jobs past a quota are accepted and wait QUEUED for room;
- ``job_quotas=False``: none of it, only the machine's ``max_concurrent_jobs``;
- ``job_start_seconds=S``: a job's instance takes S seconds to start (QUEUED, not billed);
- ``onboarded_accounts=False``: accounts start bare (by default each starts onboarded, as after
  opening Braket in the console: the role ``service-role/AmazonBraketJobsExecutionRole`` that
  ``@hybrid_job`` and ``AwsQuantumJob.create`` use when given none);
- ``stop_grace_seconds=S``: at a job's time limit its container gets SIGTERM (passed on to
  nobody) and is killed S seconds later (AWS: 120);
- ``clock_offset_seconds=S``: the service's clock is S seconds ahead of this machine's
  (negative: behind), in every time it tells and each answer's ``Date`` header.

Example::

    def test_my_workflow(braket_emulator):
        braket_emulator.settings(queue_seconds=2, concurrent_jobs_quota=20)
        ...  # dispatch
        assert braket_emulator.journal(operation="CreateJob")

    @ct.electron(executor="braket")
    def add(a, b):
        return a + b

    @ct.lattice
    def flow(a, b):
        return add(a, b)

    def test_my_lattice(covalent_server):
        assert covalent_server.run(flow, 1, 2).result == 3
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from .emulator.aws_services.identity import (
    CLIENT_ACCESS_KEY,
    DEFAULT_REGION,
    TOKEN_ENV,
    TOKEN_HEADER,
)

LEGACY_KEYS_OPTION = "--braket-emulator-legacy-keys"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("braket_emulator").addoption(
        LEGACY_KEYS_OPTION,
        action="store_true",
        default=False,
        help="let the session's Braket emulator take the fixed testing/testing credentials of "
        "old tests, besides its own (off by default)",
    )


def _reason(error: urllib.error.HTTPError) -> str:
    """What the emulator said when it refused a control call (its ``message``)."""
    try:
        body = json.loads(error.read() or b"{}")
    except ValueError:
        body = {}
    return str(body.get("message") or f"HTTP {error.code}")


class EmulatorControl:
    """Drive the emulator from a test: reset, settings, health, the request journal, clients.

    Args:
        url: The emulator's endpoint.
        region: The Region of :meth:`client` and :meth:`env`.
        work_dir: The emulator's work directory, if known.
        token: The emulator's token for its control API: the server object's
            (:attr:`~covalent_braket_plugin.emulator.BraketEmulator.token`), or by default
            ``BRAKET_EMULATOR_TOKEN`` (for an emulator of another process).
    """

    def __init__(
        self,
        url: str,
        region: str = DEFAULT_REGION,
        work_dir: Any = None,
        token: str | None = None,
    ) -> None:
        self.url = url
        self.region = region
        self.work_dir = work_dir
        self.token = token if token is not None else os.environ.get(TOKEN_ENV, "")

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = (
            json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        )
        request = urllib.request.Request(
            f"{self.url}/_emulator{path}",
            data=data,
            method=method,
            headers={TOKEN_HEADER: self.token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:  # the emulator's reason, not only its status
            raise ValueError(f"{method} /_emulator{path}: {_reason(exc)}") from exc

    def reset(self) -> None:
        """Stop every job and task, clear all Braket and moto state, faults, policies and the
        journal, and restore the settings the emulator was started with."""
        self._call("POST", "/reset")

    def settings(self, **changes: Any) -> dict[str, Any]:
        """Read (no arguments) or change the runtime settings (see ``RuntimeSettings``: e.g.
        ``queue_seconds``, ``concurrent_jobs_quota``, ``instance_quotas``, ``job_quotas``,
        ``queue_past_quota``, ``job_start_seconds``); returns them all."""
        if not changes:
            return self._call("GET", "/settings")
        return self._call("POST", "/settings", changes)

    def image_environment(
        self,
        image: str,
        venv: str | os.PathLike[str] | None = None,
        requirements: Any = (),
        python: str | os.PathLike[str] | None = None,
    ) -> None:
        """Run the jobs on ``image`` in an environment of their own, as on AWS they run in the
        image: an existing virtualenv (``venv``), or one built once, and cached, from
        ``requirements`` files on ``python`` (this Python unless named). There a job's
        ``requirements.txt`` is installed for real; a package the environment lacks fails."""
        images = dict(self.settings()["image_environments"])
        if venv is not None:
            images[image] = {"venv": os.fspath(venv)}
        else:
            files = [requirements] if isinstance(requirements, (str, os.PathLike)) else requirements
            images[image] = {
                "python": os.fspath(python) if python else sys.executable,
                "requirements": [os.fspath(path) for path in files],
            }
        self.settings(image_environments=images)

    def add_devices(self, entries: list[dict[str, Any]]) -> list[str]:
        """Add emulated QPUs (catalogue entries, see ``docs/emulator.md``); returns their ARNs."""
        return self._call("POST", "/devices", entries)["added"]  # type: ignore[arg-type]

    def faults(self, **changes: Any) -> dict[str, Any]:
        """Read (no arguments) or change fault injection: ``throttle_rate``, ``error_rate``,
        ``lost_response_rate``, ``latency_seconds``, ``fail`` ({operation: times}),
        ``hold`` ({operation: times} a request waits until ``hold`` is changed again; ``held``
        counts those waiting), ``undeletable`` (S3 keys containing these are refused by
        ``DeleteObjects``), ``services`` and ``seed``. Returns the settings and how many faults
        were injected."""
        if not changes:
            return self._call("GET", "/faults")
        return self._call("POST", "/faults", changes)

    def enforce_policy(
        self, policy: dict[str, Any], access_key_id: str = CLIENT_ACCESS_KEY
    ) -> None:
        """Enforce an IAM policy on the Braket calls signed with ``access_key_id`` (the key
        :meth:`env` and the fixture use); calls it does not allow get AccessDeniedException."""
        self._call("POST", "/iam", {"accessKeyId": access_key_id, "policy": policy})

    def kill_job(self, job_arn: str) -> None:
        """SIGKILL a running job's process, as if its instance died."""
        self._call("POST", "/jobs/kill", {"jobArn": job_arn})

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def journal(
        self, service: str | None = None, operation: str | None = None
    ) -> list[dict[str, Any]]:
        """Requests that went over the wire, oldest first, optionally filtered."""
        entries = self._call("GET", "/journal")["requests"]
        return [
            entry
            for entry in entries
            if (service is None or entry["service"] == service)
            and (operation is None or entry["operation"] == operation)
        ]

    def events(self, source: str | None = None) -> list[dict[str, Any]]:
        """The emulator's own events, oldest first (``source="launcher"``: the warm job
        launcher's ``fork``, ``zygote-started``, ``zygote-replaced``, ``fallback``)."""
        entries = self._call("GET", "/journal")["events"]
        return [entry for entry in entries if source is None or entry["source"] == source]

    def clear_journal(self) -> None:
        self._call("DELETE", "/journal")

    def env(self) -> dict[str, str]:
        """The environment that points an AWS client (or a Covalent server) at the emulator."""
        from .testing import emulator_env

        return emulator_env(self.url, self.region)

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client on the emulator (in this control's Region, with this run's client
        credentials, unless ``kwargs`` say otherwise). Every client comes from one boto3
        session per process, so each service model is read once (a client from a fresh session
        costs about a tenth of a second, one more from the same session a few milliseconds)."""
        from .testing import emulator_client

        return emulator_client(service, self.url, self.region, **kwargs)


@pytest.fixture(scope="session")
def braket_emulator_server(pytestconfig: pytest.Config) -> Iterator[Any]:
    """One Braket-in-a-box per test session, on a free loopback port."""
    from .emulator import BraketEmulator

    legacy = bool(pytestconfig.getoption(LEGACY_KEYS_OPTION, default=False))
    server = BraketEmulator(host="127.0.0.1", port=0, legacy_test_keys=legacy)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def braket_emulator(
    braket_emulator_server: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmulatorControl]:
    """A freshly reset emulator, with this process's AWS settings pointed at it."""
    control = EmulatorControl(
        braket_emulator_server.url,
        work_dir=braket_emulator_server.work_dir,
        token=braket_emulator_server.token,
    )
    control.reset()
    for name in [key for key in os.environ if key.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in control.env().items():
        monkeypatch.setenv(name, value)
    from . import aws

    aws.reset_cache()
    yield control
    aws.reset_cache()


class CovalentTestServer:
    """A Covalent server wired to Braket-in-a-box, as the ``covalent_server`` fixture gives it.

    Attributes:
        server: The :class:`~covalent_braket_plugin.testing.CovalentServer` itself.
        settings: Its covalent.conf's ``[executors.braket]``.
    """

    def __init__(self, server: Any, settings: dict[str, Any]) -> None:
        self.server = server
        self.settings = settings

    @property
    def address(self) -> str:
        """``http://127.0.0.1:PORT``: ``ct.dispatch(..., dispatcher_addr=...)``."""
        return str(self.server.address)

    @property
    def env(self) -> dict[str, str]:
        """The server's environment: a process with it uses the server and its covalent.conf."""
        return dict(self.server.env)

    def run(self, lattice: Any, *args: Any, **kwargs: Any) -> Any:
        """Dispatch ``lattice(*args, **kwargs)`` to the server and wait for its result."""
        import covalent as ct

        dispatch_id = ct.dispatch(lattice, dispatcher_addr=self.address)(*args, **kwargs)
        return ct.get_result(dispatch_id, wait=True, dispatcher_addr=self.address)

    def log(self) -> str:
        """The server's log (the executor's lines are in it)."""
        return str(self.server.log())


@pytest.fixture(scope="session")
def covalent_server_process(
    braket_emulator_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CovalentTestServer]:
    """The session's Covalent server on a free loopback port (see ``covalent_server``)."""
    from .testing import (
        CovalentServer,
        covalent_server_settings,
        emulator_env,
        write_braket_config,
    )

    home = tmp_path_factory.mktemp("covalent-server")
    settings = covalent_server_settings()
    write_braket_config(home, settings)
    server = CovalentServer(env=emulator_env(braket_emulator_server.url), home=home)
    server.start()
    try:
        yield CovalentTestServer(server, settings)
    finally:
        server.stop()


@pytest.fixture
def covalent_server(
    covalent_server_process: CovalentTestServer,
    braket_emulator: EmulatorControl,
    request: pytest.FixtureRequest,
) -> Iterator[CovalentTestServer]:
    """The session's Covalent server, with the resources its settings name made in the
    freshly reset emulated account, and the test's module pickled by value."""
    import cloudpickle

    from .testing import provision

    settings = covalent_server_process.settings
    provision(
        settings["s3_bucket_name"],
        settings["braket_job_execution_role_name"],
        settings["ecr_image_uri"],
        client=braket_emulator.client,
    )
    module = request.module
    registered = module.__name__ in cloudpickle.list_registry_pickle_by_value()
    if not registered:
        cloudpickle.register_pickle_by_value(module)
    try:
        yield covalent_server_process
    finally:
        if not registered:
            cloudpickle.unregister_pickle_by_value(module)
