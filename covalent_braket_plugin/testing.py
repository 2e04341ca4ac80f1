"""Helpers for testing against Braket-in-a-box: the environment that points AWS clients
at the emulator, the resources the executor checks for, and an isolated, throw-away Covalent
server on a free loopback port.

Used by ``covalent-braket demo``, the pytest plugin and the test suite. The server gets its
own HOME and Covalent directories, so it never touches the user's configuration or database,
and every AWS endpoint variable in its environment points at the emulator.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .emulator.aws_services.identity import (
    CLIENT_ACCESS_KEY,
    CLIENT_SECRET_KEY,
    DEFAULT_REGION,
    TOKEN_ENV,
)
from .emulator.aws_services.own_clients import new_client
from .emulator.aws_services.price_list import PATH as PRICE_LIST_PATH
from .policies import TRUST_POLICY

START_TIMEOUT = 120.0
#: Covalent's console script, run with this interpreter (no reliance on PATH).
_COVALENT_CLI = (
    "import sys; from covalent_dispatcher._cli.cli import cli; "
    "sys.argv[0] = 'covalent'; sys.exit(cli())"
)
STOP_TIMEOUT = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def covalent_env(home: Path) -> dict[str, str]:
    """Environment variables that confine Covalent to ``home``."""
    return {
        "HOME": str(home),
        "COVALENT_CONFIG_DIR": str(home / ".config" / "covalent"),
        "COVALENT_CACHE_DIR": str(home / ".cache" / "covalent"),
        "COVALENT_DATA_DIR": str(home / ".local" / "share" / "covalent"),
        "COVALENT_DATABASE": str(home / ".local" / "share" / "covalent" / "dispatcher_db.sqlite"),
        "COVALENT_LOGDIR": str(home / ".cache" / "covalent"),
        # The server runs with --no-cluster: workflow post-processing must not expect Dask.
        "COVALENT_DISABLE_DASK": "1",
    }


def emulator_env(
    endpoint_url: str, region: str = DEFAULT_REGION, token: str | None = None
) -> dict[str, str]:
    """Environment variables that send every AWS call to the emulator, signed with the client
    credentials of this process (those of an emulator in the same process), and, when
    ``token`` is given, the emulator's token for its control API (``BRAKET_EMULATOR_TOKEN``)."""
    env = {
        "AWS_ENDPOINT_URL": endpoint_url,
        "BRAKET_ENDPOINT": endpoint_url,
        "BRAKET_PRICE_OFFERS_URL": endpoint_url + PRICE_LIST_PATH,
        "AWS_ACCESS_KEY_ID": CLIENT_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": CLIENT_SECRET_KEY,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
        # No profile or credentials file of the user's can be picked up by mistake.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    if token is not None:
        env[TOKEN_ENV] = token
    return env


def emulator_client(
    service: str, endpoint_url: str, region: str = DEFAULT_REGION, **kwargs: Any
) -> Any:
    """A boto3 client on the emulator at ``endpoint_url``, with this run's client credentials
    (``kwargs``, boto3's ``client`` arguments, say otherwise), from the process's one shared
    session."""
    settings = {
        "endpoint_url": endpoint_url,
        "region_name": region,
        "aws_access_key_id": CLIENT_ACCESS_KEY,
        "aws_secret_access_key": CLIENT_SECRET_KEY,
        **kwargs,
    }
    return new_client(service, **settings)


def signed_headers(
    method: str,
    url: str,
    service: str,
    region: str = DEFAULT_REGION,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    unsigned_payload: bool = False,
) -> dict[str, str]:
    """``headers`` with a SigV4 signature of the request, as botocore signs it with the client
    credentials: for a request a test writes by hand (a raw path, a malformed body, a body
    streamed in chunks: ``unsigned_payload``, its hash not in the signature).

    Args:
        method: The HTTP method.
        url: The whole URL, its path and query as they will be sent.
        service: The service signed for (``braket``, ``s3``, ...).
        region: The Region signed for.
        body: The body as it will be sent.
        headers: Headers to send (and sign) besides those the signature adds.
        unsigned_payload: Sign ``UNSIGNED-PAYLOAD`` in place of the body's hash.
    """
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    if unsigned_payload:
        request.context["payload_signing_enabled"] = False
        request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    signer = (S3SigV4Auth if service == "s3" else SigV4Auth)(
        Credentials(CLIENT_ACCESS_KEY, CLIENT_SECRET_KEY), service, region
    )
    signer.add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


def covalent_server_settings() -> dict[str, Any]:
    """The ``[executors.braket]`` settings of the ``covalent_server`` fixture's server: what
    ``covalent-braket setup`` makes in Braket-in-a-box's default account, and a one-second
    poll. ``BraketExecutor(**covalent_server_settings(), ...)`` in a test file runs there."""
    from .emulator.aws_services.identity import DEFAULT_ACCOUNT, DEFAULT_REGION

    return {
        "region": DEFAULT_REGION,
        "s3_bucket_name": f"amazon-braket-covalent-{DEFAULT_REGION}-{DEFAULT_ACCOUNT}",
        "braket_job_execution_role_name": "CovalentBraketJobsExecutionRole",
        "ecr_image_uri": (
            f"{DEFAULT_ACCOUNT}.dkr.ecr.{DEFAULT_REGION}.amazonaws.com/covalent-braket:latest"
        ),
        "poll_freq": 1,
    }


def write_braket_config(home: Path, settings: dict[str, Any]) -> Path:
    """Write ``[executors.braket]`` (and a loopback dispatcher) into the isolated covalent.conf."""
    config_dir = home / ".config" / "covalent"
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "covalent.conf"
    lines = ["[dispatcher]", 'address = "127.0.0.1"', "", "[executors.braket]"]
    for key, value in settings.items():
        lines.append(
            f"{key} = {value!r}" if isinstance(value, (int, float)) else f'{key} = "{value}"'
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def provision(bucket: str, role: str, image_uri: str, client: Any = None) -> None:
    """Create what the executor checks for before a job: the bucket, the job role (trusted by
    Braket) and the image in ECR. Meant for the emulator; existing resources are kept.

    Args:
        bucket: Bucket name (made in the clients' Region).
        role: Role name or ARN (an ARN's path, ``role/service-role/NAME``, is kept).
        image_uri: ``ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY:TAG``.
        client: ``client(service)`` factory; boto3's default clients by default.
    """
    import json

    from .provisioning.image import PLACEHOLDER_MANIFEST

    if client is None:
        import boto3

        client = boto3.client
    s3, iam, ecr = client("s3"), client("iam"), client("ecr")
    region = s3.meta.region_name
    where = {} if region == "us-east-1" else {"LocationConstraint": region}
    try:
        s3.create_bucket(Bucket=bucket, **({"CreateBucketConfiguration": where} if where else {}))
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        pass
    name = role.rsplit("/", 1)[-1]
    rest = role.split(":role/", 1)[1] if ":role/" in role else name
    path = "/" + rest.rsplit("/", 1)[0] + "/" if "/" in rest else "/"
    try:
        iam.create_role(
            RoleName=name,
            Path=path,
            AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
        )
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    repository, _, tag = image_uri.split("/", 1)[1].partition(":")
    try:
        ecr.create_repository(repositoryName=repository)
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    try:
        ecr.put_image(
            repositoryName=repository,
            imageManifest=json.dumps(PLACEHOLDER_MANIFEST),
            imageTag=tag or "latest",
        )
    except ecr.exceptions.ImageAlreadyExistsException:
        pass


class CovalentServer:
    """``covalent start --no-cluster`` in an isolated HOME, stopped by :meth:`stop`.

    Args:
        env: Extra environment for the server (e.g. :func:`emulator_env`).
        home: The isolated HOME; a temporary directory (removed on stop) by default.
        port: Port for the server; a free loopback port by default.
    """

    def __init__(
        self, env: dict[str, str] | None = None, home: Path | None = None, port: int | None = None
    ) -> None:
        self._own_home = home is None
        self.home = Path(home or tempfile.mkdtemp(prefix="covalent-home-"))
        self.port = port or free_port()
        self.extra_env = dict(env or {})

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "COVALENT_"))
        }
        env.update(covalent_env(self.home))
        env.update(self.extra_env)
        return env

    def _covalent(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", _COVALENT_CLI, *args]
        return subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def start(self) -> str:
        """Start the server and wait until it answers; return ``host:port``."""
        try:
            done = self._covalent(
                "start", "--no-cluster", "-p", str(self.port), timeout=START_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError(f"covalent start did not finish in {START_TIMEOUT:.0f} s") from None
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"covalent start failed:\n{done.stdout}\n{done.stderr}")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.address}/", timeout=2)
                return self.address
            except urllib.error.HTTPError:
                return self.address
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the Covalent server did not answer on {self.address}")

    def log(self) -> str:
        logs = sorted((self.home / ".cache" / "covalent").glob("*.log"))
        return "\n".join(path.read_text(errors="replace") for path in logs)

    def _pid(self) -> int | None:
        pidfile = self.home / ".cache" / "covalent" / "ui.pid"
        try:
            return int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Stop the server and everything it started; remove the temporary HOME."""
        pid = self._pid()
        try:
            self._covalent("stop", timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        if pid:
            _kill_tree(pid)
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> CovalentServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill_tree(pid: int) -> None:
    try:
        import psutil
    except ImportError:  # psutil comes with covalent; be safe anyway
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        return
    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = [*parent.children(recursive=True), parent]
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=5)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
