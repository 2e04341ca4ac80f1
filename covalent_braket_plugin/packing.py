"""The packing planner: which waiting electrons share one job, and what the job is told of
them.

On AWS a hybrid job takes a minute or more to start and bills its instance the whole time,
and an account runs only a handful at once (:mod:`~covalent_braket_plugin.slots`). When
electrons wait for a job slot, the executor puts compatible ones into one job
(:mod:`~covalent_braket_plugin.packs` runs it; :mod:`covalent_braket_plugin.job.members`
runs them inside it). Everything here is a pure function of what it is given.

- Compatible means the same job: image, device, instance type and volume, role, bucket,
  Region and credentials, Python, requirements, reservation, KMS key, tags and packing
  settings, on the same event loop (the members' coroutines meet there).
- How many: an electron that finds a free slot goes alone, at once. When a slot is handed to
  the oldest waiter and others wait, the compatible waiters are spread over the account's job
  slots: ``ceil(waiting / slots)`` per job, at most ``pack_max``, and that share holds while
  the line lasts (the job slot gate keeps it). So the more wait, the more share a job; a
  sweep of a hundred behind five slots goes in one round of five jobs of 19, not in one
  overfull job and a straggler round; and as many as the slots (or fewer) go one per job.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from . import aws
from .config import BraketSettings
from .job_request import PackSpec
from .service import MAX_RUNTIME_SECONDS

__all__ = ["PackSpec", "may_have_checkpoints", "member_entry", "members_for", "pack_key", "spec"]

#: A warm job's own time limit covers this many of its members' time limits (it takes
#: members as they come, each with its own limit, until it is idle for ``warm_seconds``).
WARM_ROUNDS = 10


def pack_key(
    settings: BraketSettings, python: str, image_uri: str, requirements: str
) -> tuple[Any, ...] | None:
    """What electrons must share to run in one job; None when the electron is never packed
    (``pack`` off, or ``pack_max`` 1).

    Args:
        settings: the electron's settings (in the job's Region).
        python: the client's Python ``major.minor``.
        image_uri: the job's image.
        requirements: the text of the job's ``requirements.txt``.
    """
    if not settings.pack or settings.pack_max < 2:
        return None
    return (
        id(asyncio.get_running_loop()),
        aws.client_key(settings),
        image_uri,
        python,
        requirements,
        settings.quantum_device,
        settings.classical_device,
        settings.storage,
        settings.braket_job_execution_role_name,
        settings.s3_bucket_name,
        settings.reservation_arn,
        settings.kms_key_id,
        settings.tags,
        settings.pack_max,
        settings.pack_parallel,
        settings.checkpoint_from,
        settings.input_data,
    )


def members_for(waiting: int, slots: int, pack_max: int) -> int:
    """How many electrons the job about to take a slot runs (the one it is handed to
    included).

    Args:
        waiting: compatible electrons waiting, that one included.
        slots: the account's job slots (those other clients hold left out).
        pack_max: the most in one job.
    """
    return max(1, min(pack_max, math.ceil(waiting / max(slots, 1))))


def member_entry(uri: str, sha256: str, time_limit: int, checkpoints: bool = True) -> str:
    """A member as the job's hyperparameter ``covalent_member_<i>`` tells the job runner: its
    task prefix, its input's SHA-256 and its own time limit; and, when its electron can have
    no checkpoints yet (see :func:`may_have_checkpoints`), that the job need not look.

    Args:
        uri: the member's ``s3://`` task prefix.
        sha256: its input's digest (hex).
        time_limit: its time limit in seconds.
        checkpoints: whether its electron's checkpoint prefix may hold something.
    """
    entry: dict[str, Any] = {"uri": uri, "sha256": sha256, "time_limit": int(time_limit)}
    if not checkpoints:
        entry["checkpoints"] = False
    return json.dumps(entry)


def may_have_checkpoints(attempt: int, resumed: bool, checkpoint_from: str | None) -> bool:
    """Whether an electron's checkpoints (one prefix for all its attempts) may hold something
    when an attempt starts: saved by an earlier attempt, or by an earlier run of this one (its
    upload was found there and kept), or copied from ``checkpoint_from``. A first attempt
    uploaded afresh has none, and its job need not list them.

    Args:
        attempt: the attempt's number.
        resumed: its input was already there (an earlier run of the same attempt).
        checkpoint_from: the setting.
    """
    return attempt > 0 or resumed or bool(checkpoint_from)


def spec(entries: list[str], limits: list[int], settings: BraketSettings) -> PackSpec:
    """What the packed job is told: its members, how many at once, its own time limit (a
    warm job's covers :data:`WARM_ROUNDS` of the setting's besides), how long it stays warm.

    Args:
        entries: the members' hyperparameters (see :func:`member_entry`), the head first.
        limits: their time limits.
        settings: the head's settings.
    """
    limit = sum(limits)  # every member one after another
    if settings.warm_seconds:
        limit += WARM_ROUNDS * (settings.time_limit + math.ceil(settings.warm_seconds))
    return PackSpec(
        tuple(entries),
        settings.pack_parallel,
        min(limit, MAX_RUNTIME_SECONDS),
        float(settings.warm_seconds),
    )
