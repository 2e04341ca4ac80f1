"""Electron packing: electrons that wait for a job slot share one job, each keeping its own
value, output, traceback, time limit and cancel; a packed job that dies costs nothing that
finished. Against Braket-in-a-box in its default regime (5 job slots), through the executor.
(The runner inside the job: ``tests/test_members.py``.)"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

import cloudpickle
import pytest
from covalent._shared_files.exceptions import TaskCancelledError, TaskRuntimeError

from covalent_braket_plugin import dispatch_jobs, packing, packs, slots
from covalent_braket_plugin.config import BraketSettings
from covalent_braket_plugin.covalent_loader import server_log
from covalent_braket_plugin.packs import shares
from covalent_braket_plugin.service import CONCURRENT_JOBS_QUOTA
from tests.conftest import BUCKET, IMAGE
from tests.emulator.test_jobs import wait_for
from tests.test_braket import HostedExecutor, hosted

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.timeout(240)
DISPATCH = "9ac4-9ac4-9ac4"
SLOTS = CONCURRENT_JOBS_QUOTA[1]


def metadata(node: int) -> dict[str, Any]:
    return {"dispatch_id": DISPATCH, "node_id": node, "results_dir": "/tmp"}


def sleeper(seconds: float) -> Any:
    def electron(x: int) -> int:
        import time

        time.sleep(seconds)
        return x

    return electron


def talker(x: int) -> int:
    import sys

    print(f"out {x}")
    print(f"err {x}", file=sys.stderr)
    if x == 13:
        raise ValueError(f"unlucky {x}")
    return x * 10


def our_jobs(aws: Any) -> list[dict[str, Any]]:
    found = aws.braket.search_jobs(filters=[])["jobs"]
    return [aws.braket.get_job(jobArn=job["jobArn"]) for job in found if "cov-" in job["jobName"]]


def packed_jobs(aws: Any) -> list[dict[str, Any]]:
    return [job for job in our_jobs(aws) if "covalent_member_1" in job["hyperParameters"]]


def held_until(marker: str) -> Any:
    """An electron that holds its job until ``marker`` exists (Braket-in-a-box runs jobs on
    this machine), then returns its argument."""

    def electron(x: int) -> int:
        import os
        import time

        while not os.path.exists(marker):
            time.sleep(0.05)
        return x

    return electron


def _touch(path: str) -> None:
    with open(path, "w"):
        pass


def in_line() -> int:
    """Electrons waiting in the job slot gates."""
    return sum(len(gate._waiting) for gate in list(slots._gates.values()))


async def behind_full_slots(
    runs: list[tuple[HostedExecutor, Any, int]],
) -> tuple[list[Any], list[Any]]:
    """Fill every job slot, then start ``runs`` (executor, function, node); once all of them
    wait in line, free the slots: the waiting electrons go into the freed slots' jobs."""
    with tempfile.TemporaryDirectory() as scratch:
        marker = os.path.join(scratch, "go")
        holders = [hosted() for _ in range(SLOTS)]
        holding = [
            asyncio.create_task(holder.run(held_until(marker), [i], {}, metadata(100 + i)))
            for i, holder in enumerate(holders)
        ]
        while any(holder._handle is None for holder in holders):
            await asyncio.sleep(0.05)
        waiting = [
            asyncio.create_task(executor.run(function, [node], {}, metadata(node)))
            for executor, function, node in runs
        ]
        while in_line() < len(runs):
            await asyncio.sleep(0.05)
        await asyncio.to_thread(_touch, marker)
        held = await asyncio.gather(*holding, return_exceptions=True)
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        await packs.settled()  # every packed job ended and accounted for
        return held, outcomes


