"""Trust: what other jobs may write to the shared bucket is never run, nor unpickled.

Every job role may write anywhere under ``covalent-braket/``, and the names there are
predictable. So the server unpickles only a result whose MAC, with a key only it and the
attempt's job know, it has checked; it adopts an upload only if its metadata carries its own
MAC; a task's objects go once its job is terminal, however it ended; its secret and its
cache directory are its user's alone.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from covalent_braket_plugin import results, transfer
from covalent_braket_plugin.braket import BraketJobError
from covalent_braket_plugin.config import InvalidSettingError
from covalent_braket_plugin.job import runner_archive_with
from covalent_braket_plugin.location import TASK_OBJECTS, TaskLocation
from tests.conftest import BUCKET
from tests.test_braket import _many_small, hosted, keys, run

pytestmark = pytest.mark.timeout(180)
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job cannot import the tests

DISPATCH = "d0c0ffee-1234-5678-9abc-def012345678"  # tests.test_braket.run's
MIB = 1024 * 1024
#: A second user, for files and directories that are someone else's.
NOBODY = 65534


def _detonate(marker: str) -> str:
    Path(marker).write_text("the pickle ran inside the Covalent server")
    return "detonated"


class _Detonator:
    """What a planted pickle carries: unpickling it writes ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _detonate, (self.marker,)


def _finished(location: TaskLocation) -> dict[str, Any]:
    """The COMPLETED job of ``location``'s attempt, as the watcher hands it over."""
    arn = f"arn:aws:braket:us-east-1:123456789012:job/{location.job_name}"
    return {"jobArn": arn, "jobName": location.job_name, "status": "COMPLETED"}


def _outcome(location: TaskLocation, value: Any, size: int, result_format: int) -> dict:
    return {
        "format": result_format,
        "ok": True,
        "result": value,
        "job_name": location.job_name,
        "task_uri": location.uri,
        "stdout": "x" * size,  # past 1 MiB the result is spooled to a file, not held
        "stderr": "",
    }


def _refused(aws: Any, location: TaskLocation, body: bytes) -> str:
    """Put ``body`` as the attempt's ``result.pkl``; the message ``download`` refuses it with."""
    aws.s3.put_object(Bucket=BUCKET, Key=location.key("result.pkl"), Body=body)
    with pytest.raises(BraketJobError) as info:
        results.download(hosted().settings(), location, _finished(location))
    message = str(info.value)
    assert "not authenticated" in message and "nothing of it was unpickled" in message, message
    assert f"s3://{BUCKET}/{location.key('result.pkl')}" in message
    return message


# ---------------------------------------------------------------------------- results
@pytest.mark.parametrize("size", [0, 2 * MIB], ids=["in memory", "spooled"])
def test_a_planted_result_in_the_old_format_is_refused_before_it_is_unpickled(
    aws: Any, tmp_path: Path, size: int
) -> None:
    location = TaskLocation.new(BUCKET, DISPATCH, 11, 0)
    marker = tmp_path / "detonated"
    planted = _outcome(location, _Detonator(str(marker)), size, result_format=1)
    message = _refused(aws, location, cloudpickle.dumps(planted))
    assert "not by Braket job" in message
    assert not marker.exists()


@pytest.mark.parametrize("size", [0, 2 * MIB], ids=["in memory", "spooled"])
def test_a_result_with_a_wrong_mac_is_refused_and_one_with_the_right_mac_is_taken(
    aws: Any, tmp_path: Path, size: int
) -> None:
    from covalent_braket_plugin import signing
    from covalent_braket_plugin.job.runner import RESULT_FORMAT, result_header, result_mac

    location = TaskLocation.new(BUCKET, DISPATCH, 12, 0)
    uri, name = location.uri, location.job_name
    marker = tmp_path / "detonated"
    forged = cloudpickle.dumps(_outcome(location, _Detonator(str(marker)), size, RESULT_FORMAT))
    other = TaskLocation.new(BUCKET, DISPATCH, 12, 1)  # another attempt's key
    other_key = signing.attempt_key(other.uri, other.job_name)
    right_key = signing.attempt_key(uri, name)
    for mac in (
        result_mac(other_key, uri, name, [forged]),
        result_mac(right_key, uri, name, [forged + b"."]),  # the payload changed since
        "0" * 64,
    ):
        message = _refused(aws, location, result_header(uri, name, mac) + forged)
        assert "MAC" in message
    assert not marker.exists()

    own = cloudpickle.dumps(_outcome(location, 42, size, RESULT_FORMAT))
    signed = result_header(uri, name, result_mac(right_key, uri, name, [own])) + own
    aws.s3.put_object(Bucket=BUCKET, Key=location.key("result.pkl"), Body=signed)
    outcome = results.download(hosted().settings(), location, _finished(location))
    assert outcome is not None and outcome["result"] == 42 and len(outcome["stdout"]) == size


