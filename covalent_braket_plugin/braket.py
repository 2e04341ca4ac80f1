"""BraketExecutor: runs a Covalent electron as an Amazon Braket hybrid job.

Covalent loads this module through the ``covalent.executor.executor_plugins`` entry point
``braket``; its settings live in ``[executors.braket]`` of covalent.conf. Importing it must stay
cheap: boto3 is imported when the first client is built, the Braket SDK never.

This module is the Covalent entry: the executor's settings, the task's story in :meth:`run`,
and Covalent's hooks. Each step of the story lives in a module of its own (see
``docs/architecture.md``).
"""

from __future__ import annotations

import sys
from typing import Any

from . import covalent_loader

EXECUTOR_PLUGIN_NAME = "BraketExecutor"

_IMPORTED_BEFORE_COVALENT = not covalent_loader.covalent_is_loaded()
with covalent_loader.half_loaded_warning_hidden(__name__):
    import covalent._shared_files.logger  # noqa: F401 (the first import of covalent: see above)
from covalent._shared_files.exceptions import TaskCancelledError, TaskRuntimeError
from covalent.executor.executor_plugins.remote_executor import RemoteExecutor

from . import (
    aws,
    checkpoints,
    electron_call,
    heap,
    helper_nodes,
    images,
    jobs,
    local_code,
    logs,
    pacing,
    packing,
    packs,
    preflight,
    results,
    server_board,
    signing,
    slots,
    transfer,
    usage,
    waiting,
)
from .config import (
    DEFAULTS,
    BraketSettings,
    InvalidSettingError,
    check_setting,
    merged_settings,
)
from .errors import BraketJobError
from .location import TaskLocation, job_name
from .results import wait_for_cleanups
from .service import arn_region

__all__ = [
    "EXECUTOR_PLUGIN_NAME",
    "BraketExecutor",
    "BraketJobError",
    "InvalidSettingError",
    "TaskLocation",
    "job_name",
    "wait_for_cleanups",
]

#: Merged into ``[executors.braket]`` of covalent.conf by Covalent (user edits are kept).
_EXECUTOR_PLUGIN_DEFAULTS: dict[str, Any] = dict(DEFAULTS)

app_log = covalent_loader.server_log

#: Attempts of one electron (dispatch and node) tried before giving up on finding a free one.
MAX_ATTEMPTS = 20
#: A packed member's run came to nothing (its job was not created, or ended without its
#: result): it is sent again, alone.
_ALONE = object()