def test_waiting_electrons_share_a_job_each_with_its_own_value_output_and_traceback(
    aws: Any,
) -> None:
    nodes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 13]  # twice the slots wait: two electrons a job
    executors = [hosted() for _ in nodes]
    held, outcomes = asyncio.run(
        behind_full_slots([(e, talker, node) for e, node in zip(executors, nodes, strict=True)])
    )
    assert held == list(range(SLOTS))  # the holders went alone, at once
    for node, outcome in zip(nodes, outcomes, strict=True):
        if node == 13:
            assert isinstance(outcome, TaskRuntimeError) and "unlucky 13" in str(outcome)
        else:
            assert outcome == node * 10
    for executor, node in zip(executors, nodes, strict=True):
        assert executor._task_stdout.getvalue() == f"out {node}\n"
        assert f"err {node}" in executor._task_stderr.getvalue()
        assert ("Traceback" in executor._task_stderr.getvalue()) == (node == 13)
    packed = packed_jobs(aws)
    assert [members(job) for job in packed] == [2] * SLOTS
    assert len(our_jobs(aws)) == SLOTS + SLOTS  # five alone, five of two
    arns = {executor._handle.split(" member ")[0] for executor in executors}
    assert arns == {job["jobArn"] for job in packed}
    for job in packed:  # first attempts uploaded afresh: no checkpoints for the job to look for
        assert [json.loads(entry).get("checkpoints") for entry in member_entries(job)] == [
            False,
            False,
        ]
    journal = aws.control.journal(service="s3")
    listed = [
        parse_qs(entry["query"]).get("prefix", [""])[0]
        for entry in journal
        if entry["operation"] == "ListObjectsV2" and DISPATCH in entry["query"]
    ]
    # no listing of the dispatch's objects (each job's keeper reads the job's done.json
    # instead), nor of a member's checkpoints (only of each job's cancels/)
    assert not [prefix for prefix in listed if "/node-" not in prefix]
    packed_nodes = {f"/node-{node}/" for node in nodes}
    assert not [
        prefix
        for prefix in listed
        if any(node in prefix for node in packed_nodes) and not prefix.endswith("/cancels/")
    ]
    done_reads = [entry for entry in journal if entry["path"].endswith("/done.json")]
    assert {entry["operation"] for entry in done_reads} >= {"PutObject", "GetObject"}


def test_a_member_entry_says_there_are_no_checkpoints_only_for_a_fresh_first_attempt() -> None:
    assert not packing.may_have_checkpoints(0, False, None)
    assert packing.may_have_checkpoints(1, False, None)  # an earlier attempt's
    assert packing.may_have_checkpoints(0, True, None)  # an earlier run of this attempt's
    assert packing.may_have_checkpoints(0, False, "an-older-dispatch")  # copied from there
    fresh = json.loads(packing.member_entry("s3://b/p/attempt-0", "ab", 5, checkpoints=False))
    assert fresh == {
        "uri": "s3://b/p/attempt-0",
        "sha256": "ab",
        "time_limit": 5,
        "checkpoints": False,
    }
    assert "checkpoints" not in json.loads(packing.member_entry("s3://b/p/attempt-1", "ab", 5))


class SlowUpload(HostedExecutor):
    """An executor whose uploads take ``delay`` seconds more (a big input, a slow link)."""

    delay = 2.0

    async def _upload_task(self, *args: Any) -> Any:
        await asyncio.sleep(self.delay)
        return await super()._upload_task(*args)


def test_electrons_that_begin_to_wait_while_a_slots_holder_uploads_join_its_job(
    aws: Any,
) -> None:
    """A sweep's electrons arrive over a few milliseconds, the first ones to free slots: the
    holder of a slot granted alone takes, before it creates its job, the compatible electrons
    that began to wait meanwhile. One job, not one now and one when it ends."""
    aws.settings(concurrent_jobs_quota=1)
    first = SlowUpload(s3_bucket_name=BUCKET, ecr_image_uri=IMAGE, poll_freq=0.3)

    async def sweep() -> list[Any]:
        head = asyncio.create_task(first.run(talker, [1], {}, metadata(1)))
        while not any(gate.held for gate in list(slots._gates.values())):
            await asyncio.sleep(0.01)  # the first holds the only slot, uploading
        later = [hosted().run(talker, [node], {}, metadata(node)) for node in (2, 3)]
        return await asyncio.gather(head, *later)

    assert asyncio.run(sweep()) == [10, 20, 30]
    asyncio.run(packs.settled())
    (job,) = our_jobs(aws)  # one CreateJob for the three
    assert members(job) == 3
    assert first._handle.split(" member ")[0] == job["jobArn"]


