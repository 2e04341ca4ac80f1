"""The pytest plugin users get: fixtures, journal, and the no-leak guarantee."""

from __future__ import annotations

import os
from typing import Any

import boto3


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
    s3.put_object(Bucket="ops", Key="a/b.txt", Body=b"x")
    s3.head_object(Bucket="ops", Key="a/b.txt")
    s3.get_object(Bucket="ops", Key="a/b.txt")["Body"].read()
    s3.list_objects_v2(Bucket="ops", Prefix="a/")
    upload = s3.create_multipart_upload(Bucket="ops", Key="big")["UploadId"]
    s3.abort_multipart_upload(Bucket="ops", Key="big", UploadId=upload)
    s3.delete_objects(Bucket="ops", Delete={"Objects": [{"Key": "a/b.txt"}]})
    assert [c["operation"] for c in braket_emulator.journal(service="s3")] == [
        "CreateBucket",
        "PutObject",
        "HeadObject",
        "GetObject",
        "ListObjectsV2",
        "CreateMultipartUpload",
        "AbortMultipartUpload",
        "DeleteObjects",
    ]

    braket_emulator.faults(fail={"GetObject": 1})
    s3.put_object(Bucket="ops", Key="c", Body=b"y")
    assert s3.get_object(Bucket="ops", Key="c")["Body"].read() == b"y"  # retried once
    gets = braket_emulator.journal(service="s3", operation="GetObject")[1:]  # after the first
    assert [(c["status"], c.get("fault")) for c in gets] == [(500, "fail"), (200, None)]


def test_s3_bodies_are_checked_against_the_checksum_sent_with_them(braket_emulator: Any) -> None:
    import base64
    import hashlib
    import zlib

    import pytest
    from botocore.exceptions import ClientError

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
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="sums")["Contents"]]
    assert sorted(keys) == ["computed", "right", "right-sha"]  # nothing stored for a bad body


def test_each_test_starts_from_a_clean_emulator(braket_emulator: Any) -> None:
    assert boto3.client("s3").list_buckets()["Buckets"] == []
    assert braket_emulator.health()["jobs"] == 0
    assert braket_emulator.settings()["queue_seconds"] == 0.0
