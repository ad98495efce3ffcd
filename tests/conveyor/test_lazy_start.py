"""Lazy start: tasks created as rows, their workflows started by the first command that needs
them — on the real dev server and each store dialect."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from activities.llm import LlmSettings
from conveyor.bulk import DeleteOutcome, Selection, delete_tasks, export
from conveyor.client import CommandRejected, ConveyorClient, NoWorkerResponded
from conveyor.creation import RowOutcome
from conveyor.importing import import_file
from conveyor.pipelines import load_pipeline_file
from conveyor.reconcile import reconcile
from conveyor.starting import (
    background_starts,
    start_input,
    start_queued,
    untouched_rows_of,
)
from conveyor.starting import engine_untouched_rows as engine_rows
from conveyor.workqueue import PipelinePaused, claim_node, next_work
from store.db import transaction
from store.lazy import QUEUED, UNTOUCHED, not_started
from store.models import TaskRow
from store.tasks import status_counts
from store.workqueue import claimable
from tests.support.actors import (
    claim,
    eventually,
    nodes,
    review,
    rid,
    submit,
    workflow_exists,
)
from tests.support.pipelines import label_review, llm_then_edit
from worker import build_worker
from workflows.graph import Pipeline, StartMode
from workflows.messages import Claim, NodeStatus, Tag, TaskStatus
from workflows.options import task_workflow_id
from workflows.pipeline_messages import PipelineStatus

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@pytest.fixture
def task_queue() -> str:
    return f"lazy-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def conveyor(
    client: Client, sessions: sessionmaker[Session], task_queue: str
) -> AsyncIterator[ConveyorClient]:
    async with build_worker(client, task_queue, sessions=sessions, llm=LlmSettings()):
        conveyor = ConveyorClient(client, task_queue, update_timeout=20)
        conveyor.attach_store(sessions)
        conveyor.pipeline_recheck_seconds = 1.0
        yield conveyor


def fresh(**changes: object) -> Pipeline:
    return label_review(name=f"lazy-{uuid.uuid4().hex[:8]}").model_copy(update=changes)


def rows(count: int) -> list[dict[str, str]]:
    return [{"id": f"row-{i}", "text": f"text {i}"} for i in range(count)]


def start_column(sessions: sessionmaker[Session], pipeline: str) -> dict[str, str | None]:
    with transaction(sessions) as session:
        found = session.execute(
            text("SELECT task_key, start FROM tasks WHERE pipeline_name = :p"), {"p": pipeline}
        )
        return {key: start for key, start in found}


async def until(
    read: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 10.0
) -> T:
    """Poll ``read`` until ``done`` holds or ``timeout`` passes; the last value either way."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await read()
        if done(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


def counts(sessions: sessionmaker[Session], pipeline: str) -> Callable[[], Awaitable[Any]]:
    """A reader of the pipeline's task counts by status, for :func:`until`."""

    async def read() -> dict[str, int]:
        with transaction(sessions) as session:
            return status_counts(session, pipeline)

    return read


async def all_exist(conveyor: ConveyorClient, ids: list[str]) -> bool:
    return all([await workflow_exists(conveyor, w) for w in ids])


async def until_row(
    sessions: sessionmaker[Session], pipeline: str, key: str, want: str | None
) -> None:
    async def read() -> str | None:
        return start_column(sessions, pipeline).get(key, "?")

    assert await until(read, lambda start: start == want) == want, f"{key}: start never {want!r}"


async def test_created_tasks_are_workable_rows_without_workflows(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    pipeline = fresh()
    results = await conveyor.create_tasks(pipeline, rows(30), key_column="id")
    assert [r.outcome for r in results] == [RowOutcome.CREATED] * 30
    assert set(start_column(sessions, pipeline.name).values()) == {"untouched"}
    # Workable at once, from the store alone: no workflow exists.
    with transaction(sessions) as session:
        work = claimable(session, "ana", ["labeler"], pipeline=pipeline.name, limit=100)
        counts = status_counts(session, pipeline.name)
    assert len(work) == 30 and all(item.untouched for item in work)
    assert counts == {TaskStatus.IN_PROGRESS.value: 30}
    assert not await workflow_exists(conveyor, results[0].workflow_id or "")

    again = await conveyor.create_tasks(pipeline, rows(30), key_column="id")
    assert [r.outcome for r in again] == [RowOutcome.EXISTS] * 30
    assert len(start_column(sessions, pipeline.name)) == 30
    # Created one at a time (which starts at once) with a key already there: nothing new.
    single = await conveyor.create_task(pipeline, "row-3", {"text": "other data"})
    assert not single.created and not await workflow_exists(conveyor, single.workflow_id)


async def test_the_first_claim_starts_the_task_where_its_row_left_it(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    pipeline = fresh()
    await conveyor.create_tasks(pipeline, rows(1), key_column="id")
    with transaction(sessions) as session:
        created_at = session.scalars(
            select(TaskRow.created_at).where(TaskRow.pipeline_name == pipeline.name)
        ).one()
    claimed = await next_work(conveyor, sessions, "ana", ["labeler"], pipeline=pipeline.name)
    task = conveyor.task(claimed.item.workflow_id)
    view = await task.state()
    assert nodes(view)["label"].status == NodeStatus.CLAIMED
    assert nodes(view)["label"].assignee == "ana"
    assert view.created_at == created_at
    assert view.pipeline_hash == pipeline.content_hash()  # the version pinned at creation
    await until_row(sessions, pipeline.name, "row-0", None)  # the workflow's own snapshot
    with transaction(sessions) as session:
        kinds = list(
            session.execute(
                text("SELECT kind FROM timeline_events WHERE workflow_id = :w ORDER BY seq"),
                {"w": task.workflow_id},
            ).scalars()
        )
    assert kinds.count("created") == 1  # the row's creation events are the workflow's own
    await submit(task, "ana", "label", claimed.token, {"label": "positive"})
    await review(task, "bo", "check", await claim(task, "bo", ["reviewer"], "check"), "pass")
    assert (await task.result()).status == TaskStatus.FINISHED


async def test_concurrent_first_claims_have_one_winner(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    pipeline = fresh()
    [created] = await conveyor.create_tasks(pipeline, rows(1), key_column="id")
    assert created.workflow_id is not None
    people = [f"person-{i}" for i in range(8)]
    outcomes = await asyncio.gather(
        *(
            claim_node(conveyor, sessions, who, ["labeler"], created.workflow_id, "label")
            for who in people
        ),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1, outcomes
    assert all(isinstance(o, CommandRejected) for o in lost), lost
    assert all(
        "claimed" in o.result.message.lower() for o in lost if isinstance(o, CommandRejected)
    ), lost
    view = await conveyor.task(created.workflow_id).state()
    assert nodes(view)["label"].status == NodeStatus.CLAIMED


async def test_any_command_starts_an_untouched_task_and_a_query_does_not(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    pipeline = fresh()
    results = await conveyor.create_tasks(pipeline, rows(3), key_column="id")
    tagged, signalled, shown = (conveyor.task(r.workflow_id or "") for r in results)
    await tagged.send(Tag(request_id=rid(), by="root", tags=["urgent"]))
    assert (await tagged.state()).tags == ["urgent"]
    # A signal starts it too (signal-with-start); its claim lands.
    await signalled.signal(Claim(request_id=rid(), contributor="bo", roles=["labeler"]))
    await eventually(signalled, lambda v: nodes(v)["label"].assignee == "bo")
    # A query of an untouched task answers from its row, and starts nothing.
    view = await shown.state()
    assert view.status == TaskStatus.IN_PROGRESS and view.task_key == "row-2"
    assert nodes(view)["label"].status == NodeStatus.AVAILABLE
    assert not await workflow_exists(conveyor, shown.workflow_id)
    # The same view its workflow gives once started.
    await shown.send(Tag(request_id=rid(), by="root", tags=["now"]))
    started = await shown.state()
    assert started.created_at == view.created_at and started.data == view.data
    assert nodes(started)["label"].available_since == nodes(view)["label"].available_since


async def test_a_start_that_never_reached_temporal_is_sent_again(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    """The process that began a start died before Temporal heard of it: the row says
    ``starting`` and no workflow exists. The next command starts it."""
    pipeline = fresh()
    [created] = await conveyor.create_tasks(pipeline, rows(1), key_column="id")
    workflow_id = created.workflow_id or ""
    assert start_input(sessions, workflow_id) is not None  # marks it, starts nothing
    assert start_column(sessions, pipeline.name) == {"row-0": "starting"}
    assert not await workflow_exists(conveyor, workflow_id)
    claimed = await next_work(conveyor, sessions, "ana", ["labeler"], pipeline=pipeline.name)
    assert claimed.item.workflow_id == workflow_id
    assert nodes(await conveyor.task(workflow_id).state())["label"].assignee == "ana"


async def test_a_first_claim_with_no_worker_is_answered_once_one_runs(
    client: Client, sessions: sessionmaker[Session], task_queue: str
) -> None:
    """The workflow started, but no worker ran its first task (killed, or none yet): the
    claim's retry with the same request id gets the one answer, and nothing is doubled."""
    conveyor = ConveyorClient(client, task_queue, update_timeout=2)
    conveyor.attach_store(sessions)
    pipeline = fresh()
    [created] = await conveyor.create_tasks(pipeline, rows(1), key_column="id")
    task = conveyor.task(created.workflow_id or "")
    claim = Claim(request_id=rid(), contributor="ana", roles=["labeler"], node="label")
    with pytest.raises(NoWorkerResponded):
        await task.send(claim, untouched=True)
    assert await workflow_exists(conveyor, task.workflow_id)
    async with build_worker(client, task_queue, sessions=sessions, llm=LlmSettings()):
        first = await task.send(claim)
        again = await task.send(claim)
    assert first.accepted and again.token == first.token


async def test_pipeline_pause_holds_untouched_rows_and_refuses_their_claims(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    pipeline = fresh()
    await conveyor.apply_pipeline(pipeline)
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE)
    results = await conveyor.create_tasks(pipeline.name, rows(20), key_column="id")
    started = conveyor.task(results[0].workflow_id or "")
    await started.send(Tag(request_id=rid(), by="root", tags=["started"]))

    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.PAUSED)
    await until(
        lambda: conveyor.describe_pipeline(pipeline.name),
        lambda view: view.sweep is not None and view.sweep.done,
    )
    with transaction(sessions) as session:
        assert status_counts(session, pipeline.name) == {TaskStatus.PAUSED.value: 20}
        assert not claimable(session, "ana", ["labeler"], pipeline=pipeline.name)
    assert (await started.state()).status == TaskStatus.PAUSED
    # The work queue's claim refuses at once; a claim sent straight at an untouched task (as
    # the CLI sends it) starts it Paused, and the task refuses it.
    untouched = results[1].workflow_id or ""
    with pytest.raises(PipelinePaused, match="resume"):
        await claim_node(conveyor, sessions, "ana", ["labeler"], untouched, "label")
    assert not await workflow_exists(conveyor, untouched)
    claim = Claim(request_id=rid(), contributor="ana", roles=["labeler"], node="label")
    with pytest.raises(CommandRejected, match=r"[Pp]aused"):
        await conveyor.task(untouched).send(claim)
    assert (await conveyor.task(untouched).state()).status == TaskStatus.PAUSED

    # Created while Paused: rows Paused too.
    late = await conveyor.create_tasks(
        pipeline.name, [{"id": "late", "text": "x"}], key_column="id"
    )
    assert late[0].outcome == RowOutcome.CREATED

    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE)
    resumed = {TaskStatus.IN_PROGRESS.value: 21}
    assert await until(counts(sessions, pipeline.name), lambda c: c == resumed) == resumed
    claimed = await next_work(conveyor, sessions, "ana", ["labeler"], pipeline=pipeline.name)
    assert claimed.token


async def test_a_claim_racing_a_pause_is_paused_with_the_rest(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    pipeline = fresh()
    await conveyor.apply_pipeline(pipeline)
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE)
    results = await conveyor.create_tasks(pipeline.name, rows(40), key_column="id")
    ids = [r.workflow_id or "" for r in results]

    async def claims() -> None:
        for i, workflow_id in enumerate(ids):
            with contextlib.suppress(CommandRejected, PipelinePaused):
                await claim_node(conveyor, sessions, f"p{i}", ["labeler"], workflow_id, "label")

    racing = asyncio.create_task(claims())
    await asyncio.sleep(0.05)
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.PAUSED)
    await racing
    # Within the re-check, every task is Paused: started by a claim or not.
    paused = {TaskStatus.PAUSED.value: 40}
    assert await until(counts(sessions, pipeline.name), lambda c: c == paused, 20) == paused
    for workflow_id in ids[-3:]:
        with pytest.raises(PipelinePaused):
            await claim_node(conveyor, sessions, "late", ["labeler"], workflow_id, "label")
        claim = Claim(request_id=rid(), contributor="late", roles=["labeler"], node="label")
        with pytest.raises(CommandRejected, match=r"[Pp]aused"):
            await conveyor.task(workflow_id).send(claim)


async def test_eager_pipelines_start_at_creation(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    eager = fresh(task_start=StartMode.EAGER)
    [made] = await conveyor.create_tasks(eager, rows(1), key_column="id")
    assert await workflow_exists(conveyor, made.workflow_id or "")
    assert start_column(sessions, eager.name) in ({}, {"row-0": None})


def model_first() -> Pipeline:
    return llm_then_edit("openai/offline").model_copy(
        update={"name": f"lazy-llm-{uuid.uuid4().hex[:6]}"}
    )


async def test_tasks_that_start_with_a_model_are_started_by_the_background_starter(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    pipeline = model_first()
    results = await conveyor.create_tasks(pipeline, [{"question": f"q{i}"} for i in range(30)])
    assert {r.outcome for r in results} == {RowOutcome.CREATED}
    ids = [r.workflow_id or "" for r in results]
    assert set(start_column(sessions, pipeline.name).values()) == {"queued"}
    assert not await workflow_exists(conveyor, ids[0])
    with transaction(sessions) as session:
        assert not_started(session, pipeline.name)[QUEUED] == 30
    # One round takes at most its batch; the background starter goes on until none is left.
    assert await start_queued(conveyor.starter, sessions, batch=10) == 10
    async with background_starts(conveyor.starter, sessions, poll_seconds=0.05):
        assert await until(lambda: all_exist(conveyor, ids), bool)
    with transaction(sessions) as session:
        assert not_started(session, pipeline.name)[QUEUED] == 0
    assert await start_queued(conveyor.starter, sessions) == 0  # nothing is started twice


async def test_a_background_start_cut_short_is_sent_again(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    """A start whose sender died after marking it (row ``starting``, no workflow) is sent
    again by the background starter's recheck."""
    pipeline = model_first()
    results = await conveyor.create_tasks(pipeline, [{"question": f"q{i}"} for i in range(3)])
    ids = [r.workflow_id or "" for r in results]
    assert start_input(sessions, ids[0]) is not None  # marked starting, never started
    assert start_column(sessions, pipeline.name)[results[0].key or ""] == "starting"
    async with background_starts(
        conveyor.starter, sessions, poll_seconds=0.05, recheck_seconds=0.1
    ):
        assert await until(lambda: all_exist(conveyor, ids), bool)


async def test_queued_tasks_of_a_paused_pipeline_start_paused(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    pipeline = model_first()
    await conveyor.apply_pipeline(pipeline)
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE)
    [made] = await conveyor.create_tasks(pipeline.name, [{"question": "q"}])
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.PAUSED)
    await until(counts(sessions, pipeline.name), lambda c: c == {TaskStatus.PAUSED.value: 1})
    assert await start_queued(conveyor.starter, sessions) == 1
    task = conveyor.task(made.workflow_id or "")
    assert (await task.state()).status == TaskStatus.PAUSED


async def test_reconcile_tells_untouched_and_not_yet_started_tasks_from_orphans(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    pipeline = fresh()
    results = await conveyor.create_tasks(pipeline, rows(4), key_column="id")
    ids = [r.workflow_id or "" for r in results]
    await claim_node(conveyor, sessions, "ana", ["labeler"], ids[0], "label")
    assert start_input(sessions, ids[1]) is not None  # its sender stopped before the start
    await until_row(sessions, pipeline.name, "row-0", None)

    report = await reconcile(conveyor, sessions, pipeline=pipeline.name)
    assert report.orphans == [] and report.drifted == []
    assert report.untouched == 2
    assert report.not_started == [ids[1]]
    assert report.checked == 2


async def test_the_lazy_start_example_runs(
    client: Client, db_url: str, sessions: sessionmaker[Session], task_queue: str
) -> None:
    """``examples/lazy_start.py`` against this server and store, as a user runs it."""
    env = {
        **os.environ,
        "CONVEYOR_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "CONVEYOR_DATABASE_URL": db_url,
        "CONVEYOR_TASK_QUEUE": task_queue,
    }
    async with build_worker(client, task_queue, sessions=sessions, llm=LlmSettings()):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "examples" / "lazy_start.py"),
            f"lazy-example-{uuid.uuid4().hex[:8]}",
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
    text_out = out.decode()
    assert proc.returncode == 0, text_out
    assert "created 1000 task(s)" in text_out
    assert "untouched before the claim: 1000" in text_out
    assert "untouched after the claim: 999" in text_out


async def test_export_and_delete_take_untouched_and_started_tasks_alike(
    conveyor: ConveyorClient, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    pipeline = fresh()
    results = await conveyor.create_tasks(pipeline, rows(6), key_column="id")
    ids = [r.workflow_id or "" for r in results]
    await claim_node(conveyor, sessions, "ana", ["labeler"], ids[0], "label")
    await conveyor.task(ids[1]).send(Tag(request_id=rid(), by="root", tags=["x"]))
    await until_row(sessions, pipeline.name, "row-1", None)

    out = tmp_path / "tasks.jsonl"
    report = await asyncio.to_thread(export, sessions, pipeline.name, None, "jsonl", out)
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert report.rows == 6 and sorted(r["workflow_id"] for r in exported) == sorted(ids)
    by_id = {r["workflow_id"]: r for r in exported}
    assert by_id[ids[0]]["status"] == by_id[ids[5]]["status"] == TaskStatus.IN_PROGRESS.value

    deleted = await delete_tasks(
        conveyor, sessions, Selection(pipeline=pipeline.name), confirm=True
    )
    assert deleted.ok and sorted(deleted.ids(DeleteOutcome.DELETED)) == sorted(ids)
    assert start_column(sessions, pipeline.name) == {}
    for workflow_id in ids:
        assert not await workflow_exists(conveyor, workflow_id)
    # A claim on a deleted untouched task finds nothing to start.
    with pytest.raises(RPCError):
        await conveyor.task(ids[5]).send(
            Claim(request_id=rid(), contributor="ana", roles=["labeler"], node="label")
        )


@pytest.mark.parametrize("example", ["label-review", "fan-out-join", "triage-gate"])
def test_rows_shared_between_tasks_are_the_engines_rows(example: str) -> None:
    """Where a pipeline's start cannot depend on the data, the rows of one task serve every
    other (its key, data and id swapped in): they must be exactly what the engine gives each."""
    pipeline = load_pipeline_file(str(ROOT / "examples" / f"{example}.yaml"))
    fields = [f.name for f in pipeline.dataset_fields()]
    keys = ["a", "it's", 'say "hi"', "ünï", "back\\slash", *(f"k{i}" for i in range(40))]
    rows = [
        (key, {name: f"{name} of {key} " * (i % 3 + 1) for name in fields})
        for i, key in enumerate(keys)
    ]
    now = datetime.now(UTC)
    shared: list[int] = []
    made = untouched_rows_of(pipeline, rows, now, shared=shared)
    for (key, data), got in zip(rows, made, strict=True):
        workflow_id = task_workflow_id(pipeline.name, key)
        assert got == engine_rows(pipeline, key, dict(data), workflow_id, now), key
    # Shared where the start ignores the data (every row after the two checked); never with a
    # gate (triage-gate: its route may depend on the data) or a prefilled field (fan-out-join).
    assert shared == (list(range(2, len(rows))) if example == "label-review" else [])


async def test_importing_a_file_twice_creates_its_tasks_once(
    conveyor: ConveyorClient, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    pipeline = fresh()
    source = tmp_path / "rows.csv"
    lines = ["id,text", *(f"r{i},text number {i}" for i in range(2500))]
    source.write_text("\n".join(lines) + "\n")
    first = await import_file(conveyor, pipeline, source, key_column="id", batch_size=1000)
    assert (first.created, first.existed, first.rejected) == (2500, 0, 0)
    again = await import_file(conveyor, pipeline, source, key_column="id", batch_size=1000)
    assert (again.created, again.existed, again.rejected) == (0, 2500, 0)
    with transaction(sessions) as session:
        assert status_counts(session, pipeline.name) == {TaskStatus.IN_PROGRESS.value: 2500}
        assert not_started(session, pipeline.name)[UNTOUCHED] == 2500


async def test_the_command_line_refuses_a_claim_in_a_paused_pipeline_at_once(
    client: Client, conveyor: ConveyorClient, db_url: str, sessions: sessionmaker[Session]
) -> None:
    pipeline = fresh()
    await conveyor.apply_pipeline(pipeline)
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE)
    [made] = await conveyor.create_tasks(pipeline.name, rows(1), key_column="id")
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.PAUSED)

    async def work() -> list[Any]:  # empty once the store has the pipeline Paused
        with transaction(sessions) as session:
            return claimable(session, "ana", ["labeler"], pipeline=pipeline.name)

    await until(work, lambda items: not items)
    env = {
        **os.environ,
        "CONVEYOR_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "CONVEYOR_DATABASE_URL": db_url,
        "CONVEYOR_TASK_QUEUE": conveyor.task_queue,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "starter.py"),
        "claim",
        made.workflow_id or "",
        "--as",
        "ana",
        "--roles",
        "labeler",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 2, (out, err)
    assert f"pipeline {pipeline.name} is Paused" in err.decode()
    assert not await workflow_exists(conveyor, made.workflow_id or "")  # refused before sending


async def test_a_start_sent_to_a_task_that_already_closed_gets_the_closed_tasks_answer(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    """The store has not caught up with a task whose workflow ran and closed (its row still
    says ``starting``): a command's start is refused by Temporal, and the command gets the
    answer any closed task gives, not a start error."""
    pipeline = fresh()
    [made] = await conveyor.create_tasks(pipeline, rows(1), key_column="id")
    workflow_id = made.workflow_id or ""
    task = conveyor.task(workflow_id)
    token = await claim(task, "ana", ["labeler"], "label")
    await submit(task, "ana", "label", token, {"label": "positive"})
    await review(task, "bo", "check", await claim(task, "bo", ["reviewer"], "check"), "pass")
    await task.result()
    later = Claim(request_id=rid(), contributor="cy", roles=["labeler"], node="label")
    with pytest.raises(RPCError) as closed:
        await task.send(later)
    with transaction(sessions) as session:
        session.execute(
            text(
                "UPDATE tasks SET start = 'starting', status = 'In Progress' WHERE workflow_id = :w"
            ),
            {"w": workflow_id},
        )
    with pytest.raises(RPCError) as stale:
        await task.send(later, untouched=True)
    assert stale.value.status == closed.value.status


async def test_several_first_claims_on_a_new_consensus_item_all_land(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    """Three people claim places on an untouched consensus item at the same moment, each
    without being told it is untouched: whichever start wins, every claim lands on the one
    workflow (one that missed the start asks again rather than failing as 'not found')."""
    from workflows.messages import Claim

    definition = load_pipeline_file(str(ROOT / "examples" / "consensus-label.yaml"))
    for round_ in range(5):
        pipeline = definition.model_copy(update={"name": f"lazy-cons-{uuid.uuid4().hex[:8]}"})
        results = await conveyor.create_tasks(pipeline, [{"id": "x", "text": "t"}], key_column="id")
        task = conveyor.task(results[0].workflow_id or "")
        claims = await asyncio.gather(
            *(
                task.send(Claim(request_id=rid(), contributor=who, roles=["labeler"], node="label"))
                for who in ("ana", "bo", "cy")
            )
        )
        assert all(c.accepted and c.token for c in claims), (round_, claims)
        view = await task.state()
        item = next(n for n in view.nodes if n.name == "label").consensus
        assert item is not None and sorted(s.claim.holder for s in item.slots) == [
            "ana",
            "bo",
            "cy",
        ]