def test_a_lone_electron_still_goes_alone_at_once(aws: Any) -> None:
    first = SlowUpload(s3_bucket_name=BUCKET, ecr_image_uri=IMAGE, poll_freq=0.3)
    assert asyncio.run(first.run(talker, [4], {}, metadata(4))) == 40
    (job,) = our_jobs(aws)
    assert "covalent_member_0" not in job["hyperParameters"]  # a job of its own, unpacked
    assert " member " not in first._handle


def members(job: dict[str, Any]) -> int:
    return len([name for name in job["hyperParameters"] if name.startswith("covalent_member_")])


def crasher(x: int) -> int:
    import os

    os._exit(3)


def test_a_members_crash_time_limit_and_cancel_leave_the_others_results_intact(
    aws: Any,
) -> None:
    crashing, slow, cancelled = hosted(), hosted(time_limit=2), hosted()
    calm = [hosted() for _ in range(SLOTS + 2)]  # with them, two electrons a job

    async def scenario() -> tuple[list[Any], list[Any]]:
        runs = [(crashing, crasher, 1), (slow, sleeper(60), 2), (cancelled, sleeper(60), 3)]
        runs += [(executor, sleeper(0.5), 10 + i) for i, executor in enumerate(calm)]
        task = asyncio.create_task(behind_full_slots(runs))
        while cancelled._handle is None:
            await asyncio.sleep(0.05)
        assert await cancelled.cancel(metadata(3), cancelled._handle) is True
        return await task

    _, outcomes = asyncio.run(scenario())
    assert isinstance(outcomes[0], TaskRuntimeError) and "exit code 3" in str(outcomes[0])
    assert isinstance(outcomes[1], TaskRuntimeError) and "time limit of 2 s" in str(outcomes[1])
    assert isinstance(outcomes[2], TaskCancelledError)
    assert outcomes[3:] == [10 + i for i in range(len(calm))]  # the others' results intact
    for executor in (crashing, slow, cancelled):
        assert " member " in executor._handle  # each ran in a packed job
    assert {job["status"] for job in packed_jobs(aws)} == {"COMPLETED"}  # which ran to its end


def test_a_member_is_cancelled_by_its_job_handle_alone_in_a_server_that_never_saw_its_job(
    aws: Any, tmp_path: Any
) -> None:
    """A server restarted since (or another one) cancels a packed member with the handle
    Covalent stored: the job's first prefix, where the job looks for cancels, comes from
    the job itself (``GetJob``)."""
    from tests.test_members import Spec, _greets, _sleeps, prepare, start_in_braket_in_a_box

    record = tmp_path / "record.json"
    pack = prepare(aws, [Spec(_greets, ("quick",)), Spec(_sleeps, (str(record),))], parallel=2)
    arn = start_in_braket_in_a_box(aws, pack)
    while not record.exists():
        assert aws.braket.get_job(jobArn=arn)["status"] in ("QUEUED", "RUNNING")
        time.sleep(0.1)
    executor = hosted()
    handle = f"{arn}{packs.HANDLE_SEPARATOR}{pack.uris[1]}"
    assert asyncio.run(executor.cancel(metadata(1), handle)) is True

    ended = wait_for(aws, arn, {"COMPLETED", "FAILED", "CANCELLED"})
    assert ended["status"] == "COMPLETED"  # the job went on: only that member was stopped
    assert pack.outcome(aws, 0)["result"] == "hello quick!"
    assert pack.outcome(aws, 1)["stopped"] == "cancelled"

    from covalent_braket_plugin.errors import BraketJobError
    from covalent_braket_plugin.job import runner_archive
    from tests.emulator.test_container import upload
    from tests.emulator.test_jobs import job_request

    plain = job_request(upload(aws, runner_archive()[0], "runner.tar.gz"), jobName="cov-plain")
    alone = aws.braket.create_job(**plain)["jobArn"]
    with pytest.raises(BraketJobError, match="not a packed job"):  # a handle that lies
        packs.cancel_member(executor.settings(), alone, pack.uris[1])
    aws.braket.cancel_job(jobArn=alone)


