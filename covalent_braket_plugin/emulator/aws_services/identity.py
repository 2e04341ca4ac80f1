"""Who is calling: the SigV4 credential scope of a request, the account it belongs to, and
the emulator's credentials.

Accounts are told apart as moto tells them (``MOTO_ACCOUNT_ID``, an ``x-moto-account-id``
header, or an access key that moto's IAM or STS issued to another account), so that the
Braket state a request sees is that of the same account as its S3 buckets and IAM roles.

The client and job credentials are made afresh, at random, by every process that imports this
module: an emulator in the same process as the tools (the pytest plugin, the demo) agrees with
them; an emulator in a process of its own prints its own (``covalent-braket emulator``). The
emulator checks every request's signature against them (see :mod:`.signatures`).
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

#: moto's default account, which every unknown access key belongs to.
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _access_key_id() -> str:
    """A new access key id, shaped like AWS's (``AKIA`` and 16 characters)."""
    return "AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))


#: The credentials clients of the emulator sign with (tests, the demo, a user's shell).
CLIENT_ACCESS_KEY = _access_key_id()
CLIENT_SECRET_KEY = secrets.token_urlsafe(30)
#: The credentials inside emulated jobs, which the emulator's own calls use too: the job's
#: role, a principal of its own (its calls are told apart from the client's in the journal).
JOB_ACCESS_KEY = _access_key_id()
JOB_SECRET_KEY = secrets.token_urlsafe(30)
#: The fixed credentials of old scripts, taken only when the emulator is told to
#: (``--legacy-test-keys``).
LEGACY_ACCESS_KEY = "testing"
LEGACY_SECRET_KEY = "testing"

#: The header that carries the emulator's per-run token: its own clients send it (their calls
#: are neither faulted nor journaled), and the control API (``/_emulator``, ``/moto-api``)
#: needs it.
TOKEN_HEADER = "X-Emulator-Token"
#: Where the tools find a separate emulator's token (``covalent-braket emulator`` prints it).
TOKEN_ENV = "BRAKET_EMULATOR_TOKEN"

_SCOPE_RE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True)
class Scope:
    """The SigV4 credential scope of a signed request."""

    access_key: str
    region: str
    service: str


def scope_of(environ: dict[str, Any]) -> Scope | None:
    """The credential scope of a request, signed in its ``Authorization`` header or in its
    query (a presigned URL), or None for an unsigned one."""
    found = _SCOPE_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if found is None and "X-Amz-Credential=" in environ.get("QUERY_STRING", ""):
        credential = parse_qs(environ["QUERY_STRING"]).get("X-Amz-Credential", [""])[0]
        found = _SCOPE_RE.search("Credential=" + credential)
    return Scope(*found.groups()) if found else None


def account_of(environ: dict[str, Any], access_key: str) -> str:
    """The account a request acts in, decided as moto decides it."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return str(environ["HTTP_X_MOTO_ACCOUNT_ID"])
    from moto.iam.models import get_account_id_from

    return get_account_id_from(access_key)
