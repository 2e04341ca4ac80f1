"""S3 as moto serves it, with what S3 does and moto does not: operations named for the
journal and for named faults, bodies checked against their checksum headers (``BadDigest``),
bucket listings that survive a concurrent write, and new buckets encrypted and closed to the
public as S3 makes them."""

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
from xml.sax.saxutils import escape

from ..wsgi import StartResponse, peek_body
from .identity import Scope

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
    body = peek_body(environ, limit=None)  # put back for moto, which reads it again
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

    def __init__(
        self,
        app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
        undeletable: Callable[[], list[str]] = list,
    ) -> None:
        self.app = app
        #: The fault that makes keys undeletable (see ``FaultSettings.undeletable``).
        self.undeletable = undeletable
        #: Each bucket's lifecycle ``TransitionDefaultMinimumObjectSize`` (moto keeps none).
        self.minimum_sizes: dict[str, str] = {}

    def __call__(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        scope: Scope | None,
        internal: bool = False,
    ) -> Iterable[bytes]:
        s3 = scope is not None and scope.service == "s3"
        method = environ.get("REQUEST_METHOD")
        if s3 and not internal:
            refusal = _ownership_refusal(environ, scope)
            if refusal:
                return _error(start_response, "403 Forbidden", "AccessDenied", refusal)
        if s3 and method == "PUT":
            mismatch = _checksum_mismatch(environ)
            if mismatch:  # as S3 answers; moto stores the body whatever its checksum says
                return _error(start_response, "400 Bad Request", "BadDigest", mismatch)
        if s3 and method == "PUT" and operation(environ) == "CreateBucket":
            return _created_as_s3_creates(self.app, environ, start_response)
        if s3 and not internal and method == "POST" and operation(environ) == "DeleteObjects":
            kept = self.undeletable()
            if kept:
                return _delete_all_but(self.app, environ, start_response, kept)
        if s3 and _is_lifecycle(environ) and method in ("PUT", "GET", "DELETE"):
            return self._lifecycle(environ, start_response, method)
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

    def _lifecycle(
        self, environ: dict[str, Any], start_response: StartResponse, method: str
    ) -> Iterable[bytes]:
        """A bucket's lifecycle configuration through moto, with its
        ``TransitionDefaultMinimumObjectSize`` kept as S3 keeps it: a PUT sets the one its
        header names, or S3's default (``all_storage_classes_128K``) when it names none, and
        answers with it; a GET answers with the one set; a DELETE forgets it."""
        bucket = bucket_of(environ) or ""
        status: list[str] = []
        given = environ.get(_MINIMUM_SIZE_ENVIRON) or _DEFAULT_MINIMUM_SIZE

        def with_size(code: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            status.append(code)
            headers = [(k, v) for k, v in headers if k.lower() != _MINIMUM_SIZE_HEADER]
            if code.startswith("200") and method != "DELETE":
                size = given if method == "PUT" else self.minimum_sizes.get(bucket)
                headers.append((_MINIMUM_SIZE_HEADER, size or _DEFAULT_MINIMUM_SIZE))
            return start_response(code, headers, *args)

        reply = list(self.app(environ, with_size))
        if status and status[0][:1] == "2":
            if method == "PUT":
                self.minimum_sizes[bucket] = given
            elif method == "DELETE":
                self.minimum_sizes.pop(bucket, None)
        return reply


#: S3's header for a lifecycle configuration's minimum object size for transitions, and the
#: value a configuration that names none gets (S3's default since September 2024).
_MINIMUM_SIZE_HEADER = "x-amz-transition-default-minimum-object-size"
_MINIMUM_SIZE_ENVIRON = "HTTP_X_AMZ_TRANSITION_DEFAULT_MINIMUM_OBJECT_SIZE"
_DEFAULT_MINIMUM_SIZE = "all_storage_classes_128K"


def _is_lifecycle(environ: dict[str, Any]) -> bool:
    """A bucket's ``?lifecycle`` subresource."""
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return "lifecycle" in query


_S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def _delete_all_but(
    app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
    environ: dict[str, Any],
    start_response: StartResponse,
    kept: list[str],
) -> Iterable[bytes]:
    """``DeleteObjects`` with the keys that contain any of ``kept`` refused, as S3 refuses a
    key it may not delete (a bucket policy, Object Lock): still HTTP 200, the key left in
    place, and an ``<Error>`` for it in the answer, which quiet mode does not leave out."""
    import xml.etree.ElementTree as ElementTree

    try:
        request = ElementTree.fromstring(peek_body(environ, limit=None))
    except ElementTree.ParseError:
        return app(environ, start_response)  # moto answers a malformed request its way
    refused = []
    for item in list(request):
        key = item.findtext(f"{{{_S3_NS}}}Key") or item.findtext("Key")
        if item.tag.endswith("Object") and key and any(part in key for part in kept):
            refused.append(key)
            request.remove(item)
    errors = "".join(
        f"<Error><Key>{escape(key)}</Key><Code>AccessDenied</Code>"
        "<Message>Access Denied</Message></Error>"
        for key in refused
    )
    if not any(item.tag.endswith("Object") for item in request):
        body = f'<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="{_S3_NS}">{errors}'
        body = (body + "</DeleteResult>").encode()
        start_response("200 OK", [("Content-Type", "application/xml"), _length(body)])
        return [body]
    ElementTree.register_namespace("", _S3_NS)  # written back as sent: no ns0: prefixes
    rest = ElementTree.tostring(request)
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(rest), str(len(rest))
    for header in [h for h in environ if h.startswith(("HTTP_CONTENT_MD5", "HTTP_X_AMZ_CHECKSUM"))]:
        del environ[header]  # the body changed: its digests with it
    answered: list[Any] = []
    reply = b"".join(app(environ, lambda status, headers, *_: answered.extend([status, headers])))
    if errors and answered and answered[0].startswith("200"):
        reply = reply.replace(b"</DeleteResult>", errors.encode() + b"</DeleteResult>", 1)
    status, headers = answered or ["500 Internal Server Error", []]
    headers = [(n, v) for n, v in headers if n.lower() != "content-length"] + [_length(reply)]
    start_response(status, headers)
    return [reply]


def _length(body: bytes) -> tuple[str, str]:
    return ("Content-Length", str(len(body)))


#: What S3 gives every new bucket (since January and April 2023): SSE-S3 default encryption
#: and Block Public Access on all four counts. moto gives a new bucket neither.
NEW_BUCKET_ENCRYPTION = {
    "Rule": {
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
        "BucketKeyEnabled": "false",
    }
}
NEW_BUCKET_PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": "true",
    "IgnorePublicAcls": "true",
    "BlockPublicPolicy": "true",
    "RestrictPublicBuckets": "true",
}