def test_a_packed_job_killed_halfway_keeps_finished_results_and_sends_the_rest_again(
    aws: Any,
) -> None:
    nodes = list(range(1, 11))  # two electrons a job; odd ones quick, even ones slow
    # cleanup off: the quick members' results stay for the test to see
    executors = [hosted(pack_parallel=2, cleanup=False) for _ in nodes]
    work = [sleeper(0.2 if node % 2 else 5) for node in nodes]

    async def scenario() -> tuple[list[Any], dict[str, Any], set[str]]:
        task = asyncio.create_task(
            behind_full_slots(list(zip(executors, work, nodes, strict=True)))
        )
        while True:  # a packed job with one member's result there and one's not: it is lost
            await asyncio.sleep(0.5)
            done = {key.rsplit("/", 1)[0] for key in _keys(aws) if key.endswith("/result.pkl")}
            for job in running_packed_jobs(aws):
                prefixes = {prefix_of(value) for value in member_entries(job)}
                if 0 < len(done & prefixes) < len(prefixes):
                    aws.braket.cancel_job(jobArn=job["jobArn"])
                    return (await task)[1], job, done & prefixes

    outcomes, lost, finished = asyncio.run(scenario())
    assert outcomes == nodes  # every electron's value came home
    assert aws.braket.get_job(jobArn=lost["jobArn"])["status"] == "CANCELLED"
    results_written = [
        entry["path"]
        for entry in aws.control.journal(service="s3", operation="PutObject")
        if entry["path"].endswith("/result.pkl")
    ]
    for prefix in finished:  # what finished before the loss ran once, to completion
        assert len([path for path in results_written if prefix in path]) == 1
    unfinished = {node_of(prefix_of(value)) for value in member_entries(lost)} - {
        node_of(prefix) for prefix in finished
    }
    assert unfinished
    for node in unfinished:  # sent again alone: a job of its own
        again = [
            job
            for job in our_jobs(aws)
            if job["tags"]["covalent:node_id"] == node and job["jobArn"] != lost["jobArn"]
        ]
        assert [members(job) for job in again] == [0]
        assert again[0]["status"] == "COMPLETED"


def running_packed_jobs(aws: Any) -> list[dict[str, Any]]:
    """The packed jobs running now (one search, and a GetJob for each running job that no
    holder runs: few calls, within the request quotas)."""
    found = aws.braket.search_jobs(filters=[])["jobs"]
    running = [job for job in found if job["status"] == "RUNNING" and "-10" not in job["jobName"]]
    jobs = [aws.braket.get_job(jobArn=job["jobArn"]) for job in running]
    return [job for job in jobs if "covalent_member_1" in job["hyperParameters"]]


def member_entries(job: dict[str, Any]) -> list[str]:
    hyperparameters = job["hyperParameters"]
    return [value for name, value in hyperparameters.items() if name.startswith("covalent_member_")]


def prefix_of(entry: str) -> str:
    return json.loads(entry)["uri"].split("/", 3)[3]


def node_of(prefix: str) -> str:
    return prefix.split("/node-")[1].split("/")[0]


def test_a_warm_job_takes_a_later_electron_without_a_new_job_and_ends_after_its_idle_window(
    aws: Any,
) -> None:
    first, second, third = (hosted(warm_seconds=6) for _ in range(3))

    async def chain() -> tuple[list[Any], datetime]:
        a = await first.run(sleeper(0.1), [1], {}, metadata(1))
        b = await second.run(sleeper(0.1), [a + 1], {}, metadata(2))  # depends on the first
        c = await third.run(sleeper(0.1), [b + 1], {}, metadata(3))
        return [a, b, c], datetime.now(timezone.utc)

    values, last = asyncio.run(chain())
    assert values == [1, 2, 3]
    created = [
        entry
        for entry in aws.control.journal(service="braket", operation="CreateJob")
        if not entry.get("error")
    ]
    assert len(created) == 1  # one job start for the chain
    [job] = our_jobs(aws)
    arns = {executor._handle.split(" member ")[0] for executor in (first, second, third)}
    assert arns == {job["jobArn"]}
    assert job["hyperParameters"]["covalent_warm_seconds"] == "6"
    ended = wait_for(aws, job["jobArn"], {"COMPLETED", "FAILED", "CANCELLED"})
    assert ended["status"] == "COMPLETED"  # it ended by itself, idle
    assert ended["endedAt"] > last  # after the last electron's result: it had waited


