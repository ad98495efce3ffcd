"""Pipeline chains on the dev server: tasks of one pipeline creating tasks in another."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Replayer

from activities.chains import ChainActivities
from conveyor.client import ConveyorClient, PipelineCommandRejected, TaskClient, UnknownPipeline
from store.db import transaction
from store.models import TaskRow
from tests.support.actors import claim, eventually, rid, submit, workflow_exists
from workflows.chains import chain_task_key
from workflows.graph import ChainSpec, ChainTrigger, Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import (
    Deescalate,
    Escalate,
    TaskStatus,
)
from workflows.options import task_workflow_id
from workflows.pipeline_messages import (
    ChainsFired,
    FireTaskChains,
    PipelineStatus,
    PipelineView,
)
from workflows.task import TaskWorkflow

TASK = ChainTrigger.ON_TASK_COMPLETION
BATCH = ChainTrigger.ON_PIPELINE_COMPLETION


def source(name: str, *chains: dict[str, Any]) -> Pipeline:
    """start -> label (text predefined; label, topics to fill) -> end."""
    return validate_pipeline(
        {
            "name": name,
            "nodes": [
                {"name": "start", "kind": "start", "next": ["label"]},
                {
                    "name": "label",
                    "kind": "subtask",
                    "fields": [
                        {"name": "text", "type": "long_text", "source": "predefined"},
                        {"name": "label", "type": "select", "options": ["positive", "negative"]},
                        {
                            "name": "topics",
                            "type": "multi_select",
                            "options": ["billing", "shipping", "quality"],
                            "required": False,
                        },
                    ],
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
            "chains": list(chains),
        }
    )


def target(name: str, *chains: dict[str, Any]) -> Pipeline:
    """start -> check (text, sentiment, first_topic, origin, comment predefined) -> end."""
    optional = {"type": "short_text", "source": "predefined", "required": False}
    return validate_pipeline(
        {
            "name": name,
            "nodes": [
                {"name": "start", "kind": "start", "next": ["check"]},
                {
                    "name": "check",
                    "kind": "subtask",
                    "fields": [
                        {"name": "text", "type": "long_text", "source": "predefined"},
                        {"name": "sentiment", **optional},
                        {"name": "first_topic", **optional},
                        {"name": "origin", **optional},
                        {"name": "comment", **optional},
                        {"name": "ok", "type": "boolean"},
                    ],
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
            "chains": list(chains),
        }
    )


MAPPED = {
    "mapping": {"sentiment": "label", "first_topic": "$.label.topics[0]"},
    "values": {"origin": "support-inbox"},
}


def names() -> tuple[str, str]:
    suffix = rid()[:8]
    return f"src-{suffix}", f"dst-{suffix}"


async def applied(conveyor: ConveyorClient, pipeline: Pipeline, *, active: bool = True) -> None:
    await conveyor.apply_pipeline(pipeline)
    if active:
        await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE)


async def new_task(conveyor: ConveyorClient, pipeline: str, key: str, text: str) -> TaskClient:
    where = await conveyor.creation_target(pipeline)
    created = await conveyor.create_task(where.pipeline, key, {"text": text})
    return conveyor.task(created.workflow_id)


async def finish(task: TaskClient, label: str = "negative", **values: Any) -> None:
    token = await claim(task, "ana", [], "label")
    await submit(task, "ana", "label", token, {"label": label, **values})


def stored(sessions: sessionmaker[Session], pipeline: str) -> dict[str, dict[str, Any]]:
    """The pipeline's tasks in the store: key -> seed data."""
    with transaction(sessions) as session:
        rows = session.execute(
            select(TaskRow.task_key, TaskRow.data).where(TaskRow.pipeline_name == pipeline)
        ).all()
    return {key: dict(data) for key, data in rows}