# ---------------------------------------------------------------------------- uploads
def _stored_input(aws: Any, location: TaskLocation) -> bytes:
    """The input this attempt's job reads: ``input.pkl``, or the one in the runner archive."""
    names = {key.rsplit("/", 1)[1] for key in keys(aws) if key.startswith(location.prefix + "/")}
    if "input.pkl" in names:
        return aws.s3.get_object(Bucket=BUCKET, Key=location.key("input.pkl"))["Body"].read()
    archive = aws.s3.get_object(Bucket=BUCKET, Key=location.key("runner.tar.gz"))["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive))) as tar:
        member = tar.extractfile("input.pkl")
        assert member is not None
        return member.read()


@pytest.mark.parametrize("planted_as", ["runner.tar.gz", "input.pkl"])
def test_an_input_planted_with_forged_metadata_is_never_run(aws: Any, planted_as: str) -> None:
    planted = cloudpickle.dumps((lambda *_: "planted", [], {}))
    forged = {
        "sha256": hashlib.sha256(planted).hexdigest(),
        "client-token": str(uuid.uuid4()),
        "mac": "0" * 64,
    }
    first = TaskLocation.new(BUCKET, DISPATCH, 13, 0)
    body = planted
    if planted_as == "runner.tar.gz":  # the real runner, with the planted input beside it
        body = b"".join(bytes(piece) for piece in runner_archive_with([planted], "input.pkl"))
    key = first.key(planted_as)
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata=forged)
    etag = aws.s3.head_object(Bucket=BUCKET, Key=key)["ETag"]

    executor = hosted(cleanup=False)
    if planted_as == "runner.tar.gz":  # a small input: it travels in the runner archive
        assert run(executor, lambda: "own", node_id=13) == "own"
    else:  # a large one: input.pkl beside the runner
        value = run(executor, lambda data: ("own", len(data)), os.urandom(9 * MIB), node_id=13)
        assert value == ("own", 9 * MIB)

    created = [e for e in aws.control.journal(operation="CreateJob") if e["status"] == 201]
    jobs = aws.braket.search_jobs(filters=[])["jobs"]
    assert len(created) == len(jobs) == 1  # one job, for the next attempt
    job = aws.braket.get_job(jobArn=jobs[0]["jobArn"])
    assert job["jobArn"] == executor._handle and job["tags"]["covalent:attempt"] == "1"
    digest = job["hyperParameters"]["covalent_input_sha256"]
    assert digest != forged["sha256"]
    own = TaskLocation.new(BUCKET, DISPATCH, 13, 1)
    assert digest == hashlib.sha256(_stored_input(aws, own)).hexdigest()
    left = [k for k in keys(aws) if k.startswith(first.prefix + "/")]
    assert left == [key]  # the planted object left alone, nothing of ours beside it
    assert aws.s3.head_object(Bucket=BUCKET, Key=key)["ETag"] == etag


def _raises() -> None:
    raise RuntimeError("the electron fails")


def _sleeps() -> None:
    import time

    time.sleep(60)


@pytest.mark.parametrize("ending", ["raises", "cancelled"])
def test_a_failed_or_cancelled_task_leaves_no_task_objects(aws: Any, ending: str) -> None:
    from covalent._shared_files.exceptions import TaskCancelledError, TaskRuntimeError

    if ending == "raises":
        with pytest.raises(TaskRuntimeError, match="the electron fails"):
            run(hosted(), _raises, node_id=14)
    else:  # asked after the job was created (the third question): the job is cancelled
        with pytest.raises(TaskCancelledError):
            run(hosted(cancel_after=2), _sleeps, node_id=14)
    jobs = aws.braket.search_jobs(filters=[])["jobs"]
    assert [job["status"] for job in jobs] == ["FAILED" if ending == "raises" else "CANCELLED"]
    results.wait_for_cleanups()
    prefix = TaskLocation.new(BUCKET, DISPATCH, 14, 0).prefix + "/"
    left = [k for k in keys(aws) if k.startswith(prefix) and k[len(prefix) :] in TASK_OBJECTS]
    assert left == []