@pytest.mark.parametrize(
    ("closed", "run_there", "still_open"),
    [
        (None, True, True),  # the job has not begun to close: its last look will see it
        ({"closing": True}, True, False),  # it may still take it: wait for its end
        ({"closing": True, "taken": ["000001", "000002"]}, True, False),
        ({"closing": True, "taken": ["000001"]}, False, False),  # it never will
        ("{not json", True, False),  # unreadable: as closing
    ],
    ids=["none", "closing", "taken", "not-taken", "unreadable"],
)
def test_a_hand_over_writes_the_member_first_then_reads_the_jobs_closed_json(
    aws: Any, closed: Any, run_there: bool, still_open: bool
) -> None:
    from covalent_braket_plugin.location import TaskLocation
    from covalent_braket_plugin.transfer import Upload

    settings = BraketSettings.from_mapping({"s3_bucket_name": BUCKET})
    head = TaskLocation.new(BUCKET, DISPATCH, 1, 0)
    if isinstance(closed, dict) and "taken" in closed:  # keys as the job names them
        closed = {**closed, "taken": [head.key(f"more/{n}.json") for n in closed["taken"]]}
    if closed is not None:
        body = closed if isinstance(closed, str) else json.dumps(closed)
        aws.s3.put_object(Bucket=BUCKET, Key=head.key("closed.json"), Body=body.encode())
    aws.control.clear_journal()

    async def hand_over() -> tuple[bool, packs.PackedJob]:
        pack = packs.PackedJob({}, asyncio.Future(), asyncio.Future(), head=head)
        packs.join(pack, (DISPATCH, "3"))  # numbered 1
        member = packs.join(pack, (DISPATCH, "2"))  # numbered 2
        joining = TaskLocation.new(BUCKET, DISPATCH, 2, 0)
        upload = Upload(sha256="ab" * 32, resumed=False, client_token="token")
        return await packs.hand_over(settings, pack, member, joining, upload), pack

    taken, pack = asyncio.run(hand_over())
    assert taken is run_there
    assert pack.closed is not still_open
    journal = aws.control.journal(service="s3")
    assert [entry["operation"] for entry in journal] == ["PutObject", "GetObject"]
    assert journal[0]["path"].endswith(head.key("more/000002.json"))  # its own number
    assert journal[1]["path"].endswith(head.key("closed.json"))  # read after it was written


