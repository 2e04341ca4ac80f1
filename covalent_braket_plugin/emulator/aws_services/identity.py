"""Who is calling: the SigV4 credential scope of a request, the account it belongs to, and
the emulator's dummy credentials.

Accounts are told apart as moto tells them (``MOTO_ACCOUNT_ID``, an ``x-moto-account-id``
header, or an access key that moto's IAM or STS issued to another account), so that the
Braket state a request sees is that of the same account as its S3 buckets and IAM roles.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

#: moto's default account, which every unknown access key belongs to.
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
#: The dummy credentials clients of the emulator sign with (tests, the demo, a user's shell).
CLIENT_ACCESS_KEY = "testing"
CLIENT_SECRET_KEY = "testing"
#: The credentials inside emulated jobs, which the emulator's own calls use too: the job's
#: role, a principal of its own (its calls are told apart from the client's in the journal).
JOB_ACCESS_KEY = "emulator"
JOB_SECRET_KEY = "emulator"

_SCOPE_RE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True)
class Scope:
    """The SigV4 credential scope of a signed request."""

    access_key: str
    region: str
    service: str


def scope_of(environ: dict[str, Any]) -> Scope | None:
    """The credential scope of a request, or None for an unsigned one."""
    found = _SCOPE_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return Scope(*found.groups()) if found else None


def account_of(environ: dict[str, Any], access_key: str) -> str:
    """The account a request acts in, decided as moto decides it."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return str(environ["HTTP_X_MOTO_ACCOUNT_ID"])
    from moto.iam.models import get_account_id_from

    return get_account_id_from(access_key)