def _created_as_s3_creates(
    app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
    environ: dict[str, Any],
    start_response: StartResponse,
) -> Iterable[bytes]:
    """CreateBucket through moto, then the defaults S3 gives a new bucket."""
    from moto.s3.models import s3_backends

    status: list[str] = []

    def recording(code: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        status.append(code)
        return start_response(code, headers, *args)

    reply = list(app(environ, recording))
    bucket = bucket_of(environ)
    owner = s3_backends.bucket_accounts.get(bucket or "")
    if status and status[0].startswith("200") and owner is not None:
        backend = s3_backends[owner[1]][owner[0]]
        created = backend.get_bucket(bucket)
        if created.encryption is None:
            backend.put_bucket_encryption(bucket, NEW_BUCKET_ENCRYPTION)
        if created.public_access_block is None:
            backend.put_public_access_block(bucket, NEW_BUCKET_PUBLIC_ACCESS_BLOCK)
    return reply


def _error(start_response: StartResponse, status: str, code: str, message: str) -> list[bytes]:
    body = (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
    start_response(
        status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
    )
    return [body]


def bucket_of(environ: dict[str, Any]) -> str | None:
    """The bucket a request names, virtual-hosted or path-style."""
    bucket = _virtual_bucket(environ.get("HTTP_HOST", ""))
    if bucket:
        return bucket
    return environ.get("PATH_INFO", "").lstrip("/").partition("/")[0] or None


def _ownership_refusal(environ: dict[str, Any], scope: Any) -> str | None:
    """Why S3 refuses a request for another account's bucket, or None.

    A request that names an ``x-amz-expected-bucket-owner`` other than the bucket's owner is
    refused; so is any request from another account than the owner's (the emulator keeps no
    bucket policies that could grant one). Creating a bucket whose name is taken is left to
    moto (``BucketAlreadyExists``).
    """
    from moto.s3.models import s3_backends

    from .identity import account_of

    bucket = bucket_of(environ)
    if not bucket:
        return None
    owner = s3_backends.bucket_accounts.get(bucket)
    if owner is None:
        return None
    owner_account = owner[1]
    expected = environ.get("HTTP_X_AMZ_EXPECTED_BUCKET_OWNER")
    if expected and expected != owner_account:
        return "Access Denied"
    creating = environ.get("REQUEST_METHOD") == "PUT" and operation(environ) == "CreateBucket"
    if not creating and account_of(environ, scope.access_key) != owner_account:
        return "Access Denied"
    return None