def test_an_electron_sent_to_a_warm_job_that_closed_first_is_sent_again_alone_at_once(
    aws: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    send_more = packs._send_more

    def after_the_close(settings: BraketSettings, pack: Any, *rest: Any) -> Any:
        """The electron's more/ object lands only once the job named what it ran."""
        key = pack.head.key("closed.json")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if "taken" in json.loads(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()):
                    break
            except aws.s3.exceptions.NoSuchKey:
                pass
            time.sleep(0.05)
        return send_more(settings, pack, *rest)

    monkeypatch.setattr(packs, "_send_more", after_the_close)
    caplog.set_level("INFO", logger=server_log.name)
    first, second = hosted(warm_seconds=8), hosted(warm_seconds=8)

    async def chain() -> list[Any]:
        a = await first.run(sleeper(0.1), [1], {}, metadata(1))
        b = await second.run(sleeper(0.1), [a + 1], {}, metadata(2))  # joins the warm job
        await packs.settled()
        return [a, b]

    assert asyncio.run(chain()) == [1, 2]
    assert [entry for entry in aws.control.journal(service="s3") if "/more/" in entry["path"]]
    created = [
        entry
        for entry in aws.control.journal(service="braket", operation="CreateJob")
        if not entry.get("error")
    ]
    assert len(created) == 2  # the warm job, then the second electron's own
    warm_arn = first._handle.split(" member ")[0]
    assert packs.split_handle(second._handle) == (second._handle, None)  # a job of its own
    assert second._handle != warm_arn
    assert "closed before it took 9ac4-9ac4-9ac4:2: it is sent again, alone" in caplog.text
    assert "ended without the result" not in caplog.text  # it did not wait for the job's end


def test_warm_jobs_take_the_electrons_that_wait_for_a_slot(aws: Any) -> None:
    count = 3 * SLOTS  # more than the slots: the rest wait, and warm jobs take them

    async def sweep() -> list[Any]:
        executors = [hosted(warm_seconds=4, pack_parallel=4) for _ in range(count)]
        runs = [e.run(sleeper(0.3), [i], {}, metadata(i)) for i, e in enumerate(executors)]
        first = [asyncio.create_task(run) for run in runs[:SLOTS]]
        while any(e._handle is None for e in executors[:SLOTS]):
            await asyncio.sleep(0.05)  # every slot's job created: the rest must wait
        outcomes = await asyncio.gather(*first, *runs[SLOTS:])
        await packs.settled()
        return outcomes

    assert asyncio.run(sweep()) == list(range(count))
    created = [
        entry
        for entry in aws.control.journal(service="braket", operation="CreateJob")
        if not entry.get("error")
    ]
    assert len(created) <= SLOTS  # one round of job starts: no electron waited for a second
    more = [
        entry
        for entry in aws.control.journal(service="s3", operation="PutObject")
        if "/more/" in entry["path"]
    ]
    assert len(more) == count - len(created)  # each of the others handed over in the bucket


def _keys(aws: Any) -> list[str]:
    return [item["Key"] for item in aws.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_usage_shares_of_a_packed_job_add_up_to_its_billed_time(aws: Any) -> None:
    from covalent_braket_plugin.usage import wait_for_accounts

    nodes = list(range(1, 2 * SLOTS + 1))  # two electrons a job: one short, one long
    executors = [hosted() for _ in nodes]
    work = [sleeper(0.2 if node % 2 else 1.5) for node in nodes]
    _, outcomes = asyncio.run(behind_full_slots(list(zip(executors, work, nodes, strict=True))))
    assert outcomes == nodes
    wait_for_accounts()
    records: dict[str, list[dict[str, Any]]] = {}
    for key in [k for k in _keys(aws) if k.endswith("usage.json")]:
        record = json.loads(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        if record["packed"]:
            records.setdefault(record["job_arn"], []).append(record)
    packed = {job["jobArn"]: job for job in packed_jobs(aws)}
    assert set(records) == set(packed) and len(packed) == SLOTS
    for arn, shared in records.items():
        billed = packed[arn]["billableDuration"]
        assert {r["instance"]["job_billable_ms"] for r in shared} == {billed}
        assert sum(r["instance"]["billable_ms"] for r in shared) == billed
        assert all(r["packed"]["members"] == 2 for r in shared)
        assert all(
            r["packed"]["idle_ms"] == max(billed - sum(x["packed"]["run_ms"] for x in shared), 0)
            for r in shared
        )
    # covalent-braket jobs: a packed job's row counts its electrons and all of their shares
    settings = BraketSettings.from_mapping({"s3_bucket_name": BUCKET})
    rows = {row["job_arn"]: row for row in dispatch_jobs.jobs_rows(settings, DISPATCH)}
    for arn, shared in records.items():
        assert rows[arn]["electrons"] == 2
        assert rows[arn]["billable_ms"] == packed[arn]["billableDuration"]
        total = sum(r["cost"]["total"] for r in shared)
        assert rows[arn]["estimated_cost_usd"] == pytest.approx(total)
    assert sorted(row["electrons"] for row in rows.values()) == [1] * SLOTS + [2] * SLOTS


def test_shares_are_whole_and_add_up() -> None:
    assert shares(10, [1, 1, 1]) == [4, 3, 3] or sum(shares(10, [1, 1, 1])) == 10
    assert shares(1000, [0, 0]) == [500, 500]
    assert shares(7, [5, 0, 2]) == [5, 0, 2]
    assert sum(shares(12345, [3, 7, 11, 13])) == 12345
    assert shares(0, []) == []
