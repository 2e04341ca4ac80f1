"""Whether a request was signed by someone who holds its access key's secret (SigV4).

The signature is computed again from the request as it arrived (its method, raw path, query,
the headers it names as signed, and the ``X-Amz-Content-SHA256`` value as the payload's hash
where it sends one) by botocore's own signers: S3's, which does not encode the path a second
time, or the other services'. Header-signed requests and presigned URLs (the signature in the
query) are both checked, and their time: 15 minutes either way, or a presigned URL's expiry.

The secrets known are the emulator's per-run credentials (the client's and the jobs', see
:mod:`.identity`), the fixed ``testing`` keys of old scripts when asked for, and the keys that
moto's IAM issued (``CreateAccessKey``, active) or its STS (``AssumeRole``: with the session's
token, until the session ends), looked up in moto's backends.
"""

from __future__ import annotations

import datetime
import hmac
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

from ..faults import EXPIRED, MISSING, UNKNOWN_KEY
from ..faults import SIGNATURE as MISMATCH
from ..wsgi import peek_body, raw_path
from .identity import (
    CLIENT_ACCESS_KEY,
    CLIENT_SECRET_KEY,
    JOB_ACCESS_KEY,
    JOB_SECRET_KEY,
    LEGACY_ACCESS_KEY,
    LEGACY_SECRET_KEY,
)

_MESSAGES = {
    MISSING: "Request is missing Authentication Token",
    UNKNOWN_KEY: "The security token included in the request is invalid.",
    MISMATCH: "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method.",
    EXPIRED: "The security token included in the request is expired",
}
_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_SKEW = datetime.timedelta(minutes=15)
_LONGEST_PRESIGNED = 7 * 24 * 3600
_HEADER_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request,"
    r"\s*SignedHeaders=([a-z0-9;_.-]+),\s*Signature=([0-9a-f]{64})\s*$"
)
_NOT_SIGV4 = "The Authorization header is not a SigV4 signature (AWS4-HMAC-SHA256)"
_SIGV2 = (
    "Signature Version 2 is not taken: sign with SigV4 (botocore: Config(signature_version='s3v4'))"
)
_CREDENTIAL_RE = re.compile(r"^([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request$")


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: the kind of error, as
    :func:`~covalent_braket_plugin.emulator.faults.error_reply` names it (``missing``,
    ``unknown_key``, ``signature``: it does not match or is out of time, ``expired``: the
    session has ended), and its message."""

    kind: str
    message: str


@dataclass(frozen=True)
class _Signed:
    """What a request says of its signature."""

    access_key: str
    region: str
    service: str
    headers: list[str]
    signature: str
    timestamp: str
    token: str | None
    #: The query as it was signed (a presigned URL's without its signature).
    query: str
    #: A presigned URL's lifetime in seconds; None for a signature in the headers.
    expires: int | None = None


class SignatureChecker:
    """Checks every request's SigV4 signature against the secrets the emulator knows.

    Args:
        legacy_test_keys: Take the fixed ``testing``/``testing`` credentials of old scripts too.
    """

    def __init__(self, legacy_test_keys: bool = False) -> None:
        self._fixed = {CLIENT_ACCESS_KEY: CLIENT_SECRET_KEY, JOB_ACCESS_KEY: JOB_SECRET_KEY}
        if legacy_test_keys:
            self._fixed[LEGACY_ACCESS_KEY] = LEGACY_SECRET_KEY

    def refusal(self, environ: dict[str, Any]) -> Refusal | None:
        """None for a request signed with a known secret, else why it is refused."""
        try:
            signed = _signed(environ)
        except ValueError as bad:
            return Refusal(MISMATCH, str(bad))
        if signed is None:
            return Refusal(MISSING, _MESSAGES[MISSING])
        secret = self._fixed.get(signed.access_key)
        if secret is None:
            secret, kind = _issued_secret(signed.access_key, signed.token)
            if secret is None:
                return Refusal(kind, _MESSAGES[kind])
        out_of_time = _out_of_time(signed)
        if out_of_time:
            return Refusal(MISMATCH, out_of_time)
        expected = _signature(environ, signed, secret)
        if not hmac.compare_digest(expected.encode(), signed.signature.encode()):
            return Refusal(MISMATCH, _MESSAGES[MISMATCH])
        return None


def _signed(environ: dict[str, Any]) -> _Signed | None:
    """The signature a request carries, in its ``Authorization`` header or its query; None
    when it carries none. Raises ValueError for one this cannot read."""
    header = environ.get("HTTP_AUTHORIZATION")
    query = environ.get("QUERY_STRING", "")
    if header is None:
        if "AWSAccessKeyId=" in query:
            raise ValueError(_SIGV2)
        return _presigned(query) if "X-Amz-Signature=" in query else None
    found = _HEADER_RE.match(header)
    if found is None:
        raise ValueError(_SIGV2 if header.startswith("AWS ") else _NOT_SIGV4)
    key, _, region, service, names, signature = found.groups()
    return _Signed(
        access_key=key,
        region=region,
        service=service,
        headers=names.split(";"),
        signature=signature,
        timestamp=_timestamp(environ),
        token=environ.get("HTTP_X_AMZ_SECURITY_TOKEN"),
        query=query,
    )


def _presigned(query: str) -> _Signed:
    """The signature of a presigned URL, from its query."""
    pairs = [pair.partition("=") for pair in query.split("&") if pair]
    names = [unquote(name).lower() for name, _, _ in pairs]
    repeated = sorted({n for n in names if n.startswith("x-amz-") and names.count(n) > 1})
    if repeated:  # the router and the check must not read different copies of one
        raise ValueError(f"The presigned URL repeats {', '.join(repeated)}")
    params = {unquote(name): unquote(value) for name, _, value in pairs}
    credential = _CREDENTIAL_RE.match(params.get("X-Amz-Credential", ""))
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or credential is None:
        raise ValueError("The presigned URL is not signed with SigV4 (AWS4-HMAC-SHA256)")
    try:
        expires = int(params.get("X-Amz-Expires", ""))
    except ValueError:
        raise ValueError("X-Amz-Expires must be a number of seconds") from None
    key, _, region, service = credential.groups()
    return _Signed(
        access_key=key,
        region=region,
        service=service,
        headers=params.get("X-Amz-SignedHeaders", "host").split(";"),
        signature=params.get("X-Amz-Signature", ""),
        timestamp=params.get("X-Amz-Date", ""),
        token=params.get("X-Amz-Security-Token"),
        query="&".join(p for p in query.split("&") if p and not p.startswith("X-Amz-Signature=")),
        expires=expires,
    )


def _timestamp(environ: dict[str, Any]) -> str:
    """The request's signing time, from ``X-Amz-Date`` or else ``Date``."""
    if environ.get("HTTP_X_AMZ_DATE"):
        return str(environ["HTTP_X_AMZ_DATE"])
    try:
        return parsedate_to_datetime(environ.get("HTTP_DATE", "")).strftime(_TIMESTAMP)
    except (TypeError, ValueError):
        raise ValueError("The request has no X-Amz-Date or Date header") from None


