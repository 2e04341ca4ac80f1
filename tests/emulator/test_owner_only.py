"""Braket-in-a-box serves only its owner: requests to its own loopback name, from no web page,
signed with this run's credentials (or keys moto issued); its control API needs its token; its
own calls are told apart by that token, never by what a request says of itself."""

from __future__ import annotations

import http.client
import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from covalent_braket_plugin.emulator import BraketEmulator, RuntimeSettings
from covalent_braket_plugin.emulator.aws_services.identity import CLIENT_ACCESS_KEY
from covalent_braket_plugin.testing import emulator_client, signed_headers
from tests.conftest import BUCKET
from tests.emulator.test_jobs import error_of, job_request, upload_script, wait_for
from tests.test_reservations_and_tags import QPU, add_qpu

pytestmark = pytest.mark.timeout(120)


def send(
    url: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request to the emulator at ``url`` (always 127.0.0.1, whatever ``Host``
    the headers name); its status, headers and body."""
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def jobs(aws: Any) -> list[dict[str, Any]]:
    return aws.braket.search_jobs(filters=[])["jobs"]


# ---------------------------------------------------------------------------- web pages
def test_a_preflight_from_another_site_is_refused_without_cors_headers(
    braket_emulator: Any,
) -> None:
    preflight = {
        "Origin": "http://evil.example",
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type",
    }
    for path in ("/", "/bucket/key", "/_emulator/settings", "/job"):
        status, headers, _ = send(braket_emulator.url, "OPTIONS", path, headers=preflight)
        assert status == 403, path
        assert not [name for name in headers if name.lower().startswith("access-control-")]


def test_an_s3_put_from_a_web_page_is_refused_and_stores_nothing(braket_emulator: Any) -> None:
    s3 = braket_emulator.client("s3")
    s3.create_bucket(Bucket="pages")
    url = f"{braket_emulator.url}/pages/planted"
    headers = signed_headers("PUT", url, "s3", body=b"evil")  # even well signed
    status, answer, _ = send(
        braket_emulator.url,
        "PUT",
        "/pages/planted",
        b"evil",
        {**headers, "Origin": "http://evil.example"},
    )
    assert status == 403
    assert "Access-Control-Allow-Origin" not in answer
    assert error_of(lambda: s3.head_object(Bucket="pages", Key="planted"))[1] == 404
    status, _, _ = send(braket_emulator.url, "PUT", "/pages/planted", b"evil", headers)
    assert status == 200  # the same request, sent by no web page
    assert s3.get_object(Bucket="pages", Key="planted")["Body"].read() == b"evil"


# ---------------------------------------------------------------------------- Host, signatures
def test_a_create_job_for_another_host_or_badly_signed_creates_no_job(aws: Any) -> None:
    port = urlsplit(aws.url).port
    body = json.dumps(job_request(clientToken=str(uuid.uuid4()))).encode()
    foreign = f"http://attacker.example:{port}/job"
    headers = signed_headers("POST", foreign, "braket", body=body)  # signed for that Host
    status, _, _ = send(aws.url, "POST", "/job", body, headers)
    assert status == 403
    assert jobs(aws) == []

    forged = aws.control.client("braket", aws_secret_access_key="not-the-secret")
    code, status, _ = error_of(lambda: forged.create_job(**job_request()))
    assert (code, status) == ("InvalidSignatureException", 403)
    nobody = aws.control.client("braket", aws_access_key_id="AKIANOBODYISSUEDTHIS")
    code, status, _ = error_of(lambda: nobody.create_job(**job_request()))
    assert (code, status) == ("UnrecognizedClientException", 403)
    assert jobs(aws) == []
    refused = aws.control.journal(operation="CreateJob")
    assert {(e["status"], e["error"]) for e in refused} == {  # botocore tries some again
        (403, "InvalidSignatureException"),
        (403, "UnrecognizedClientException"),
    }

    local = signed_headers("POST", f"{aws.url}/job", "braket", body=body)
    assert send(aws.url, "POST", "/job", body, local)[0] == 201  # the same, to its own Host
    assert len(jobs(aws)) == 1


def test_every_service_refuses_a_bad_signature_in_its_own_protocol(braket_emulator: Any) -> None:
    bad = {"aws_secret_access_key": "not-the-secret"}
    cases = [
        ("s3", lambda c: c.list_buckets(), "SignatureDoesNotMatch"),
        ("sts", lambda c: c.get_caller_identity(), "SignatureDoesNotMatch"),
        ("logs", lambda c: c.describe_log_groups(), "InvalidSignatureException"),
        ("braket", lambda c: c.search_jobs(filters=[]), "InvalidSignatureException"),
    ]
    for service, call, expected in cases:
        client = braket_emulator.client(service, **bad)
        assert error_of(lambda: call(client))[:2] == (expected, 403), service  # noqa: B023
    status, _, body = send(braket_emulator.url, "GET", "/")  # unsigned
    assert status == 403 and b"MissingAuthenticationToken" in body


def test_keys_moto_issued_are_taken_while_active_and_presigned_urls_until_changed(
    braket_emulator: Any,
) -> None:
    import urllib.error
    import urllib.request

    iam = braket_emulator.client("iam")
    iam.create_user(UserName="someone")
    key = iam.create_access_key(UserName="someone")["AccessKey"]
    theirs = braket_emulator.client(
        "s3",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        config=Config(signature_version="s3v4"),
    )
    theirs.create_bucket(Bucket="theirs")
    theirs.put_object(Bucket="theirs", Key="k", Body=b"v")
    url = theirs.generate_presigned_url("get_object", Params={"Bucket": "theirs", "Key": "k"})
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"v"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url.replace("/theirs/k", "/theirs/other"), timeout=30)
    assert info.value.code == 403
    iam.update_access_key(UserName="someone", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    assert error_of(lambda: theirs.list_buckets())[:2] == ("InvalidAccessKeyId", 403)


def test_the_fixed_testing_keys_are_taken_only_when_asked_for(braket_emulator: Any) -> None:
    def buckets(url: str) -> Any:
        client = emulator_client(
            "s3", url, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        return client.list_buckets()["Buckets"]

    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        buckets(braket_emulator.url)
    legacy = BraketEmulator(
        port=0, settings=RuntimeSettings(warm_launcher=False), legacy_test_keys=True
    )
    with legacy as url:
        assert buckets(url) == []


# ---------------------------------------------------------------------------- control API
def test_the_control_api_without_the_token_changes_nothing(braket_emulator: Any) -> None:
    before = braket_emulator.settings()
    braket_emulator.client("s3").create_bucket(Bucket="kept")
    body = json.dumps({"queue_seconds": 99, "image_commands": {"x": ["sh", "-c", "id"]}})
    for method, path in (
        ("POST", "/_emulator/settings"),
        ("POST", "/_emulator/reset"),
        ("POST", "/_emulator/faults"),
        ("GET", "/_emulator/journal"),
        ("POST", "/moto-api/reset"),
        ("GET", "/moto-api/data.json"),
    ):
        plain = {"Content-Type": "text/plain"}
        status, _, _ = send(braket_emulator.url, method, path, body.encode(), plain)
        assert status == 403, path
        wrong = {**plain, "X-Emulator-Token": "guessed"}
        assert send(braket_emulator.url, method, path, body.encode(), wrong)[0] == 403, path
    assert braket_emulator.settings() == before
    assert [b["Name"] for b in braket_emulator.client("s3").list_buckets()["Buckets"]] == ["kept"]
    status, _, answer = send(braket_emulator.url, "GET", "/_emulator/health")
    assert (status, json.loads(answer)) == (200, {"status": "ok"})  # open, and says nothing
    assert "simulators" in braket_emulator.health()  # all of it, with the token


def test_a_request_claiming_the_internal_agent_is_journaled_and_faulted(
    braket_emulator: Any,
) -> None:
    claims = Config(user_agent_extra="braket-emulator-internal", retries={"total_max_attempts": 1})
    braket = braket_emulator.client("braket", config=claims)
    braket_emulator.faults(fail={"SearchJobs": 1})
    assert error_of(lambda: braket.search_jobs(filters=[]))[:2] == ("InternalServiceException", 500)
    calls = braket_emulator.journal(operation="SearchJobs")
    assert [(c["status"], c.get("fault"), c["accessKeyId"]) for c in calls] == [
        (500, "fail", CLIENT_ACCESS_KEY)
    ]


# ---------------------------------------------------------------------------- binding, files
def test_a_non_loopback_host_is_refused_unless_bound_so_on_purpose(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from covalent_braket_plugin.cli import main

    def never(self: Any) -> str:
        raise AssertionError(f"the emulator was started on {self.host}")

    monkeypatch.setattr(BraketEmulator, "start", never)
    for host in ("0.0.0.0", "::", "192.0.2.1", "example.com"):
        with pytest.raises(ValueError, match="not a loopback address"):
            BraketEmulator(host=host)
        with pytest.raises(SystemExit) as info:
            main(["emulator", "--host", host, "--port", "0"])
        assert "--insecure-bind" in str(info.value)
    emulator = BraketEmulator(host="0.0.0.0", insecure_bind=True)  # made, never started here
    emulator.stop()
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        BraketEmulator(host=host).stop()


def test_work_directories_are_private_whatever_they_were(
    aws: Any, braket_emulator_server: Any, tmp_path: Path
) -> None:
    def mode(path: Path) -> int:
        return stat.S_IMODE(os.stat(path).st_mode)

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    emulator = BraketEmulator(work_dir=shared)
    assert mode(shared) == 0o700
    emulator.stop()
    made = BraketEmulator(work_dir=tmp_path / "new" / "work")
    assert mode(tmp_path / "new" / "work") == 0o700
    made.stop()

    assert mode(braket_emulator_server.work_dir) == 0o700
    script = upload_script(aws, "def main():\n    print('hello')\n")
    arn = aws.braket.create_job(**job_request(script))["jobArn"]
    assert wait_for(aws, arn, {"COMPLETED", "FAILED"})["status"] == "COMPLETED"
    directory = Path(braket_emulator_server.work_dir) / arn.rsplit("/", 1)[1]
    assert mode(directory) == 0o700


# ---------------------------------------------------------------------------- authorisation
def test_create_quantum_task_is_authorised_on_the_device(aws: Any) -> None:
    add_qpu(aws)
    aws.control.enforce_policy(  # the developer guide's "Restrict user access to certain devices"
        {
            "Statement": [
                {"Effect": "Allow", "Action": "braket:*", "Resource": "*"},
                {
                    "Effect": "Deny",
                    "Action": "braket:CreateQuantumTask",
                    "Resource": "arn:aws:braket:*:*:device/qpu/*",
                },
            ]
        }
    )
    from braket.aws import AwsDevice
    from braket.circuits import Circuit

    folder = (BUCKET, "tasks")
    with pytest.raises(ClientError) as info:
        AwsDevice(QPU).run(Circuit().h(0), s3_destination_folder=folder, shots=10)
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    assert QPU in info.value.response["Error"]["Message"]
    sv1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
    task = AwsDevice(sv1).run(Circuit().h(0), s3_destination_folder=folder, shots=10)
    assert sum(task.result().measurement_counts.values()) == 10


def test_a_presigned_url_that_repeats_an_auth_parameter_is_refused(braket_emulator: Any) -> None:
    """The router reads one copy of a repeated parameter and the signature check may read
    another: a presigned URL that repeats any ``X-Amz-*`` parameter is refused outright (the
    same URL with one copy of each works)."""
    import urllib.error
    import urllib.request

    from covalent_braket_plugin.emulator.aws_services.signatures import _presigned

    s3 = braket_emulator.client("s3", config=Config(signature_version="s3v4"))
    s3.create_bucket(Bucket="presigned")
    s3.put_object(Bucket="presigned", Key="k", Body=b"v")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "presigned", "Key": "k"})
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"v"
    query = urlsplit(url).query
    credential = next(p for p in query.split("&") if p.startswith("X-Amz-Credential="))
    other = credential.replace("X-Amz-Credential=", "X-Amz-Credential=AKIAOTHERKEY0000000")
    for repeated in (f"{other}&{query}", f"{query}&{credential}"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url.split("?")[0] + "?" + repeated, timeout=30)
        assert info.value.code == 403
        with pytest.raises(ValueError, match="repeats x-amz-credential"):
            _presigned(repeated)


def test_a_body_is_read_ahead_once_within_its_limit() -> None:
    import io

    from covalent_braket_plugin.emulator.wsgi import MAX_BODY, peek_body

    environ = {"CONTENT_LENGTH": "5", "wsgi.input": io.BytesIO(b"hello")}
    assert peek_body(environ) == b"hello"
    assert environ["wsgi.input"].read() == b"hello"  # put back for moto
    for length in ("not a number", "-1", str(MAX_BODY + 1), ""):
        source = io.BytesIO(b"x" * 16)
        assert peek_body({"CONTENT_LENGTH": length, "wsgi.input": source}) == b""
        assert source.tell() == 0  # nothing was read
    big = io.BytesIO(b"y" * 32)
    assert peek_body({"CONTENT_LENGTH": "32", "wsgi.input": big}, limit=None) == b"y" * 32
