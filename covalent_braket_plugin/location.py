"""Where one attempt of an electron lives: its S3 prefix and objects, job name and token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from .job.runner import ATTEMPT_SEGMENT, INPUT_KEY, RESULT_KEY, checkpoints_of
from .service import JOB_NAME_MAX

#: Prefix of every object the executor writes in the bucket.
S3_PREFIX = "covalent-braket"
#: The job's script archive: the runner, and a small input beside it.
RUNNER_KEY = "runner.tar.gz"
#: The objects a task writes and its clean-up deletes (the job's own outputs are kept).
TASK_OBJECTS = (RUNNER_KEY, INPUT_KEY, RESULT_KEY)


@dataclass(frozen=True)
class TaskLocation:
    """Where attempt ``attempt`` of one electron lives: S3 prefix, job name, idempotency token.

    All three are derived from (dispatch, node, attempt), so an executor rebuilt for the same
    task (a server restart) finds the same job again. They are predictable, so they are no
    secret: what this server wrote there is told by a MAC with the attempt's key (see
    :mod:`covalent_braket_plugin.signing`). The client token here is the one older versions
    used; a fresh upload records a token of its own (see
    :class:`~covalent_braket_plugin.transfer.Upload`), so that a new run of an attempt that
    was collected and cleaned up gets a new job, not the old one back.
    """

    bucket: str
    prefix: str
    job_name: str
    client_token: str
    dispatch_id: str
    node_id: str
    attempt: int
    #: The electron's name (its function's), when known.
    node_name: str = ""

    @classmethod
    def new(
        cls, bucket: str, dispatch_id: str, node_id: Any, attempt: int = 0, node_name: str = ""
    ) -> TaskLocation:
        prefix = _attempt_prefix(dispatch_id, node_id, attempt)
        token = str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"covalent-braket:{dispatch_id}:{node_id}:{attempt}")
        )
        name = job_name(dispatch_id, node_id, attempt)
        return cls(bucket, prefix, name, token, str(dispatch_id), str(node_id), attempt, node_name)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    @property
    def checkpoint_prefix(self) -> str:
        """The electron's checkpoints (``AMZN_BRAKET_CHECKPOINT_DIR``), one prefix for all its
        attempts, so that an attempt sent again starts from what the last one saved."""
        return checkpoint_prefix(self.dispatch_id, self.node_id)

    @property
    def checkpoint_uri(self) -> str:
        return f"s3://{self.bucket}/{self.checkpoint_prefix}"


def checkpoint_prefix(dispatch_id: str, node_id: Any) -> str:
    """The checkpoints' prefix of node ``node_id`` of dispatch ``dispatch_id``."""
    return checkpoints_of(_attempt_prefix(dispatch_id, node_id, 0))


def _attempt_prefix(dispatch_id: str, node_id: Any, attempt: int) -> str:
    return f"{S3_PREFIX}/{dispatch_id}/node-{node_id}{ATTEMPT_SEGMENT}{attempt}"


def job_name(dispatch_id: str, node_id: Any, attempt: int) -> str:
    """A Braket job name that is always valid: ``[a-zA-Z0-9-]``, at most 50 characters.

    It reads ``cov-<dispatch id>-<node>-a<attempt>``, the dispatch id shortened to fit.
    """

    def clean(text: Any) -> str:
        return "".join(ch for ch in str(text) if ch.isascii() and ch.isalnum())

    tail = f"-{clean(node_id)[:12] or '0'}-a{int(attempt)}"
    room = JOB_NAME_MAX - len("cov-") - len(tail)
    return f"cov-{clean(dispatch_id)[:room] or 'x'}{tail}"