def _out_of_time(signed: _Signed) -> str | None:
    """Why the signature's time is not now (or its presigned URL has expired), if it is not."""
    try:
        signed_at = datetime.datetime.strptime(signed.timestamp, _TIMESTAMP).replace(
            tzinfo=datetime.timezone.utc
        )
    except ValueError:
        return f"The signing time {signed.timestamp!r} is not of the form YYYYMMDDTHHMMSSZ"
    now = datetime.datetime.now(datetime.timezone.utc)
    if signed.expires is not None:
        if not 0 < signed.expires <= _LONGEST_PRESIGNED:
            return "X-Amz-Expires must be between 1 and 604800 seconds"
        if now > signed_at + datetime.timedelta(seconds=signed.expires):
            return "Request has expired"
    elif now - signed_at > _SKEW:
        return f"Signature expired: {signed.timestamp} is now earlier than 15 minutes ago"
    if signed_at - now > _SKEW:
        return f"Signature not yet current: {signed.timestamp} is more than 15 minutes ahead"
    return None


def _issued_secret(access_key: str, token: str | None) -> tuple[str | None, str]:
    """The secret of an access key that moto's IAM or STS issued, or None and why not: a key
    unknown or inactive, or an STS session whose token differs or that has ended."""
    from moto.core.utils import utcnow
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends
    from moto.utilities.utils import PARTITION_NAMES

    for account_id, account in list(iam_backends.items()):
        for partition in PARTITION_NAMES:
            issued = account[partition].access_keys.get(access_key)
            if issued is None:
                continue
            if issued.status != "Active":
                return None, UNKNOWN_KEY
            if issued.role_arn is None:  # a user's key
                return issued.secret_access_key, ""
            sessions = sts_backends[account_id][partition].assumed_roles
            session = next((s for s in sessions if s.access_key_id == access_key), None)
            if session is None or not hmac.compare_digest(
                (token or "").encode(), session.session_token.encode()
            ):
                return None, UNKNOWN_KEY
            if session.expiration < utcnow():
                return None, EXPIRED
            return issued.secret_access_key, ""
    return None, UNKNOWN_KEY


def _signature(environ: dict[str, Any], signed: _Signed, secret: str) -> str:
    """The signature botocore's signer makes of the request as it arrived."""
    from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    presigned = signed.expires is not None
    signer_class = {
        (True, True): S3SigV4QueryAuth,  # payload: UNSIGNED-PAYLOAD
        (True, False): S3SigV4Auth,  # the path as it is
        (False, True): SigV4QueryAuth,
        (False, False): SigV4Auth,  # the path encoded again
    }[(signed.service == "s3", presigned)]
    signer = signer_class(Credentials(signed.access_key, secret), signed.service, signed.region)
    headers = {name: _header(environ, name) for name in signed.headers}
    hashed = "x-amz-content-sha256" in headers or (presigned and signed.service == "s3")
    host = headers.get("host") or environ.get("HTTP_HOST", "")
    query = f"?{signed.query}" if signed.query else ""
    request = AWSRequest(
        method=environ.get("REQUEST_METHOD", "GET"),
        url=f"http://{host}{raw_path(environ)}{query}",
        headers=headers,
        data=b"" if hashed else peek_body(environ),
    )
    request.context["timestamp"] = signed.timestamp
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))


def _header(environ: dict[str, Any], name: str) -> str:
    """A request header's value by its (lower-case) name, as WSGI keeps it."""
    key = name.upper().replace("-", "_")
    if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        key = "HTTP_" + key
    value = str(environ.get(key, ""))
    try:  # WSGI decodes headers as Latin-1; the client signed them as text
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value
