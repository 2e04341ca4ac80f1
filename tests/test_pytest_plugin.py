"""The pytest plugin users get: fixtures, journal, and the no-leak guarantee."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError


def test_fixture_points_aws_at_the_emulator_and_nowhere_else(braket_emulator: Any) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == braket_emulator.url
    assert braket_emulator.url.startswith("http://127.0.0.1:")
    assert os.environ["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    assert "AWS_PROFILE" not in os.environ
    client = boto3.client("s3")
    assert client.meta.endpoint_url == braket_emulator.url


def test_journal_records_what_went_over_the_wire(braket_emulator: Any) -> None:
    assert braket_emulator.journal() == []
    boto3.client("s3").create_bucket(Bucket="journal-bucket")
    braket = boto3.client("braket")
    braket.search_jobs(filters=[])
    try:
        braket.get_job(jobArn="arn:aws:braket:us-east-1:123456789012:job/missing")
    except braket.exceptions.ResourceNotFoundException:
        pass
    calls = braket_emulator.journal(service="braket")
    assert [(c["operation"], c["status"]) for c in calls] == [("SearchJobs", 200), ("GetJob", 404)]
    assert calls[1]["error"] == "ResourceNotFoundException"
    assert [c["method"] for c in braket_emulator.journal(service="s3")] == ["PUT"]
    braket_emulator.clear_journal()
    assert braket_emulator.journal() == []


def test_journal_names_s3_operations_and_faults_can_target_them(braket_emulator: Any) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="ops")
    s3.list_buckets()
    s3.put_object(Bucket="ops", Key="a/b.txt", Body=b"x")
    s3.head_object(Bucket="ops", Key="a/b.txt")
    s3.get_object(Bucket="ops", Key="a/b.txt", ResponseContentType="text/plain")["Body"].read()
    s3.copy_object(Bucket="ops", Key="a/c.txt", CopySource={"Bucket": "ops", "Key": "a/b.txt"})
    s3.list_objects_v2(Bucket="ops", Prefix="a/")
    upload = s3.create_multipart_upload(Bucket="ops", Key="big")["UploadId"]
    s3.upload_part_copy(
        Bucket="ops",
        Key="big",
        UploadId=upload,
        PartNumber=1,
        CopySource={"Bucket": "ops", "Key": "a/b.txt"},
    )
    s3.abort_multipart_upload(Bucket="ops", Key="big", UploadId=upload)
    s3.delete_objects(Bucket="ops", Delete={"Objects": [{"Key": "a/b.txt"}]})
    with pytest.raises(ClientError):
        s3.get_object(Bucket="ops", Key="a/b.txt")
    assert [c["operation"] for c in braket_emulator.journal(service="s3")] == [
        "CreateBucket",
        "ListBuckets",
        "PutObject",
        "HeadObject",
        "GetObject",
        "CopyObject",
        "ListObjectsV2",
        "CreateMultipartUpload",
        "UploadPartCopy",
        "AbortMultipartUpload",
        "DeleteObjects",
        "GetObject",
    ]
    assert braket_emulator.journal(service="s3")[-1]["error"] == "NoSuchKey"  # from the XML

    braket_emulator.faults(fail={"GetObject": 1})
    s3.put_object(Bucket="ops", Key="c", Body=b"y")
    assert s3.get_object(Bucket="ops", Key="c")["Body"].read() == b"y"  # retried once
    gets = braket_emulator.journal(service="s3", operation="GetObject")[-2:]  # the latest
    assert [(c["status"], c.get("fault")) for c in gets] == [(500, "fail"), (200, None)]


def test_a_held_call_waits_until_the_hold_is_changed(braket_emulator: Any) -> None:
    """``hold``: the call is in flight (``held`` counts it) and carried out only once let go."""
    import threading

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="held")
    braket_emulator.faults(hold={"PutObject": 1})
    call = threading.Thread(
        target=s3.put_object, kwargs={"Bucket": "held", "Key": "k", "Body": b"x"}
    )
    call.start()
    while braket_emulator.faults()["held"] == 0:
        call.join(0.05)
    assert "Contents" not in s3.list_objects_v2(Bucket="held")  # not carried out yet
    braket_emulator.faults(hold={})
    call.join(30)
    assert not call.is_alive() and braket_emulator.faults()["held"] == 0
    assert s3.get_object(Bucket="held", Key="k")["Body"].read() == b"x"


def test_virtual_hosted_s3_requests_are_named_like_path_style_ones() -> None:
    from covalent_braket_plugin.emulator.aws_services.s3 import operation

    def named(method: str, host: str, path: str, query: str = "", **headers: str) -> Any:
        environ = {"REQUEST_METHOD": method, "HTTP_HOST": host, "PATH_INFO": path}
        return operation({**environ, "QUERY_STRING": query, **headers})

    for host, prefix in (
        ("127.0.0.1:5000", "/ops"),
        ("ops.localhost:5000", ""),
        ("ops.s3.us-east-1.amazonaws.com", ""),
    ):
        assert named("PUT", host, f"{prefix}/a/b.txt", "x-id=PutObject") == "PutObject"
        assert named("GET", host, f"{prefix}/a/b.txt", "versionId=null") == "GetObject"
        assert named("GET", host, f"{prefix}/", "list-type=2&prefix=a") == "ListObjectsV2"
        assert named("GET", host, f"{prefix}/", "versions") == "ListObjectVersions"
        assert named("HEAD", host, prefix or "/") == "HeadBucket"
        assert named("GET", host, f"{prefix}/k", "tagging") is None
    assert named("GET", "127.0.0.1:5000", "/") == "ListBuckets"


def test_s3_bodies_are_checked_against_the_checksum_sent_with_them(braket_emulator: Any) -> None:
    import base64
    import hashlib
    import http.client
    import zlib
    from urllib.parse import urlsplit

    from covalent_braket_plugin.testing import signed_headers

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="sums")
    body = b"quantum" * 1000
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    s3.put_object(Bucket="sums", Key="right", Body=body, ChecksumCRC32=crc)
    assert s3.get_object(Bucket="sums", Key="right")["Body"].read() == body
    sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
    s3.put_object(Bucket="sums", Key="right-sha", Body=body, ChecksumSHA256=sha)
    s3.put_object(Bucket="sums", Key="computed", Body=body)  # botocore's own checksum
    upload = s3.create_multipart_upload(Bucket="sums", Key="parts")["UploadId"]
    for name, value in (("ChecksumCRC32", crc[::-1]), ("ChecksumSHA256", sha[:-4] + "AAA=")):
        with pytest.raises(ClientError, match="BadDigest"):
            s3.put_object(Bucket="sums", Key="wrong", Body=body, **{name: value})
    with pytest.raises(ClientError, match="BadDigest"):
        s3.upload_part(
            Bucket="sums",
            Key="parts",
            UploadId=upload,
            PartNumber=1,
            Body=body,
            ChecksumCRC32="AAAAAA==",
        )
    refused = [c for c in braket_emulator.journal(service="s3") if c["status"] == 400]
    assert [c["error"] for c in refused] == ["BadDigest"] * 3

    # A body of no stated length (HTTP chunked) is streamed to the store, not judged empty.
    url = urlsplit(braket_emulator.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = signed_headers(
        "PUT",
        f"{braket_emulator.url}/sums/chunked",
        "s3",
        headers={"x-amz-checksum-crc32": crc},
        unsigned_payload=True,  # the body's hash is not known before it is streamed
    )
    headers["Transfer-Encoding"] = "chunked"
    chunks = iter([body[:3000], body[3000:]])
    connection.request("PUT", "/sums/chunked", body=chunks, headers=headers, encode_chunked=True)
    assert connection.getresponse().status == 200
    connection.close()
    assert s3.get_object(Bucket="sums", Key="chunked")["Body"].read() == body

    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="sums")["Contents"]]
    assert sorted(keys) == ["chunked", "computed", "right", "right-sha"]  # none of a bad body


def test_a_listing_that_meets_a_concurrent_write_is_listed_again(
    braket_emulator: Any, braket_emulator_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto walks a bucket's keys unguarded: a put or delete meanwhile breaks the walk (as it
    did, rarely, under 500 concurrent jobs). The emulator lists again; writes are not
    repeated."""
    from botocore.config import Config

    front = braket_emulator_server.app.moto  # moto, behind the S3 behaviour it lacks
    moto = front.app
    broken: list[str] = []

    def walk_broken_by_a_write(environ: dict[str, Any], start_response: Any) -> Any:
        if len(broken) < 2:
            broken.append(environ["REQUEST_METHOD"])
            raise KeyError("covalent-braket/d/node-1/attempt-0/result.pkl")  # deleted meanwhile
        return moto(environ, start_response)

    s3 = boto3.client("s3", config=Config(retries={"total_max_attempts": 1}))
    s3.create_bucket(Bucket="walk")
    s3.put_object(Bucket="walk", Key="a", Body=b"x")
    monkeypatch.setattr(front, "app", walk_broken_by_a_write)
    assert [item["Key"] for item in s3.list_objects_v2(Bucket="walk")["Contents"]] == ["a"]
    assert broken == ["GET", "GET"]  # broken twice, answered on the third walk
    broken.clear()
    with pytest.raises(ClientError):  # a write is never done twice by the emulator
        s3.put_object(Bucket="walk", Key="b", Body=b"y")
    assert broken == ["PUT"]


def test_each_test_starts_from_a_clean_emulator(braket_emulator: Any) -> None:
    assert boto3.client("s3").list_buckets()["Buckets"] == []
    assert braket_emulator.health()["jobs"] == 0
    assert braket_emulator.settings()["queue_seconds"] == 0.0


def test_control_clients_share_one_session_and_its_models(braket_emulator: Any) -> None:
    from covalent_braket_plugin.pytest_plugin import EmulatorControl

    s3 = braket_emulator.client("s3")
    other = EmulatorControl(braket_emulator.url, region="eu-west-2").client("braket")
    assert other.meta.region_name == "eu-west-2" and other.meta.endpoint_url == braket_emulator.url
    assert s3._loader is other._loader  # each model read once, not once per test's clients
    assert s3.list_buckets()["Buckets"] == []
