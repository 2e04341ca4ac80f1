"""Braket-in-a-box's server: one loopback port, started and stopped.

The port is bound before anything else is built, so every part is made knowing the
endpoint it serves on (the jobs are pointed back at it); the application itself is
:class:`~covalent_braket_plugin.emulator.app.EmulatorApp`.

It binds a loopback address unless told otherwise on purpose (``insecure_bind``): whoever
reaches the port may run code. Each run has a token of its own (:attr:`BraketEmulator.token`)
for the control API, and its work directory is private to its user (0700), as is every job's.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from . import clock
from .api.backend import BraketBackends
from .api.devices import CATALOGUE_ENV, DeviceCatalogue, load_catalogue
from .app import EmulatorApp, FrontDoor
from .aws_services.ecr_images import ManagedImages
from .aws_services.own_clients import InternalClients
from .aws_services.signatures import SignatureChecker
from .circuits.task_runner import QuantumTaskRunner
from .faults import FaultInjector
from .journal import Journal
from .runtime.launcher import Launcher
from .runtime.lifecycle import JobRuntime
from .settings import RuntimeSettings


def _quiet_handler(service_clock: clock.Clock) -> type:
    """moto's request handler, without a log line per request, dating each answer by the
    emulated service's clock."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietRequestHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

        def date_time_string(self, timestamp: float | None = None) -> str:
            """Every answer's ``Date``: the emulated service's clock."""
            if timestamp is None:
                return service_clock.http_date()
            return super().date_time_string(timestamp)

    return QuietRequestHandler


def _moto_dispatcher() -> Any:
    """moto's dispatcher of requests to its services' apps, with the service each host names
    found once: moto looks it up at every request by listing its package's directories (a
    fifth of the emulator's time per S3 request), though the answer never changes."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class Dispatcher(DomainDispatcherApplication):
        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self._backends: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            # Called under the dispatcher's lock. The hosts are a service's and a Region's
            # (from a request's signature); past a few hundred, the rest are not kept.
            if host in self._backends:
                return self._backends[host]
            backend = super().get_backend_for_host(host)
            if len(self._backends) < 512:
                self._backends[host] = backend
            return backend

    return Dispatcher()


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its user may enter (0700), made if it is missing.

    Raises:
        ValueError: it belongs to another user.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid != os.getuid():
        raise ValueError(f"the work directory {path} belongs to another user")
    path.chmod(0o700)
    return path


class BraketEmulator:
    """Braket-in-a-box on one loopback port.

    Use as a context manager; it yields the endpoint URL::

        with BraketEmulator() as url:
            os.environ["AWS_ENDPOINT_URL"] = url

    Args:
        host: Address to bind; loopback by default. Any other is refused unless
            ``insecure_bind``.
        port: Port to bind; 0 picks a free one.
        work_dir: Where job working directories go; a temporary directory by default
            (removed on stop). Made private to its user (0700) either way.
        settings: Initial runtime settings (queue delay, concurrency, image commands).
        devices_file: A JSON device catalogue adding emulated QPUs (default: the file named by
            ``BRAKET_EMULATOR_DEVICES``, if any).
        insecure_bind: Bind a non-loopback ``host`` (anyone who reaches it may run code).
        legacy_test_keys: Take the fixed ``testing``/``testing`` credentials of old scripts
            besides this run's own.

    Raises:
        ValueError: ``host`` is not a loopback address and ``insecure_bind`` is not given, or
            ``work_dir`` belongs to another user.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        work_dir: str | Path | None = None,
        settings: RuntimeSettings | None = None,
        devices_file: str | None = None,
        *,
        insecure_bind: bool = False,
        legacy_test_keys: bool = False,
    ) -> None:
        if not insecure_bind and not is_loopback(host):
            raise ValueError(
                f"{host!r} is not a loopback address: anyone who reaches the emulator may run "
                "code on this machine; bind it elsewhere only on purpose (insecure_bind, "
                "--insecure-bind)"
            )
        self.host = host
        self.devices_file = devices_file
        self.port = port
        self.legacy_test_keys = legacy_test_keys
        #: This run's token: the control API needs it, and the emulator's own calls carry it.
        self.token = secrets.token_urlsafe(32)
        self._own_work_dir = work_dir is None
        self.work_dir = (
            Path(tempfile.mkdtemp(prefix="braket-emulator-"))  # made 0700
            if work_dir is None
            else private_dir(Path(work_dir))
        )
        self._initial_settings = settings
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._url = ""
        self.app: EmulatorApp | None = None
        self.runtime: JobRuntime | None = None
        self.tasks: QuantumTaskRunner | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._url

    def start(self) -> str:
        """Bind the port, build the emulator around its URL, and serve on a thread."""
        from werkzeug.serving import make_server

        listener = self._listen()
        port = listener.getsockname()[1]
        host = self.host if ":" not in self.host else f"[{self.host}]"
        self._url = f"http://{host}:{port}"
        clients = InternalClients(self._url, self.token)
        settings = dataclasses.replace(self._initial_settings or RuntimeSettings())
        faults = FaultInjector()
        journal = Journal()
        launcher = Launcher(on_event=journal.event("launcher"))
        self.runtime = JobRuntime(clients, self.work_dir, settings, launcher)
        self.tasks = QuantumTaskRunner(clients, settings, faults)
        catalogue = load_catalogue(self.devices_file or os.environ.get(CATALOGUE_ENV))
        backends = BraketBackends(self.runtime, DeviceCatalogue(catalogue), self.tasks, settings)
        moto = _moto_dispatcher()
        images = ManagedImages(clients, settings)
        door = FrontDoor(port, self.token, self.host)
        signatures = SignatureChecker(self.legacy_test_keys)
        self.app = EmulatorApp(
            backends, self.runtime, moto, faults, images, journal, door, signatures
        )
        if settings.warm_launcher:
            launcher.start()  # the parent loads its imports while the first requests come
        try:
            self._server = make_server(
                self.host,
                port,
                self.app,
                threaded=True,
                request_handler=_quiet_handler(clock.Clock(settings)),
                fd=listener.fileno(),
            )
        finally:
            listener.close()  # the server holds its own descriptor of the socket
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="braket-emulator", daemon=True
        )
        self._thread.start()
        return self._url

    def _listen(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            listener.listen(128)
        except BaseException:
            listener.close()
            raise
        return listener

    def stop(self) -> None:
        if self.runtime is not None:
            self.runtime.shutdown()
        if self.tasks is not None:
            self.tasks.shutdown()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