class BraketExecutor(RemoteExecutor):
    """Run an electron as an Amazon Braket hybrid job.

    Every argument left as None is read from ``[executors.braket]`` in covalent.conf, falling
    back to the documented default. Arguments given here are validated at once; the merged
    settings are validated again before the first AWS call of each task.

    Args:
        credentials: Path of an AWS shared credentials file. The default path defers to the
            standard AWS credential chain (environment, profile, SSO, instance role).
        braket_job_execution_role_name: Name or ARN of the IAM role Braket assumes for the job.
        profile: AWS profile name; ``"default"`` defers to ``AWS_PROFILE`` and the chain.
        region: AWS region; empty uses ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the profile.
        s3_bucket_name: Bucket for the task's inputs, results and the job's outputs.
        ecr_image_uri: URI of the job container image in ECR; empty for Amazon's managed base
            jobs image of the job's Region (its Python must be the server's).
        quantum_device: ARN of the Braket device the job is associated with.
        classical_device: Braket instance type of the job's classical host.
        storage: Volume size of the classical host, in GB.
        time_limit: Maximum running time of the job, in seconds (1 to 432000).
        poll_freq: Seconds between job status checks.
        cache_dir: Local directory for temporary files (spilled inputs, large results):
            made with mode 0700 if missing, and refused if it is someone else's or others may
            write to it; empty for this user's ``$XDG_CACHE_HOME/covalent-braket`` (or
            ``~/.cache/covalent-braket``).
        kms_key_id: KMS key for the task's objects and the job's outputs (SSE-KMS); empty
            means SSE-S3.
        cleanup: Delete the task's runner and pickles once the result is retrieved.
        freeze_heap: While tasks are in flight, keep the objects that were alive when the
            first began out of full garbage collections (``gc.freeze()``, undone when the last
            ends): far shorter pauses of the server's event loop. Process-wide.
        pacing: Keep the Braket calls within Braket's default request quotas, shared by
            every executor of the process (off: for an account whose rates were raised, or an
            emulator that enforces none).
        requirements: The job's own packages, installed in the job before it runs: a list of
            requirement lines, or the path of a requirements file.
        reservation_arn: A Braket Direct reservation of the device, for the job.
        tags: Tags added to every job (cost allocation), beside the executor's own.
        max_concurrent_jobs: Hybrid jobs the account may run at once in the job's Region,
            when Service Quotas cannot tell (the caller may not read it): every executor of
            the process shares the account's job slots, and an electron waits for one before
            it uploads or creates anything.
        pack: While electrons wait for a job slot, put compatible ones (same image, device,
            instance type, role, bucket, Region, Python, requirements, reservation and KMS
            key) into one job, each in its own process with its own output, time limit and
            cancel, its result home as soon as it finishes. An electron that finds a free
            slot is sent at once, alone.
        pack_max: The most electrons in one packed job (1 to 64).
        pack_parallel: Members a packed job runs at once; 0 for one per core of its instance,
            and more while they leave cores idle (waiting on a QPU task, say).
        warm_seconds: How long a job whose electrons are done waits for compatible ones
            (they reach it through the bucket, with no job start: a chain of dependent
            electrons pays one start); its instance is billed meanwhile. 0 (the default):
            a job ends with its electrons.
        include_modules: Modules (names) shipped by value with each electron besides those
            found by the rule: the workflow's own modules (of its script's directory, the
            working directory and ``PYTHONPATH``, that no installed distribution provides)
            travel in the pickle, as the job cannot import them. False: none of them.
        exclude_modules: Modules never shipped by value (installed in the image instead).
        checkpoint_from: The id of an earlier dispatch of the workflow (a failed run): an
            electron that has no checkpoints yet starts from those its node saved there
            (``AMZN_BRAKET_CHECKPOINT_DIR``), as ``copy_checkpoint_from_job`` does.
        input_data: Files the electron reads, as the job's input channels: a local file or
            directory (uploaded once per content), an ``s3://`` prefix, or a mapping of
            channel names to them; the electron finds them at
            ``$AMZN_BRAKET_INPUT_DIR/<channel>`` (``input`` for one source).
    """

    #: Covalent left this task's job handle unanswered: it is asked nothing more.
    _covalent_unanswered = False

    def __init__(
        self,
        credentials: str | None = None,
        braket_job_execution_role_name: str | None = None,
        profile: str | None = None,
        region: str | None = None,
        s3_bucket_name: str | None = None,
        ecr_image_uri: str | None = None,
        quantum_device: str | None = None,
        classical_device: str | None = None,
        storage: int | None = None,
        time_limit: int | None = None,
        poll_freq: float | None = None,
        cache_dir: str | None = None,
        kms_key_id: str | None = None,
        cleanup: bool | None = None,
        freeze_heap: bool | None = None,
        pacing: bool | None = None,
        requirements: str | list[str] | None = None,
        reservation_arn: str | None = None,
        tags: dict[str, str] | None = None,
        max_concurrent_jobs: int | None = None,
        pack: bool | None = None,
        pack_max: int | None = None,
        pack_parallel: int | None = None,
        warm_seconds: float | None = None,
        include_modules: str | list[str] | bool | None = None,
        exclude_modules: str | list[str] | None = None,
        checkpoint_from: str | None = None,
        input_data: str | dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        given = {name: value for name, value in locals().items() if name in DEFAULTS}
        values = merged_settings(given)
        super().__init__(
            poll_freq=values["poll_freq"],
            credentials_file=values["credentials"],
            cache_dir=values["cache_dir"],
            time_limit=values["time_limit"],
            **kwargs,
        )
        for name, value in values.items():
            setattr(self, name, value)
        self._ship_local_code()

    def _ship_local_code(self) -> None:
        """The user's own modules loaded by now travel with the electrons (see
        :mod:`~covalent_braket_plugin.local_code`)."""
        include = check_setting("include_modules", self.include_modules)
        exclude = check_setting("exclude_modules", self.exclude_modules)
        local_code.ship(include, exclude)

    def to_dict(self) -> dict:
        """What Covalent stores of the executor, read as it builds the workflow's graph: the
        modules imported since the executor was made travel too."""
        self._ship_local_code()
        return super().to_dict()

    def settings(self) -> BraketSettings:
        """The validated settings of this executor.

        Raises:
            InvalidSettingError: naming the first invalid setting.
        """
        return BraketSettings.from_mapping(
            {name: getattr(self, name, DEFAULTS[name]) for name in DEFAULTS}
        )

    # ------------------------------------------------------------------ the task's story
    async def run(self, function: Any, args: list, kwargs: dict, task_metadata: dict) -> Any:
        """Run ``function(*args, **kwargs)`` in a Braket hybrid job and return its result.

        Covalent's own helper nodes (a list or dict argument, a result unpacked or its
        attribute read) only rearrange values the server holds: they run here at once. Any
        other electron travels unwrapped from Covalent's wrapper
        (:mod:`~covalent_braket_plugin.electron_call`): the job needs nothing of Covalent's.
        """
        helper = helper_nodes.helper_of(function)
        if helper is not None:
            app_log.debug(
                f"{task_metadata['dispatch_id']}:{task_metadata['node_id']} is Covalent's helper "
                f"{helper}: it runs in the server, not as a Braket job"
            )
            return await aws.offload(helper_nodes.run, function, args, kwargs)
        task = f"{task_metadata['dispatch_id']}:{task_metadata['node_id']}"
        try:
            settings = self.settings().for_job()  # a QPU's jobs run in its own Region
            with heap.frozen_while_running(settings.freeze_heap):
                call = await self._unwrapped(function, args, kwargs, task_metadata)
                payload = (call.function, call.args, call.kwargs)
                name = str(getattr(call.function, "__name__", "") or "")
                task_metadata = {**task_metadata, "node_name": name}
                value = await self._run(settings, payload, task_metadata, call.needs_covalent)
                return call.transportable(value)
        except InvalidSettingError as exc:  # the node's error says it; so does the server log
            app_log.error(f"{task}: refused before any Braket job was created: {exc}")
            raise
        finally:
            if _own_handles.pop(task, None) is not None:
                server_board.changed()

    @staticmethod
    async def _unwrapped(
        function: Any, args: list, kwargs: dict, task_metadata: dict
    ) -> electron_call.Unwrapped:
        """The electron unwrapped from Covalent's wrapper; wrapped as it came (the job then
        needs covalent) when the server cannot deserialize it."""
        try:
            return await aws.offload(electron_call.unwrap, function, args, kwargs)
        except Exception as exc:
            app_log.warning(
                f"{task_metadata['dispatch_id']}:{task_metadata['node_id']}: the electron "
                f"could not be unwrapped here ({type(exc).__name__}: {exc}); it travels in "
                "Covalent's wrapper, and the job installs covalent"
            )
            return electron_call.Unwrapped(function, args, kwargs, False, True)

    async def _run(
        self,
        settings: BraketSettings,
        payload: Any,
        task_metadata: dict,
        needs_covalent: bool = False,
    ) -> Any:
        task = f"{task_metadata['dispatch_id']}:{task_metadata['node_id']}"
        await self._stop_if_cancelled(task, settings)
        python = await self._client_python()
        await aws.offload(preflight.check, settings)
        if settings.checkpoint_from:  # a redispatch starts from the failed run's checkpoints
            dispatch_id, node_id = task_metadata["dispatch_id"], task_metadata["node_id"]
            await aws.offload(checkpoints.seed, settings, str(dispatch_id), str(node_id))
        image = await aws.offload(images.prepare, settings, python, needs_covalent)
        key = packing.pack_key(settings, python, image.uri, image.installs)
        slot, uploaded = None, None
        if key is not None:  # a shared job's, unless it has a slot of its own
            value, slot, uploaded = await self._run_shared(
                settings, payload, task_metadata, python, image, key
            )
            if value is not _ALONE:
                return value
        if slot is None:  # sent again, alone
            slot = await self._take_slot(settings, task_metadata, None)
        return await self._run_alone(
            settings, payload, task_metadata, python, image, slot, uploaded
        )

    async def _run_alone(
        self,
        settings: BraketSettings,
        payload: Any,
        task_metadata: dict,
        python: str,
        image: images.JobImage,
        slot: slots.Slot,
        uploaded: tuple[TaskLocation, transfer.Upload] | None = None,
    ) -> Any:
        """Run the electron in a job of its own, in the slot it holds (its input already
        uploaded, when ``uploaded`` says where)."""
        task = f"{task_metadata['dispatch_id']}:{task_metadata['node_id']}"
        try:  # the slot is held until the job is terminal, or the task ends otherwise
            location, job = await self._submit_first_free_attempt(
                settings, task_metadata, payload, python, image, slot, uploaded
            )
            job_arn = job["jobArn"]
            app_log.debug(f"Braket job {job_arn} ({job['status']}) runs {task}")
            await self._record_handle(job_arn, task, settings.cache_dir)
            if await self._cancel_requested():
                await waiting.cancel(settings, job_arn)
            job = await self._poll_task(settings, job, location)
        finally:
            slot.release()
        # The job is terminal: its objects go, whatever it came to (a value, the electron's
        # exception, a failure, a cancellation, a result refused). Not when its result could
        # not be read (kept for a look once that is mended), nor on an asyncio cancellation
        # (the server going away): a rebuilt executor may still collect it.
        try:
            value = await self._collect(settings, location, job)
        except Exception as exc:
            if not _result_unread(exc):
                self._clean_up_later(settings, location)  # its checkpoints stay
            raise
        self._clean_up_later(settings, location, succeeded=True)
        return value

    async def _run_shared(
        self,
        settings: BraketSettings,
        payload: Any,
        task_metadata: dict,
        python: str,
        image: images.JobImage,
        key: Any,
    ) -> tuple[Any, slots.Slot | None, tuple[TaskLocation, transfer.Upload] | None]:
        """Run the electron in a shared job: a warm one that takes it, or the job of the slot
        it gets, with the compatible electrons that waited, or that began to wait while it
        uploaded its input (see :mod:`.packs`). :data:`_ALONE` with the slot and its upload
        when it got a slot of its own, nobody joined and no warm job is wanted; :data:`_ALONE`
        and None when it is to be sent again, alone."""
        warm = settings.warm_seconds > 0
        if warm:
            found = packs.warm_job(key, settings)
            if found is not None:
                value = await self._run_in_warm(settings, payload, task_metadata, image, found)
                return value, None, None
        slot = await self._take_slot(settings, task_metadata, key)
        if slot.handed is not None:  # a warm job took it from the line
            job = slot.handed
            value = await self._run_in_warm(settings, payload, task_metadata, image, job, True)
            return value, None, None
        uploaded = None
        if not slot.members[1:]:
            uploaded = await self._upload_holding(settings, task_metadata, payload, image, slot)
            if not (slot.take_late() or warm):
                return _ALONE, slot, uploaded
        value = await self._run_packed(
            settings, payload, task_metadata, python, image, slot, key, uploaded
        )
        return value, None, None

    async def _upload_holding(
        self,
        settings: BraketSettings,
        task_metadata: dict,
        payload: Any,
        image: images.JobImage,
        slot: slots.Slot,
    ) -> tuple[TaskLocation, transfer.Upload]:
        """The electron's upload while it holds a slot, which it gives back if that fails."""
        try:
            return await self._upload_first_free_attempt(settings, task_metadata, payload, image)
        except BaseException:
            slot.release()
            raise

    async def _run_packed(
        self,
        settings: BraketSettings,
        payload: Any,
        task_metadata: dict,
        python: str,
        image: images.JobImage,
        slot: slots.Slot,
        key: Any,
        uploaded: tuple[TaskLocation, transfer.Upload] | None = None,
    ) -> Any:
        """Run the electron as a member of a packed job: its own input (already uploaded,
        when ``uploaded`` says where), its result as soon as it is there; :data:`_ALONE` when
        it is to be sent again alone."""
        pack = packs.joined(slot)
        member = pack.members[slot.task]
        head = slot.leader is None
        try:
            location, upload = uploaded or await self._upload_first_free_attempt(
                settings, task_metadata, payload, image
            )
        except BaseException as exc:
            packs.dropped(pack, member)
            if head:
                packs.created(pack, exc)
                slot.release()
            raise
        member.location = location
        member.ready.set_result((packs.entry(settings, location, upload), settings.time_limit))
        try:
            job = await self._packed_job(settings, slot, pack, location, upload, python, image, key)
            if job is None:
                return _ALONE
            return await self._await_member(settings, pack, member, location, job)
        finally:  # however it ended, the keeper's count of outcomes is complete
            packs.delivered(member, None)

    async def _run_in_warm(
        self,
        settings: BraketSettings,
        payload: Any,
        task_metadata: dict,
        image: images.JobImage,
        pack: packs.PackedJob,
        handed: bool = False,
    ) -> Any:
        """Run the electron in a warm job that waits for more (see :mod:`.packs`): its input
        uploaded, then handed to the job through the bucket; :data:`_ALONE` when it is to be
        sent again alone. ``handed``: the job took it from the line of electrons waiting for
        a job slot."""
        task = (str(task_metadata["dispatch_id"]), str(task_metadata["node_id"]))
        member = packs.join(pack, task, handed)
        try:
            location, upload = await self._upload_first_free_attempt(
                settings, task_metadata, payload, image
            )
            member.location = location
            taken = await packs.hand_over(settings, pack, member, location, upload)
        except BaseException:
            packs.dropped(pack, member)
            raise
        if not taken:
            packs.dropped(pack, member)
            app_log.info(
                f"Braket job {pack.created.result()['jobName']} closed before it took "
                f"{task[0]}:{task[1]}: it is sent again, alone"
            )
            return _ALONE
        try:
            return await self._await_member(settings, pack, member, location, pack.created.result())
        finally:  # however it ended, the keeper's count of outcomes is complete
            packs.delivered(member, None)

    async def _await_member(
        self,
        settings: BraketSettings,
        pack: packs.PackedJob,
        member: packs.Member,
        location: TaskLocation,
        job: dict[str, Any],
    ) -> Any:
        """A packed job's member's value (or its exception) as soon as its result is there;
        :data:`_ALONE` when the job ended without it."""
        app_log.info(
            f"{location.dispatch_id}:{location.node_id} runs in Braket job {job['jobName']} "
            f"with {len(pack.members) - 1} other electron(s)"
        )
        task = f"{location.dispatch_id}:{location.node_id}"
        await self._record_handle(packs.handle(job["jobArn"], location), task, settings.cache_dir)
        if await self._cancel_requested():
            head = packs.known_head(job["jobArn"])
            await aws.offload(packs.cancel_member, settings, job["jobArn"], location.uri, head)
        outcome, job = await packs.result_of(settings, pack, member, location)
        packs.delivered(member, outcome, pack)
        if outcome is None:
            app_log.warning(
                f"Braket job {job['jobArn']} ({job['status']}) ended without the result of "
                f"{location.dispatch_id}:{location.node_id}: it is sent again, alone"
            )
            return _ALONE
        try:
            if outcome.get("stopped") == "cancelled":
                raise TaskCancelledError(
                    f"the electron was cancelled in Braket job {job['jobArn']}"
                )
            return self._deliver(job["jobArn"], outcome)
        finally:
            self._clean_up_later(settings, location)

    async def _packed_job(
        self,
        settings: BraketSettings,
        slot: slots.Slot,
        pack: packs.PackedJob,
        location: TaskLocation,
        upload: transfer.Upload,
        python: str,
        image: images.JobImage,
        key: Any,
    ) -> dict[str, Any] | None:
        """The packed job, created by its head (who then has a keeper follow it), or awaited by
        the other members; None when it was not created (the member goes alone)."""
        if slot.leader is not None:
            try:
                return await pack.created
            except packs.PackAborted as exc:
                app_log.info(f"{location.dispatch_id}:{location.node_id} goes alone: {exc}")
                return None
        try:
            job, spec = await self._create_packed(
                settings, slot, pack, location, upload, python, image
            )
        except BaseException as exc:
            packs.created(pack, exc)
            slot.release()
            raise
        packs.created(pack, job)
        packs.keep(settings, slot, pack, job, key, spec.time_limit)
        return job

    async def _create_packed(
        self,
        settings: BraketSettings,
        slot: slots.Slot,
        pack: packs.PackedJob,
        location: TaskLocation,
        upload: transfer.Upload,
        python: str,
        image: images.JobImage,
    ) -> tuple[dict[str, Any], packing.PackSpec]:
        """Once every member has uploaded (or dropped out), create the packed job that runs
        them, this electron first."""
        entries = await packs.gathered(pack)
        pack.head = location
        spec = packing.spec(
            [entry for entry, _ in entries],
            [limit for _, limit in entries],
            settings,
        )
        job = await self._submit_in_slot(settings, slot, location, python, upload, image, spec)
        if job is None:
            raise packs.PackAborted(f"the job name {location.job_name} is taken by an older job")
        return job, spec

    async def _collect(
        self, settings: BraketSettings, location: TaskLocation, job: dict[str, Any]
    ) -> Any:
        """The terminal job's electron's value, or its exception; the job's failure or
        cancellation as the task's."""
        job_arn = job["jobArn"]
        if job["status"] == "CANCELLED":
            raise TaskCancelledError(f"Braket job {job_arn} was cancelled")
        outcome = await self.query_result(settings, location, job)
        try:
            if outcome is None:  # FAILED with no result object: the job never ran the electron
                await self._fail_without_result(settings, job)
            return self._deliver(job_arn, outcome)
        finally:  # what the job used and cost: usage.json and the server log, in the background
            usage.account_later(settings, location, job, outcome)

    @staticmethod
    def _clean_up_later(
        settings: BraketSettings, location: TaskLocation, succeeded: bool = False
    ) -> None:
        """Delete the task's objects in the background, unless ``cleanup`` is off (and the
        electron's checkpoints, once it ``succeeded``)."""
        if settings.cleanup:
            results.clean_up_later(settings, location)
            if succeeded:
                node = (location.dispatch_id, location.node_id)
                results.later(checkpoints.delete, settings, *node)

    async def _stop_if_cancelled(
        self, task: str, settings: BraketSettings, location: TaskLocation | None = None
    ) -> None:
        """Raise TaskCancelledError if a cancel came before submission (deleting what this
        attempt uploaded, if anything)."""
        if await self.get_cancel_requested():
            if location is not None:
                await aws.offload(results.delete_task_objects, settings, location)
            raise TaskCancelledError(f"task {task} was cancelled before submission")

    async def _cancel_requested(self) -> bool:
        """Whether Covalent asks for the task's cancellation (False outside a server, and once
        Covalent left the job's handle unanswered: see :meth:`_record_handle`)."""
        if self._covalent_unanswered:
            return False
        try:
            return bool(await self.get_cancel_requested())
        except Exception:
            return False

    async def _take_slot(
        self, settings: BraketSettings, task_metadata: dict, pack_key: Any = None
    ) -> slots.Slot:
        """One of the account's job slots, once it is the task's turn, or a place in the job
        of a compatible electron that got one (nothing is uploaded or created before)."""
        task = (str(task_metadata["dispatch_id"]), str(task_metadata["node_id"]))
        try:
            return await slots.take(settings, task, self._cancel_requested, pack_key)
        except slots.WaitCancelled:
            raise TaskCancelledError(
                f"task {':'.join(task)} was cancelled while it waited for a job slot"
            ) from None

    async def _submit_in_slot(
        self,
        settings: BraketSettings,
        slot: slots.Slot,
        location: TaskLocation,
        python: str,
        upload: transfer.Upload,
        image: images.JobImage,
        pack: packing.PackSpec | None = None,
    ) -> dict[str, Any] | None:
        """:meth:`submit_task`; refused past a job quota (other clients share the account),
        the attempt keeps its input and client token and is sent again once the next job
        slot is free. Cancelled meanwhile, its objects are deleted."""
        while True:
            try:
                job = await self.submit_task(settings, location, python, upload, image, pack)
            except aws.AwsError as exc:
                if exc.code not in aws.QUOTA_EXCEEDED:
                    raise
                try:
                    await slot.wait_again(exc, self._cancel_requested)
                except slots.WaitCancelled:
                    await aws.offload(results.delete_task_objects, settings, location)
                    raise TaskCancelledError(
                        f"task {location.dispatch_id}:{location.node_id} was cancelled while "
                        "it waited for a job slot"
                    ) from None
                continue
            if job is not None:
                slot.created()
            return job

    async def _submit_first_free_attempt(
        self,
        settings: BraketSettings,
        task_metadata: dict,
        payload: Any,
        python: str,
        image: images.JobImage,
        slot: slots.Slot,
        uploaded: tuple[TaskLocation, transfer.Upload] | None = None,
    ) -> tuple[TaskLocation, dict[str, Any]]:
        """Upload and submit the first attempt whose job is not spent (attempts of an earlier
        run of this node failed, or were collected), and whose prefix holds no input that
        this server did not upload; ``uploaded``, the first attempt's upload if done."""
        first = 0
        while True:  # (past MAX_ATTEMPTS the upload gives up)
            location, upload = uploaded or await self._upload_first_free_attempt(
                settings, task_metadata, payload, image, first
            )
            uploaded = None
            job = await self._submit_in_slot(settings, slot, location, python, upload, image)
            if job is not None:
                return location, job
            first = location.attempt + 1

    async def _upload_first_free_attempt(
        self,
        settings: BraketSettings,
        task_metadata: dict,
        payload: Any,
        image: images.JobImage,
        first: int = 0,
    ) -> tuple[TaskLocation, transfer.Upload]:
        """Upload the electron to the first attempt from ``first`` on whose prefix holds no
        input that this server did not upload."""
        dispatch_id, node_id = task_metadata["dispatch_id"], task_metadata["node_id"]
        for attempt in range(first, MAX_ATTEMPTS):
            location = TaskLocation.new(
                settings.s3_bucket_name,
                dispatch_id,
                node_id,
                attempt,
                task_metadata.get("node_name", ""),
            )
            upload = await self._upload_task(settings, location, payload, image)
            if upload is None:
                app_log.warning(
                    f"{location.uri} holds an input this server did not upload (it carries no "
                    "valid MAC): it was left alone and will not be run; trying the next attempt"
                )
                continue
            await self._stop_if_cancelled(f"{dispatch_id}:{node_id}", settings, location)
            return location, upload
        raise BraketJobError(
            f"no free attempt for task {dispatch_id}:{node_id} after {MAX_ATTEMPTS} tries"
        )

    async def _record_handle(self, handle: str, task: str, cache_dir: str) -> None:
        """Give Covalent the job's handle. Covalent waits 5 s for its dispatcher to store it
        and raises if it does not answer (``TimeoutError``) or could not store it (its
        ``RuntimeError``, after which its listener for this task is gone). The job runs on all
        the same, so the executor keeps following it (its result still comes home) instead of
        failing the task and leaving the job running with no handle. It asks Covalent nothing
        more (each question would wait 5 s for no answer): Covalent's cancel, which then comes
        with no handle, finds the job by the task (``_own_handles``)."""
        _own_handles[task] = (handle, cache_dir)
        server_board.changed()  # the board says this server follows the job
        try:
            await self.set_job_handle(handle)
        except Exception as exc:
            self._covalent_unanswered = True
            app_log.warning(
                f"{task}: Covalent did not store the job handle {handle!r} "
                f"({type(exc).__name__}: {exc}); the executor follows the job all the same"
            )

    async def _fail_without_result(self, settings: BraketSettings, job: dict[str, Any]) -> None:
        """The job ended FAILED without a result: its failure as the task's, in the words of
        its events when it ran out of time (``MAX_RUNTIME_EXCEEDED``: the electron's
        ``time_limit`` was reached), with its log's last lines in the node's stderr. The job is
        as the watcher read it in full (``waiting``'s terminal job: a FAILED one is GetJob's
        answer, events included)."""
        reason = job.get("failureReason") or "no failure reason given"
        tail = await aws.offload(logs.tail, settings, job)
        if tail:
            self.task_stderr.write(tail)
        limit = (job.get("stoppingCondition") or {}).get("maxRuntimeInSeconds")
        if any(e.get("eventType") == "MAX_RUNTIME_EXCEEDED" for e in job.get("events") or []):
            raise BraketJobError(
                f"the electron's time_limit ({limit} s) was reached: Braket stopped job "
                f"{job['jobArn']} (MAX_RUNTIME_EXCEEDED; {reason}). Raise time_limit, or make "
                "the electron shorter"
            )
        raise BraketJobError(f"Braket job {job['jobArn']} failed: {reason}")

    def _deliver(self, job_arn: str, outcome: dict) -> Any:
        """The electron's output into the node's streams; its value, or its exception."""
        self.task_stdout.write(outcome.get("stdout", ""))
        self.task_stderr.write(outcome.get("stderr", ""))
        if not outcome["ok"]:
            if outcome.get("traceback") and outcome["traceback"] not in outcome.get("stderr", ""):
                self.task_stderr.write(outcome["traceback"])
            raise TaskRuntimeError(
                f"electron raised {outcome['exception_type']}: {outcome['exception']} "
                f"(Braket job {job_arn})"
            )
        return outcome["result"]

    async def _client_python(self) -> str:
        """The ``major.minor`` of the Python the electron was pickled with (the client's)."""
        try:
            version = (await self.get_version_info()) or {}
        except Exception:  # outside a server (no runtime) the local interpreter is the client
            version = {}
        full = str(version.get("python") or "")
        if not full:
            return f"{sys.version_info.major}.{sys.version_info.minor}"
        return ".".join(full.split(".")[:2])

    # ------------------------------------------------------------------ RemoteExecutor API
    async def _validate_credentials(self) -> bool:
        """Check that the AWS credential chain yields an identity (calls STS)."""
        await aws.offload(aws.caller_account, self.settings())
        return True

    async def _upload_task(
        self,
        settings: BraketSettings,
        location: TaskLocation,
        payload: Any,
        image: images.JobImage,
    ) -> transfer.Upload | None:
        return await aws.offload(
            transfer.upload_task,
            settings,
            location,
            payload,
            image.requirements,
            image.user_requirements,
        )

    async def submit_task(
        self,
        settings: BraketSettings,
        location: TaskLocation,
        python: str,
        upload: transfer.Upload,
        image: images.JobImage,
        pack: packing.PackSpec | None = None,
    ) -> dict[str, Any] | None:
        """Submit the attempt (a packed job's too: see :func:`.jobs.submit_attempt`), paced
        within Braket's quotas; a throttled or failed request is
        sent again with the same client token (so at most one job is made) until it goes
        through."""
        calls = ["SearchJobs", "GetJob", "CreateJob"] if upload.resumed else ["CreateJob"]
        return await aws.persistently(
            jobs.submit_attempt,
            settings,
            location,
            python,
            upload,
            image,
            pack,
            before=lambda: pacing.paced(*aws.quota_key(settings), calls),
            pool=aws.paced_pool,
        )

    async def get_status(self, settings: BraketSettings, job_arn: str) -> dict[str, Any]:
        return await aws.persistently(jobs.get, settings, job_arn)

    async def _poll_task(
        self, settings: BraketSettings, job: dict[str, Any], location: TaskLocation | None = None
    ) -> dict[str, Any]:
        """Wait until the job is terminal: :func:`~covalent_braket_plugin.waiting.until_done`
        (its state changes go into the server log, named by the task's dispatch and node)."""
        task = (location.dispatch_id, location.node_id) if location is not None else None
        return await waiting.until_done(settings, job, task)

    async def query_result(
        self, settings: BraketSettings, location: TaskLocation, job: dict[str, Any]
    ) -> Any:
        return await aws.persistently(results.download, settings, location, job)

    async def cancel(self, task_metadata: dict, job_handle: Any) -> bool:
        """Cancel the Braket job ``job_handle``; True once it is cancelling or cancelled. A task
        with no job yet that waits for a job slot is cancelled there (it creates nothing)."""
        task = (str(task_metadata.get("dispatch_id")), str(task_metadata.get("node_id")))
        job_handle = job_handle or _own_handles.get(":".join(task), (None, ""))[0]
        if not job_handle:
            return slots.cancel_waiting(task)
        job_arn, member = packs.split_handle(job_handle)
        settings = self.settings().in_region(arn_region(job_arn))  # the job's own Region
        if member is not None:  # one electron of a packed job: it alone is stopped
            head = packs.known_head(job_arn)  # else read from the job
            await aws.offload(packs.cancel_member, settings, job_arn, member, head)
            return True
        status = await waiting.cancel(settings, job_arn, seconds=60.0)
        return status in {"CANCELLING", "CANCELLED"}


#: The job handle of each task running in this process ("dispatch:node" -> handle and the
#: executor's ``cache_dir``), kept by the executor itself: Covalent may not have stored it (see
#: ``BraketExecutor._record_handle``), and the server board lists the jobs this process follows.
_own_handles: dict[str, tuple[str, str]] = {}


def _following() -> dict[str, list[dict[str, str]]]:
    """The jobs this process follows, by ``cache_dir`` setting (the server board's source)."""
    shown: dict[str, list[dict[str, str]]] = {}
    for task, (handle, cache_dir) in list(_own_handles.items()):
        dispatch_id, _, node_id = task.partition(":")
        entry = {"job_arn": packs.split_handle(handle)[0], "dispatch_id": dispatch_id}
        shown.setdefault(cache_dir, []).append({**entry, "node_id": node_id})
    return shown


server_board.watch("following", _following)


def _result_unread(exc: BaseException) -> bool:
    """Whether a task failed because its result could not be read (an AWS call, the cache
    directory, the server's secret), not for what its job came to."""
    unread = (aws.AwsError, InvalidSettingError, signing.SecretFileError)
    return isinstance(exc, unread) or isinstance(exc.__cause__, aws.AwsError)


if _IMPORTED_BEFORE_COVALENT:
    covalent_loader.register(sys.modules[__name__], EXECUTOR_PLUGIN_NAME)