# ---------------------------------------------------------------------------- the secret
def test_the_secret_is_made_once_private_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from covalent_braket_plugin import signing

    config = tmp_path / "covalent-config"
    env = {**os.environ, "COVALENT_CONFIG_DIR": str(config)}
    code = "import sys; from covalent_braket_plugin import signing; print(signing.secret().hex())"
    makers = [  # four processes at once: one makes it, the others read what it made
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    made = {maker.communicate(timeout=60)[0].strip() for maker in makers}
    assert [maker.returncode for maker in makers] == [0] * 4
    assert len(made) == 1 and len(made.copy().pop()) == 64
    path = config / signing.SECRET_FILE
    found = path.stat()
    assert stat.S_IMODE(found.st_mode) == 0o600 and found.st_uid == os.getuid()
    assert found.st_size == signing.SECRET_BYTES
    monkeypatch.setenv("COVALENT_CONFIG_DIR", str(config))
    assert signing.secret().hex() == made.pop()  # read, not made again
    assert path.stat().st_mtime_ns == found.st_mtime_ns


@pytest.mark.parametrize("problem", ["group may read", "others may write", "someone else's"])
def test_a_secret_file_that_is_not_private_is_refused(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problem: str
) -> None:
    from covalent_braket_plugin import signing

    config = tmp_path / "covalent-config"
    config.mkdir()
    path = config / signing.SECRET_FILE
    path.write_bytes(os.urandom(signing.SECRET_BYTES))
    path.chmod({"group may read": 0o640, "others may write": 0o602}.get(problem, 0o600))
    if problem == "someone else's":
        if os.getuid() != 0:
            pytest.skip("only root can give a file away")
        os.chown(path, NOBODY, NOBODY)
    monkeypatch.setenv("COVALENT_CONFIG_DIR", str(config))
    with pytest.raises(signing.SecretFileError) as info:
        signing.secret()
    message = str(info.value)
    assert str(path) in message
    if problem == "someone else's":
        assert f"owned by uid {NOBODY}" in message and "delete it" in message
    else:
        assert "group or others" in message and f"chmod 600 {path}" in message
    before = keys(aws)  # and a task sends nothing with it
    with pytest.raises(signing.SecretFileError):
        location = TaskLocation.new(BUCKET, "5e55-secret", 0)
        transfer.upload_task(hosted().settings(), location, (len, [b"x"], {}))
    assert keys(aws) == before


# ---------------------------------------------------------------------------- cache_dir
def test_cache_dir_defaults_to_a_private_directory_of_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from covalent_braket_plugin.config import DEFAULTS, BraketSettings, private_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert DEFAULTS["cache_dir"] != "/tmp/covalent"
    path = private_cache_dir(BraketSettings.from_mapping({}).cache_dir)
    assert path == str(tmp_path / "xdg" / "covalent-braket")
    found = os.stat(path)
    assert stat.S_IMODE(found.st_mode) == 0o700 and found.st_uid == os.getuid()
    assert private_cache_dir("/tmp/covalent") == path  # the old default, as covalent.conf has it
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert private_cache_dir("") == str(tmp_path / "home" / ".cache" / "covalent-braket")


@pytest.mark.parametrize("problem", ["others may write", "someone else's"])
def test_a_cache_dir_others_may_write_to_is_refused(aws: Any, tmp_path: Path, problem: str) -> None:
    from covalent_braket_plugin.config import private_cache_dir

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777 if problem == "others may write" else 0o700)
    if problem == "someone else's":
        if os.getuid() != 0:
            pytest.skip("only root can give a directory away")
        os.chown(shared, NOBODY, NOBODY)
    with pytest.raises(InvalidSettingError) as info:
        private_cache_dir(str(shared))
    message = str(info.value)
    assert info.value.setting == "cache_dir" and str(shared) in message
    expected = "writable by group or others" if problem == "others may write" else "owned by uid"
    assert expected in message, message
    before = keys(aws)  # and a task sends nothing with it
    with pytest.raises(InvalidSettingError):
        location = TaskLocation.new(BUCKET, "5e55-cache", 0)
        transfer.upload_task(hosted(cache_dir=str(shared)).settings(), location, (len, [1], {}))
    assert keys(aws) == before


def test_a_spill_file_is_uploaded_from_the_open_file_not_by_its_name(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from covalent_braket_plugin.spool import Spool

    class Swapped(Spool):
        """A spool whose spill file is replaced at its path once the pickle is written."""

        def settle(self) -> None:
            super().settle()
            if self.name is not None and not getattr(self, "swapped", False):
                self.swapped = True
                decoy = Path(self.name + ".decoy")
                decoy.write_bytes(cloudpickle.dumps((len, ["decoy"], {})))
                os.replace(decoy, self.name)

    monkeypatch.setattr(transfer, "Spool", Swapped)
    location = TaskLocation.new(BUCKET, "5e55-spill", 0)
    payload = (len, [_many_small(9 * MIB)], {})  # the pickler's own frames: spilled
    upload = transfer.upload_task(hosted().settings(), location, payload)
    assert upload is not None and not upload.resumed
    stored = aws.s3.get_object(Bucket=BUCKET, Key=location.key("input.pkl"))["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == upload.sha256
    assert cloudpickle.loads(stored)[1][0] == payload[1][0]


def test_a_result_that_could_not_be_read_is_kept(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task whose result could not be read (here its download fails) ends in an error, but
    its objects stay: once the cause is mended, the result is still there to look at."""
    from covalent_braket_plugin import aws as aws_module

    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise aws_module.AwsError("GetObject", "AccessDenied", "not now", 403)

    monkeypatch.setattr(transfer, "fetch", unreadable)
    with pytest.raises(BraketJobError, match="could not be read"):
        run(hosted(), len, b"abc", node_id=15)
    results.wait_for_cleanups()
    prefix = TaskLocation.new(BUCKET, DISPATCH, 15, 0).prefix + "/"
    left = {k[len(prefix) :] for k in keys(aws) if k.startswith(prefix)}
    assert {"result.pkl", "runner.tar.gz"} <= left
