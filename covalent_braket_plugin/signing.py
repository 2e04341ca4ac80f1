"""The server's secret and what it signs: each attempt's key, and the MAC of its uploads.

The secret is 32 random bytes in a file beside Covalent's ``covalent.conf``, private to the
server's user: made once, read (its owner and mode checked) once per process. From it each
attempt of a task gets a key of its own, HMAC-SHA256 over a fixed label, the task's URI and
its job name. The key goes to the job as a hyperparameter (which the job role cannot read
back: only ``braket:GetJob`` shows it), so that the job runner signs its ``result.pkl`` with
it; the executor signs the metadata of its own uploads with it, so that an object another
job planted at an attempt's prefix is never taken for the executor's own.

The result's MAC is the job runner's (:func:`covalent_braket_plugin.job.runner.result_mac`):
the runner is stdlib only and cannot import this module.

Everything here may block (a file read): the executor calls it on its I/O threads.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import threading
import time

#: The secret's file, in Covalent's configuration directory.
SECRET_FILE = "covalent-braket-secret"
#: The secret's length.
SECRET_BYTES = 32
#: How long a reader waits for a secret file another process is still writing.
_CREATION_SECONDS = 5.0
#: Labels that keep the MACs of one key apart (a MAC of one kind is never one of another).
_ATTEMPT_LABEL = "covalent-braket attempt key 1"
_UPLOAD_LABEL = "covalent-braket upload 1"

_secrets: dict[str, bytes] = {}
_lock = threading.Lock()


class SecretFileError(RuntimeError):
    """The server's secret file cannot be trusted or read (its path and the fix are named)."""


def config_dir() -> str:
    """The directory of Covalent's ``covalent.conf``, as covalent 0.240 finds it:
    ``$COVALENT_CONFIG_DIR``, else ``$XDG_CONFIG_DIR``, else ``~/.config/covalent``."""
    home = os.environ.get("HOME") or os.path.expanduser("~")
    return (
        os.environ.get("COVALENT_CONFIG_DIR")
        or os.environ.get("XDG_CONFIG_DIR")
        or os.path.join(home, ".config", "covalent")
    )


def secret_path() -> str:
    """Where the server's secret is kept."""
    return os.path.join(config_dir(), SECRET_FILE)


def secret() -> bytes:
    """The server's secret: read once per process (made first if there is none).

    Raises:
        SecretFileError: the file is not this user's, others may read or write it, or it is
            damaged.
    """
    path = secret_path()
    with _lock:
        found = _secrets.get(path)
        if found is None:
            found = _secrets[path] = _load_or_create(path)
    return found


def _load_or_create(path: str) -> bytes:
    """Make the secret file atomically (``O_CREAT | O_EXCL``, mode 0600); if it is there
    already (made earlier, or by another process at the same moment), read it."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return _read_complete(path)
    except OSError as exc:
        raise SecretFileError(
            f"cannot create the Braket executor's secret {path}: {exc}. Make its directory "
            "writable by this user, or point COVALENT_CONFIG_DIR at one that is"
        ) from exc
    made = os.urandom(SECRET_BYTES)
    with os.fdopen(handle, "wb") as file:
        file.write(made)
        file.flush()
        os.fsync(file.fileno())
    return made


def _read_complete(path: str) -> bytes:
    """The secret in ``path``, waiting a moment for a file another process is writing."""
    deadline = time.monotonic() + _CREATION_SECONDS
    while True:
        data = _read_checked(path)
        if len(data) == SECRET_BYTES:
            return data
        if len(data) > SECRET_BYTES or time.monotonic() > deadline:
            raise SecretFileError(
                f"the Braket executor's secret {path} holds {len(data)} bytes, not "
                f"{SECRET_BYTES}: it is damaged. Delete it and a new one is made (the results "
                "of tasks in flight are then refused, as they can no longer be authenticated)"
            )
        time.sleep(0.01)


def _read_checked(path: str) -> bytes:
    """The bytes of ``path`` once its owner and mode are found fit for a secret."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise SecretFileError(
            f"cannot read the Braket executor's secret {path}: {exc}. It must be a regular "
            "file of this user's with mode 0600; delete it and a new one is made"
        ) from exc
    with os.fdopen(handle, "rb") as file:
        _check(path, os.fstat(file.fileno()))
        return file.read(SECRET_BYTES + 1)


def _check(path: str, found: os.stat_result) -> None:
    """Refuse a secret file that is not a regular file, not this user's, or not private."""
    if not stat.S_ISREG(found.st_mode):
        problem, fix = "is not a regular file", f"remove it (rm -r {path})"
    elif found.st_uid != os.getuid():
        problem = f"is owned by uid {found.st_uid}, not by this user (uid {os.getuid()})"
        fix = f"delete it (rm {path}) and a new one is made"
    elif found.st_mode & 0o077:
        problem = f"may be used by group or others (mode {oct(stat.S_IMODE(found.st_mode))})"
        fix = (
            f"run chmod 600 {path}; if anyone else may have read it, delete it instead and a "
            "new one is made"
        )
    else:
        return
    raise SecretFileError(
        f"the Braket executor's secret {path} {problem}; it must be this user's alone "
        f"(mode 0600), or anyone who can read it may forge task results: {fix}"
    )


def attempt_key(task_uri: str, job_name: str) -> bytes:
    """The key of one attempt of a task: HMAC-SHA256 with the server's secret over a fixed
    label, the attempt's ``s3://`` URI and its job name."""
    named = json.dumps([_ATTEMPT_LABEL, task_uri, job_name]).encode()
    return hmac.new(secret(), named, hashlib.sha256).digest()


def upload_mac(key: bytes, sha256: str, client_token: str) -> str:
    """The MAC (hex) of an upload's recorded digest and client token, with the attempt's key."""
    signed = json.dumps([_UPLOAD_LABEL, sha256, client_token]).encode()
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def upload_mac_ok(key: bytes, sha256: str, client_token: str, mac: str) -> bool:
    """Whether ``mac`` is this server's MAC of the upload's digest and token."""
    expected = upload_mac(key, sha256, client_token).encode()
    return hmac.compare_digest(expected, mac.encode("utf-8", "replace"))
