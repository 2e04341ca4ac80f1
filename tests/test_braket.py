"""BraketExecutor on its own: settings, naming, and ``run``/``cancel`` against the emulator.

Covalent's server normally answers the executor's three questions (cancel requested? client
version? where to store the job handle?); :class:`HostedExecutor` answers them here, so the
executor's own code runs unchanged over the real wire protocol.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
import time
from typing import Any

import pytest

from covalent_braket_plugin import aws as aws_module
from covalent_braket_plugin.braket import (
    _EXECUTOR_PLUGIN_DEFAULTS,
    EXECUTOR_PLUGIN_NAME,
    BraketExecutor,
    BraketJobError,
    job_name,
)
from covalent_braket_plugin.config import DEFAULTS, InvalidSettingError
from covalent_braket_plugin.location import TaskLocation
from covalent_braket_plugin.spool import Concatenation, Spool
from covalent_braket_plugin.testing import provision
from tests.conftest import BUCKET, IMAGE

pytestmark = pytest.mark.timeout(120)


class HostedExecutor(BraketExecutor):
    """The executor with Covalent's server-side plumbing answered in-process."""

    def __init__(
        self, *args: Any, cancel_after: int | None = None, python: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._cancel_after = cancel_after
        self._questions = 0
        self._python = python
        self._handle: Any = None
        self._task_stdout = io.StringIO()
        self._task_stderr = io.StringIO()

    async def get_cancel_requested(self) -> bool:
        self._questions += 1
        return self._cancel_after is not None and self._questions > self._cancel_after

    async def get_version_info(self) -> dict:
        python = self._python or "{}.{}.0".format(*sys.version_info[:2])
        return {"python": python, "covalent": "0.240.0"}

    async def set_job_handle(self, handle: Any) -> None:
        self._handle = handle


def hosted(**changes: Any) -> HostedExecutor:
    settings = {"s3_bucket_name": BUCKET, "ecr_image_uri": IMAGE, "poll_freq": 0.3, **changes}
    return HostedExecutor(**settings)


def run(executor: BraketExecutor, function: Any, *args: Any, node_id: int = 0) -> Any:
    metadata = {
        "dispatch_id": "d0c0ffee-1234-5678-9abc-def012345678",
        "node_id": node_id,
        "results_dir": "/tmp",
    }
    return asyncio.run(executor.run(function, list(args), {}, metadata))


def keys(aws: Any) -> list[str]:
    return [item["Key"] for item in aws.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


# ---------------------------------------------------------------------------- plugin contract
def test_plugin_module_contract() -> None:
    assert EXECUTOR_PLUGIN_NAME == "BraketExecutor"
    assert _EXECUTOR_PLUGIN_DEFAULTS == DEFAULTS
    assert (
        DEFAULTS["poll_freq"] == 30 and DEFAULTS["time_limit"] == 300 and DEFAULTS["storage"] == 30
    )
    assert DEFAULTS["classical_device"] == "ml.m5.large"
    assert DEFAULTS["quantum_device"] == "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
    assert DEFAULTS["s3_bucket_name"] == "amazon-braket-covalent-job-resources"
    assert DEFAULTS["braket_job_execution_role_name"] == "CovalentBraketJobsExecutionRole"


def test_covalent_finds_the_plugin_by_short_name_and_attribute() -> None:
    import covalent as ct
    from covalent.executor import _executor_manager

    assert ct.executor.BraketExecutor is BraketExecutor
    assert type(_executor_manager.get_executor("braket")) is BraketExecutor


def test_import_leaves_braket_sdk_pennylane_and_boto3_unimported() -> None:
    code = (
        "import sys, covalent_braket_plugin.braket\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('braket', 'pennylane', 'boto3')]\n"
        "print(heavy)\n"
        "raise SystemExit(1 if heavy else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_executor_round_trips_through_to_dict_as_the_server_rebuilds_it() -> None:
    import copy
    import json

    executor = BraketExecutor(
        s3_bucket_name="amazon-braket-mine", ecr_image_uri=IMAGE, time_limit=77
    )
    data = json.loads(json.dumps(copy.deepcopy(executor).to_dict()))
    rebuilt = BraketExecutor().from_dict(data)
    assert rebuilt.settings() == executor.settings()


# ---------------------------------------------------------------------------- settings
def test_arguments_win_over_covalent_conf_and_missing_ones_come_from_it() -> None:
    from covalent._shared_files.config import set_config

    set_config("executors.braket.time_limit", 1234)
    set_config("executors.braket.storage", 55)
    try:
        executor = BraketExecutor(storage=20)
        assert executor.time_limit == 1234
        assert executor.storage == 20
    finally:
        set_config("executors.braket.time_limit", 300)
        set_config("executors.braket.storage", 30)


@pytest.mark.parametrize(
    ("setting", "value", "allowed"),
    [
        ("time_limit", 0, "from 1 to 432000"),
        ("time_limit", 432_001, "from 1 to 432000"),
        ("storage", 0, "from 1"),
        ("poll_freq", -1, "greater than 0"),
        ("classical_device", "ml.m5.gigantic", "ml.m5.large"),
        ("quantum_device", "sv1", "device ARN"),
        ("s3_bucket_name", "My_Bucket", "S3 bucket name"),
        ("ecr_image_uri", "python:3.11", "ECR image URI"),
        ("braket_job_execution_role_name", "arn:aws:iam::1:role/x", "role ARN"),
        ("region", "Mars", "region"),
        ("pack", "sometimes", "true or false"),
        ("pack_max", 0, "from 1 to 64"),
        ("pack_max", 65, "from 1 to 64"),
        ("pack_parallel", -1, "from 0 to 256"),
        ("warm_seconds", -1, "from 0 to 3600"),
        ("warm_seconds", float("nan"), "from 0 to 3600"),
    ],
)
def test_bad_argument_names_the_setting_value_and_what_is_allowed(
    setting: str, value: Any, allowed: str
) -> None:
    with pytest.raises(InvalidSettingError) as info:
        BraketExecutor(**{setting: value})
    message = str(info.value)
    assert setting in message and repr(value) in message and allowed in message


@pytest.mark.parametrize(
    ("dispatch_id", "node_id"),
    [("d0c0ffee-1234-5678-9abc-def012345678", 0), ("x" * 80, 10**15), ("__--__", "a_b"), ("", -1)],
)
def test_job_names_are_always_valid(dispatch_id: str, node_id: Any) -> None:
    name = TaskLocation.new("bucket-name", dispatch_id, node_id).job_name
    assert len(name) <= 50
    assert re.match(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,50}$", name), name
    assert job_name(dispatch_id, node_id, 1) != job_name(dispatch_id, node_id, 2)


def test_credentials_file_and_profile_are_used_without_touching_environ(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[lab]\naws_access_key_id = AKIALAB\naws_secret_access_key = secret\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    executor = BraketExecutor(
        credentials=str(credentials), profile="lab", region="eu-west-2", ecr_image_uri=IMAGE
    )
    aws_module.reset_cache()
    clients = aws_module.clients_for(executor.settings())
    assert clients.region == "eu-west-2"
    assert clients.s3._request_signer._credentials.access_key == "AKIALAB"
    assert dict(os.environ) == before
    aws_module.reset_cache()


def test_clients_built_again_share_the_loaded_service_models(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMODELS")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    settings = BraketExecutor(region="us-east-1", ecr_image_uri=IMAGE).settings()

    def loader() -> Any:
        aws_module.reset_cache()
        clients = aws_module.clients_for(settings)
        return clients.session._session.get_component("data_loader")

    first, second = loader(), loader()
    assert first is second  # each model read once per process, not once per build
    assert first.search_paths == loader().search_paths  # boto3's path is not added again
    assert any(path.endswith(os.path.join("boto3", "data")) for path in first.search_paths)
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))  # the user's own models: a loader of its own
    own = loader()
    assert own is not first and str(tmp_path) in own.search_paths
    aws_module.reset_cache()


# ---------------------------------------------------------------------------- run and cancel
def test_run_returns_the_result_and_removes_its_pickles(aws: Any) -> None:
    provision(BUCKET, "covalent-role", IMAGE, client=aws.control.client)
    executor = hosted(braket_job_execution_role_name="covalent-role")

    def square(x: int) -> int:
        print("squaring", x)
        return x * x

    assert run(executor, square, 12) == 144
    assert executor._task_stdout.getvalue() == "squaring 12\n"
    job = aws.braket.get_job(jobArn=executor._handle)
    assert job["roleArn"] == "arn:aws:iam::123456789012:role/covalent-role"
    assert job["hyperParameters"]["covalent_python_version"] == "{}.{}".format(
        *sys.version_info[:2]
    )
    deadline = time.monotonic() + 10  # the clean-up runs after the result is returned
    while (
        any(key.endswith((".pkl", "runner.tar.gz")) for key in keys(aws))
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    left = keys(aws)
    assert not any(key.endswith((".pkl", "runner.tar.gz")) for key in left), left
    assert any(key.endswith("/output/output/model.tar.gz") for key in left), left


def _many_small(size: int) -> list[bytes]:
    """An argument that pickles into the pickler's own frames (nothing to keep by reference)."""
    return [os.urandom(1000) for _ in range(size // 1000)]


@pytest.mark.parametrize(
    ("make", "size", "input_object"),
    [
        (os.urandom, 100_000, "runner.tar.gz"),  # inside the runner archive, in memory both ways
        (os.urandom, 3 * 1024 * 1024, "runner.tar.gz"),  # still inside; one GET of the result
        (os.urandom, 9 * 1024 * 1024, "input.pkl"),  # multipart from memory, ranged GETs down
        (_many_small, 9 * 1024 * 1024, "input.pkl"),  # multipart from a spool file
    ],
)
def test_arguments_and_results_of_every_size_arrive_whole(
    aws: Any, make: Any, size: int, input_object: str
) -> None:
    import hashlib

    executor = hosted(cleanup=False)
    argument = make(size)
    flat = argument if isinstance(argument, bytes) else b"".join(argument)

    def echo_reversed(data: Any) -> tuple[str, Any]:
        import hashlib

        whole = data if isinstance(data, bytes) else b"".join(data)
        return hashlib.sha256(whole).hexdigest(), data[::-1]

    digest, result = run(executor, echo_reversed, argument)
    assert digest == hashlib.sha256(flat).hexdigest()
    assert result == argument[::-1]
    job = aws.braket.get_job(jobArn=executor._handle)
    prefix = job["hyperParameters"]["covalent_task_s3_uri"].split(f"{BUCKET}/", 1)[1]
    stored = {key.rsplit("/", 1)[1]: key for key in keys(aws) if key.startswith(prefix + "/")}
    head = aws.s3.head_object(Bucket=BUCKET, Key=stored[input_object])
    assert head["Metadata"]["sha256"] == job["hyperParameters"]["covalent_input_sha256"]
    assert ("input.pkl" in stored) == (input_object == "input.pkl")
    assert head["ContentLength"] >= size


def test_uploads_carry_their_crc32_and_are_not_signed_a_second_time(aws: Any) -> None:
    from covalent_braket_plugin import aws as aws_module
    from covalent_braket_plugin import transfer

    executor = hosted()
    settings = executor.settings()
    sent: list[tuple[str, dict[str, str]]] = []

    def note(request: Any, **kwargs: Any) -> None:
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        sent.append((kwargs["event_name"].rsplit(".", 1)[-1], headers))

    events = aws_module.clients_for(settings).s3.meta.events
    events.register("before-send.s3", note)
    try:
        for size in (3 * 1024 * 1024, 20 * 1024 * 1024):  # in the archive; in parts
            location = TaskLocation.new(BUCKET, f"5e55-crc-{size}", 0)
            transfer.upload_task(settings, location, (len, [os.urandom(size)], {}))
    finally:
        events.unregister("before-send.s3", note)
    uploads = [(op, headers) for op, headers in sent if op in ("PutObject", "UploadPart")]
    assert sum(op == "UploadPart" for op, _ in uploads) == 3  # 20 MiB in 8 MiB parts
    for _, headers in uploads:
        assert headers.get("x-amz-checksum-crc32")  # checked by the emulator, as by S3
        assert headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"


def test_the_pickle_keeps_large_buffers_by_reference_and_spills_its_own_frames(
    tmp_path: Any,
) -> None:
    import hashlib
    import pickle

    import numpy

    array = numpy.arange(3 * 1024 * 1024, dtype=numpy.float64)  # 24 MiB in one buffer
    payload = (len, [array, b"x" * (2 * 1024 * 1024)], {"small": list(range(1000))})
    with Spool(str(tmp_path), 8 * 1024 * 1024) as spool:
        pickle.dump(payload, spool, protocol=5)
        assert spool.name is None and not list(tmp_path.iterdir())  # nothing on disk
        made = [p for p in spool.pieces if isinstance(p, bytes) and p is not payload[1][1]]
        assert sum(len(piece) for piece in made) < 1024 * 1024  # neither buffer was copied
        body = Concatenation(spool.pieces)
        whole = body.read()
        assert len(whole) == spool.size and hashlib.sha256(whole).hexdigest() == spool.sha256()
        assert (pickle.loads(whole)[1][0] == array).all()
        body.seek(-10, 2)
        assert body.read(100) == whole[-10:] and body.read(5) == b""
        body.seek(len(whole) // 2 - 3)
        assert body.read(7) == whole[len(whole) // 2 - 3 : len(whole) // 2 + 4]
        buffer = bytearray(1000)
        body.seek(5)
        assert body.readinto(buffer) == 1000 and bytes(buffer) == whole[5:1005]

    many = [os.urandom(1000) for _ in range(9000)]  # 9 MB of the pickler's own frames
    with Spool(str(tmp_path), 8 * 1024 * 1024) as spool:
        pickle.dump(many, spool, protocol=5)
        assert spool.name is not None  # spilled: never a second copy in memory
        with open(spool.name, "rb") as handle:
            data = handle.read()
        assert pickle.loads(data) == many and hashlib.sha256(data).hexdigest() == spool.sha256()
    assert not list(tmp_path.iterdir())  # the spill file is gone


def test_large_bytes_the_pickler_makes_count_as_copies_and_spill(tmp_path: Any) -> None:
    """A string's UTF-8, an ``array.array``'s or a strided array's bytes are made by the
    pickler: held beyond the limit they spill; an argument's own ``bytes`` never do."""
    import array
    import pickle

    import numpy

    mib = 1024 * 1024
    copies = {
        "strings": [chr(0x3B1 + n) * mib for n in range(20)],  # 2 MiB of UTF-8 each
        "array.array": [array.array("d", [n]) * (mib // 4) for n in range(20)],
        "strided": [numpy.full(mib // 2, n, dtype="f8")[::2] for n in range(20)],
    }
    for name, payload in copies.items():
        with Spool(str(tmp_path), 8 * mib) as spool:
            pickle.dump(payload, spool, protocol=5)
            spool.settle()
            assert spool.name is not None, name  # 40 MiB of copies: not held in memory
            spool.flush()
            with open(spool.name, "rb") as handle:
                again = pickle.loads(handle.read())
            assert (
                all((a == b).all() for a, b in zip(again, payload, strict=True))
                if name == "strided"
                else again == payload
            ), name
    own = [bytes([n]) * (2 * mib) for n in range(20)]
    with Spool(str(tmp_path), 8 * mib) as spool:
        pickle.dump(own, spool, protocol=5)
        spool.settle()
        assert spool.name is None  # the arguments' own buffers: kept by reference
        assert sum(piece is item for piece in spool.pieces for item in own) == 20


def test_freeze_heap_freezes_the_heap_while_tasks_run_and_thaws_it_after(aws: Any) -> None:
    import gc

    assert gc.get_freeze_count() == 0

    async def frozen_while_running(executors: list[BraketExecutor]) -> tuple[list[int], list]:
        seen: list[int] = []
        metadata = {"dispatch_id": "d0c0ffee-f00d-5678-9abc-def012345678", "results_dir": "/tmp"}
        tasks = [
            asyncio.create_task(executor.run(lambda i=i: i, [], {}, {**metadata, "node_id": i}))
            for i, executor in enumerate(executors)
        ]
        while not all(task.done() for task in tasks):
            seen.append(gc.get_freeze_count())
            await asyncio.sleep(0.02)
        return seen, [task.result() for task in tasks]

    seen, results = asyncio.run(frozen_while_running([hosted(), hosted(), hosted()]))
    assert results == [0, 1, 2]
    assert min(seen[1:]) > 50_000  # covalent's and botocore's objects, at least, all along
    assert gc.get_freeze_count() == 0  # thawed once the last task ended

    seen, results = asyncio.run(frozen_while_running([hosted(freeze_heap=False)]))
    assert results == [0] and max(seen) == 0

    gc.freeze()  # a heap frozen by someone else is theirs: not thawed by the executor
    try:
        ours = gc.get_freeze_count()
        assert run(hosted(), lambda: 4, node_id=9) == 4
        assert gc.get_freeze_count() >= ours - 1000  # (frozen objects still die)
    finally:
        gc.unfreeze()


def test_python_mismatch_is_refused_with_a_clear_message(aws: Any) -> None:
    executor = hosted(python="3.99.1")
    with pytest.raises(BraketJobError, match=r"Python version mismatch.*3\.99"):
        run(executor, lambda: 1)


def test_cancel_requested_before_submission_creates_no_job(aws: Any) -> None:
    from covalent._shared_files.exceptions import TaskCancelledError

    for after in (0, 1):  # before the upload, and between upload and CreateJob
        with pytest.raises(TaskCancelledError):
            run(hosted(cancel_after=after), lambda: 1)
    assert aws.braket.search_jobs(filters=[])["jobs"] == []
    assert not [key for key in keys(aws) if key.endswith(".pkl")]


def test_cancel_reports_whether_the_job_is_cancelling(aws: Any) -> None:
    import time

    executor = hosted()

    async def scenario() -> tuple[bool, str]:
        metadata = {"dispatch_id": "d1", "node_id": 3, "results_dir": "/tmp"}
        task = asyncio.create_task(executor.run(lambda: time.sleep(60), [], {}, metadata))
        while executor._handle is None:
            await asyncio.sleep(0.1)
        cancelled = await executor.cancel({"dispatch_id": "d1", "node_id": 3}, executor._handle)
        try:
            await task
        except Exception as exc:
            return cancelled, type(exc).__name__
        return cancelled, "no exception"

    cancelled, raised = asyncio.run(scenario())
    assert cancelled is True
    assert raised == "TaskCancelledError"
    assert aws.braket.get_job(jobArn=executor._handle)["status"] == "CANCELLED"
    assert asyncio.run(executor.cancel({}, executor._handle)) is True  # already cancelled
    assert asyncio.run(executor.cancel({}, None)) is False


def test_no_aws_call_runs_on_the_event_loop(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Covalent runs every executor on its server's event loop: every AWS call, and the
    building of clients, happens on the executor's I/O threads, never on the loop's thread."""
    import threading

    executor = hosted()
    assert run(executor, lambda: 0) == 0  # clients are built once per process: hook them after
    clients = aws_module.clients_for(executor.settings())
    threads: list[tuple[str, int]] = []

    def note(event_name: str, **kwargs: Any) -> None:
        threads.append((event_name, threading.get_ident()))

    builder = aws_module.clients_for

    def noted_builder(settings: Any) -> Any:
        threads.append(("clients_for", threading.get_ident()))
        return builder(settings)

    monkeypatch.setattr(aws_module, "clients_for", noted_builder)
    services = [clients.braket, clients.s3, clients.sts, clients.logs, clients.iam, clients.ecr]
    for client in services:
        client.meta.events.register("before-call", note)
    try:

        async def scenario() -> int:
            metadata = {"dispatch_id": "d2", "node_id": 0, "results_dir": "/tmp"}
            loop_thread.append(threading.get_ident())
            return await executor.run(lambda: 7, [], {}, metadata)

        loop_thread: list[int] = []
        assert asyncio.run(scenario()) == 7
    finally:
        for client in services:
            client.meta.events.unregister("before-call", note)
    called = {name.split(".")[-1] for name, _ in threads}
    assert {"PutObject", "CreateJob", "GetObject", "clients_for"} <= called, called
    on_loop = [name for name, thread in threads if thread == loop_thread[0]]
    assert on_loop == [], f"called on the event loop's thread: {on_loop}"
