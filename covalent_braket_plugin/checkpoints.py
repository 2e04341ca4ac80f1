"""An electron's checkpoints (``AMZN_BRAKET_CHECKPOINT_DIR`` in the job): one S3 prefix per
electron, shared by its attempts, so that an attempt sent again (a packed job that died, a
new run of the node) starts from what the last one saved, as Amazon's container downloads the
job's ``checkpointConfig`` at the start and uploads it at the end.

A redispatch of a failed workflow is a new dispatch, with new prefixes. The
``checkpoint_from`` setting names the failed dispatch: before an electron's first job, what
the same node of that dispatch saved is copied to its own prefix (server-side copies, as the
Braket SDK's ``copy_checkpoint_from_job`` does), unless it has checkpoints already. The
checkpoints go with the electron's other objects when it succeeds (``cleanup``); a failed
electron's stay, for a redispatch to start from.
"""

from __future__ import annotations

from . import aws
from .config import BraketSettings
from .covalent_loader import server_log
from .location import checkpoint_prefix
from .results import delete_keys, list_keys


def _keys(settings: BraketSettings, prefix: str) -> list[str]:
    return list_keys(settings, settings.s3_bucket_name, prefix + "/")


def seed(settings: BraketSettings, dispatch_id: str, node_id: str) -> int:
    """Copy node ``node_id``'s checkpoints of dispatch ``checkpoint_from`` to this dispatch's,
    unless it has some already; how many objects were copied. Blocking."""
    source = settings.checkpoint_from
    if not source or source == dispatch_id:
        return 0
    target = checkpoint_prefix(dispatch_id, node_id)
    try:
        if _keys(settings, target):
            return 0  # an earlier attempt of this run saved its own: they come first
        origin = checkpoint_prefix(source, node_id)
        found = _keys(settings, origin)
        s3, bucket = aws.clients_for(settings).s3, settings.s3_bucket_name
        for key in found:
            aws.call(
                s3,
                "copy_object",
                Bucket=bucket,
                Key=target + key[len(origin) :],
                CopySource={"Bucket": bucket, "Key": key},
                **settings.encryption,
                **aws.bucket_owner(settings),
            )
    except aws.AwsError as exc:
        why = f"copying the checkpoints of dispatch {source} (checkpoint_from): {exc}"
        raise aws.AwsError(exc.operation, exc.code, why, exc.status) from exc
    if found:
        server_log.info(
            f"{dispatch_id}:{node_id} starts from {len(found)} checkpoint object(s) of "
            f"dispatch {source}"
        )
    return len(found)


def delete(settings: BraketSettings, dispatch_id: str, node_id: str) -> None:
    """Delete the electron's checkpoints (it succeeded). Blocking; never raises."""
    try:
        keys = _keys(settings, checkpoint_prefix(dispatch_id, node_id))
        delete_keys(settings, settings.s3_bucket_name, keys)
    except aws.AwsError as exc:
        server_log.warning(f"Could not delete the checkpoints of {dispatch_id}:{node_id}: {exc}")