async def until_stored(
    sessions: sessionmaker[Session], pipeline: str, count: int, timeout: float = 15.0
) -> dict[str, dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        tasks = stored(sessions, pipeline)
        if len(tasks) >= count or asyncio.get_running_loop().time() > deadline:
            return tasks
        await asyncio.sleep(0.1)


async def until_pipeline(
    conveyor: ConveyorClient, name: str, check: Any, timeout: float = 20.0
) -> PipelineView:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        view = await conveyor.describe_pipeline(name)
        if check(view):
            return view
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"pipeline {name} never got there: {view}")
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- on_task_completion


async def test_a_finished_task_creates_one_mapped_task_once(
    conveyor: ConveyorClient, store_sessions: sessionmaker[Session]
) -> None:
    a, b = names()
    await applied(conveyor, target(b))
    await applied(conveyor, source(a, {"to": b, **MAPPED}))
    task = await new_task(conveyor, a, "mail-1", "The parcel came late and broken.")
    await finish(task, topics=["shipping", "quality"])
    done = await task.result()  # the chain fires before the task's workflow completes
    assert done.status == TaskStatus.FINISHED
    # The chain path replays deterministically (it sits behind a workflow.patched marker).
    history = await task.handle.fetch_history()
    replayer = Replayer(workflows=[TaskWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)

    chained = conveyor.task(task_workflow_id(b, chain_task_key(a, "mail-1", TASK)))
    view = await chained.state()
    assert view.status == TaskStatus.IN_PROGRESS
    assert view.data == {
        "text": "The parcel came late and broken.",  # by name
        "sentiment": "negative",  # mapping override
        "first_topic": "shipping",  # JSON path
        "origin": "support-inbox",  # constant
    }  # comment: unmapped, left empty

    # The chain firing again (a retry, a replayed activity) finds the task already there.
    env = ActivityEnvironment(conveyor.client)
    env.info = dataclasses.replace(env.info, task_queue=conveyor.task_queue)
    request = FireTaskChains(
        pipeline=a,
        task_key="mail-1",
        workflow_id=task.workflow_id,
        data={"text": "changed", "label": "positive"},
        chains=source(a, {"to": b, **MAPPED}).chains,
    )
    again: ChainsFired = await env.run(ChainActivities(store_sessions).fire_task_chains, request)
    assert again.created == [] and again.existing == [chained.workflow_id]
    tasks = await until_stored(store_sessions, b, 1)
    assert list(tasks) == [chain_task_key(a, "mail-1", TASK)]
    assert (await chained.state()).data["sentiment"] == "negative"  # the first one, unchanged


async def test_a_chain_waits_for_a_draft_target_to_be_activated(
    conveyor: ConveyorClient,
) -> None:
    a, b = names()
    await applied(conveyor, target(b), active=False)  # Draft: takes no tasks yet
    await applied(conveyor, source(a, {"to": b}))
    task = await new_task(conveyor, a, "early", "first!")
    await finish(task)
    await eventually(task, lambda v: v.status == TaskStatus.FINISHED)
    chained_id = task_workflow_id(b, chain_task_key(a, "early", TASK))
    await asyncio.sleep(1.0)
    assert not await workflow_exists(conveyor, chained_id)

    await conveyor.set_pipeline_status(b, PipelineStatus.ACTIVE)
    async with asyncio.timeout(20):
        await task.result()  # the activity's next attempt fires the chain
    assert (await conveyor.task(chained_id).state()).data == {"text": "first!"}


async def test_a_chain_to_a_missing_pipeline_lets_the_task_finish(
    conveyor: ConveyorClient,
) -> None:
    a, b = names()
    await applied(conveyor, source(a, {"to": b}))  # b is never applied: allowed
    task = await new_task(conveyor, a, "lonely", "anyone there?")
    await finish(task)
    async with asyncio.timeout(15):
        done = await task.result()  # the non-retryable failure is logged, not fatal
    assert done.status == TaskStatus.FINISHED
    assert not await workflow_exists(
        conveyor, task_workflow_id(b, chain_task_key(a, "lonely", TASK))
    )


# --------------------------------------------------------------------------- on_pipeline_completion


async def test_completion_chains_wait_for_blocked_tasks_then_fire_once(
    conveyor: ConveyorClient, store_sessions: sessionmaker[Session]
) -> None:
    conveyor.pipeline_recheck_seconds = 1.0
    a, b = names()
    await applied(conveyor, target(b))
    chain = {"to": b, "trigger": "on_pipeline_completion", "values": {"origin": "batch"}}
    await applied(conveyor, source(a, chain))
    tasks = [await new_task(conveyor, a, f"k{i}", f"text {i}") for i in range(3)]
    for task in tasks[:2]:
        await finish(task)
    stuck = tasks[2]
    await stuck.send(Escalate(request_id=rid(), admin="root", reason="legal check"))
    for task in tasks[:2]:
        await task.result()
    await eventually(stuck, lambda v: v.status == TaskStatus.ESCALATED)

    await conveyor.set_pipeline_status(a, PipelineStatus.COMPLETED)
    view = await until_pipeline(conveyor, a, lambda v: v.blocked_by == {"Escalated": 1})
    assert not view.completion_fired
    await asyncio.sleep(1.5)  # another re-check or two: still blocked, nothing created
    assert stored(store_sessions, b) == {}

    await stuck.send(Deescalate(request_id=rid(), admin="root"))
    await finish(stuck, label="positive")
    view = await until_pipeline(conveyor, a, lambda v: v.completion_fired)
    assert view.blocked_by == {}
    created = await until_stored(store_sessions, b, 3)
    assert created == {
        chain_task_key(a, f"k{i}", BATCH): {"text": f"text {i}", "origin": "batch"}
        for i in range(3)
    }
    await asyncio.sleep(1.5)  # fired once: no further re-checks add anything
    assert len(stored(store_sessions, b)) == 3


# --------------------------------------------------------------------------- definition time


async def test_chains_that_loop_are_refused_at_apply(conveyor: ConveyorClient) -> None:
    suffix = rid()[:8]
    a, b, c = f"a-{suffix}", f"b-{suffix}", f"c-{suffix}"
    await conveyor.apply_pipeline(source(a, {"to": b}))  # b does not exist yet: fine
    await conveyor.apply_pipeline(target(b, {"to": c, "trigger": "on_pipeline_completion"}))
    with pytest.raises(
        PipelineCommandRejected, match=f"chains would loop: {c} -> {a} -> {b} -> {c}"
    ):
        await conveyor.apply_pipeline(source(c, {"to": a}))
    await conveyor.apply_pipeline(source(c))  # without the chain it applies
    with pytest.raises(PipelineCommandRejected, match=f"chains would loop: {b} -> {a} -> {b}"):
        await conveyor.apply_pipeline(target(b, {"to": a}))
    assert (await conveyor.describe_pipeline(b)).current == target(
        b, {"to": c, "trigger": "on_pipeline_completion"}
    )  # the refused definition was not applied


async def test_definitions_built_in_code_get_the_same_chain_checks(
    conveyor: ConveyorClient,
) -> None:
    a, b = names()
    await applied(conveyor, target(b), active=False)
    base = source(a)
    itself = base.model_copy(update={"chains": [ChainSpec(to=b), ChainSpec(to=a)]})
    with pytest.raises(
        PipelineCommandRejected, match=rf"chain #2 \(to '{a}'\): a chain to its own"
    ):
        await conveyor.apply_pipeline(itself)
    twice = base.model_copy(update={"chains": [ChainSpec(to=b), ChainSpec(to=b)]})
    with pytest.raises(PipelineCommandRejected, match="a second on_task_completion chain"):
        await conveyor.apply_pipeline(twice)
    unknown = source(a, {"to": b, "mapping": {"sentimnt": "label"}})
    with pytest.raises(PipelineCommandRejected, match="'sentimnt', which is not a predefined"):
        await conveyor.apply_pipeline(unknown)
    with pytest.raises(UnknownPipeline):
        await conveyor.describe_pipeline(a)  # nothing was applied
