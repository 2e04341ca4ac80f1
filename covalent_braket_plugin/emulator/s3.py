"""S3 as moto serves it, with what S3 does and moto does not: operations named for the
journal and for named faults, bodies checked against their checksum headers (``BadDigest``),
and bucket listings that survive a concurrent write."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from .identity import Scope

StartResponse = Callable[..., Any]

#: Query parameters that leave the S3 operation as it is (the SDKs' operation hint, a version,
#: a part of an object, the reply's headers).
_PLAIN_QUERY = {"x-id", "versionId", "partNumber"}


#: S3 listings, which moto computes by walking a bucket's keys (see :class:`MotoFront`).
_LISTINGS = {"ListObjects", "ListObjectsV2", "ListObjectVersions", "ListMultipartUploads"}
_LISTING_ATTEMPTS = 10
_S3_ERROR_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")


def _virtual_bucket(host: str) -> str | None:
    """The bucket a virtual-hosted request names in its host (``bucket.localhost:port``,
    ``bucket.s3.<region>.amazonaws.com``), or None for a path-style one."""
    name = host.rsplit(":", 1)[0].lower()
    for suffix in (".localhost", ".s3.amazonaws.com"):
        if name.endswith(suffix):
            return name[: -len(suffix)] or None
    bucket, found, _ = name.partition(".s3.")
    return bucket if found and bucket else None


def operation(environ: dict[str, Any]) -> str | None:
    """The S3 operation of a request, path-style (``/bucket[/key]``) or virtual-hosted, for
    the journal and for named faults; None for the subresources this does not name."""
    method = environ.get("REQUEST_METHOD", "")
    query = {
        name: value
        for name, value in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()
        if name not in _PLAIN_QUERY and not name.startswith("response-")
    }
    path = environ.get("PATH_INFO", "").lstrip("/")
    bucket = _virtual_bucket(environ.get("HTTP_HOST", ""))
    if bucket:
        key = path
    else:
        bucket, _, key = path.partition("/")
    copy = bool(environ.get("HTTP_X_AMZ_COPY_SOURCE"))
    if not bucket:
        return "ListBuckets" if method == "GET" and not query else None
    if key:
        if "uploadId" in query:
            return {
                "PUT": "UploadPartCopy" if copy else "UploadPart",
                "POST": "CompleteMultipartUpload",
                "DELETE": "AbortMultipartUpload",
                "GET": "ListParts",
            }.get(method)
        if "uploads" in query:
            return "CreateMultipartUpload" if method == "POST" else None
        if query:  # tagging, acl, retention, ...
            return None
        if method == "PUT":
            return "CopyObject" if copy else "PutObject"
        return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method)
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    if method == "GET":
        if "list-type" in query:
            return "ListObjectsV2"
        if "uploads" in query:
            return "ListMultipartUploads"
        if "versions" in query:
            return "ListObjectVersions"
        return (
            None
            if query.keys() - {"prefix", "delimiter", "marker", "max-keys", "encoding-type"}
            else "ListObjects"
        )
    if not query:
        return {"HEAD": "HeadBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(method)
    return None


#: The ``x-amz-checksum-*`` headers S3 checks a body against, with how each is computed.
_CHECKSUMS: dict[str, Callable[[bytes], bytes]] = {
    "crc32": lambda body: zlib.crc32(body).to_bytes(4, "big"),
    "sha1": lambda body: hashlib.sha1(body).digest(),
    "sha256": lambda body: hashlib.sha256(body).digest(),
}


def _checksum_mismatch(environ: dict[str, Any]) -> str | None:
    """What S3 would say of a PUT whose body does not match the checksum header sent with it
    (``BadDigest``), or None. Bodies in ``aws-chunked`` encoding carry theirs in a trailer,
    and bodies of no stated length are streamed: both are passed over, untouched."""
    sent = {
        name: environ[header]
        for name in _CHECKSUMS
        if (header := f"HTTP_X_AMZ_CHECKSUM_{name.upper()}") in environ
    }
    if not sent or "aws-chunked" in environ.get("HTTP_CONTENT_ENCODING", ""):
        return None
    if not environ.get("CONTENT_LENGTH"):
        return None
    length = int(environ["CONTENT_LENGTH"])
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)  # for moto, which reads it again
    for name, value in sent.items():
        if base64.b64encode(_CHECKSUMS[name](body)).decode() != value:
            return f"The {name.upper()} you specified did not match the calculated checksum."
    return None


def error_code(body: bytes) -> str | None:
    """The error code of an S3 error answer (S3 names it in the XML body, not in a header)."""
    found = _S3_ERROR_CODE.search(body[:_MAX_ERROR_BODY])
    return found.group(1).decode("utf-8", "replace") if found else None


_MAX_ERROR_BODY = 16 * 1024 * 1024


class MotoFront:
    """moto's server app, behind the S3 behaviour it lacks.

    Args:
        app: moto's WSGI application (every service but Braket).
    """

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse, scope: Scope | None
    ) -> Iterable[bytes]:
        s3 = scope is not None and scope.service == "s3"
        method = environ.get("REQUEST_METHOD")
        if s3 and method == "PUT":
            mismatch = _checksum_mismatch(environ)
            if mismatch:  # as S3 answers; moto stores the body whatever its checksum says
                body = (
                    "<?xml version='1.0' encoding='UTF-8'?><Error><Code>BadDigest</Code>"
                    f"<Message>{mismatch}</Message></Error>"
                ).encode()
                headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
                start_response("400 Bad Request", headers)
                return [body]
        if s3 and method == "GET" and operation(environ) in _LISTINGS:
            # moto lists a bucket by walking its key dict unguarded: a key put or deleted by
            # another request meanwhile breaks the walk (KeyError, RuntimeError) where S3
            # gives a listing. A listing has no body and changes nothing: list again.
            for _ in range(_LISTING_ATTEMPTS - 1):
                try:
                    return self.app(environ, start_response)
                except (KeyError, RuntimeError):
                    time.sleep(0.005)
        return self.app(environ, start_response)
