"""PipelineWorkflow: versions, statuses, and pausing / resuming a whole pipeline's tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from conveyor.client import (
    ConveyorClient,
    PipelineCommandRejected,
    PipelineNotAccepting,
    TaskClient,
    UnknownPipeline,
)
from store.db import transaction
from store.models import PipelineRow, PipelineVersionRow
from tests.support.actors import claim, eventually, nodes, review, rid, submit
from tests.support.pipelines import label_review
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import (
    Escalate,
    NodeStatus,
    Pause,
    TaskStatus,
)
from workflows.pipeline_messages import (
    PipelineStatus,
    PipelineView,
)


def fresh(**review: object) -> Pipeline:
    return label_review(name=f"pl-{rid()[:8]}", **review)


def edited(pipeline: Pipeline) -> Pipeline:
    """The same pipeline with one label changed: a new version."""
    raw = pipeline.model_dump(mode="json", exclude_defaults=True)
    raw["description"] = "v2: clearer instructions"
    return validate_pipeline(raw)


async def new_task(conveyor: ConveyorClient, name: str, **data: str) -> TaskClient:
    target = await conveyor.creation_target(name)
    created = await conveyor.create_task(
        target.pipeline, f"t-{rid()}", data or {"text": "x"}, start_paused=target.start_paused
    )
    return conveyor.task(created.workflow_id)


async def until(
    conveyor: ConveyorClient, name: str, check: Callable[[PipelineView], bool]
) -> PipelineView:
    for _ in range(300):
        view = await conveyor.describe_pipeline(name)
        if check(view):
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"pipeline {name} never reached the expected state: {view}")


async def test_versions_are_immutable_and_tasks_stay_pinned(
    conveyor: ConveyorClient, store_sessions: sessionmaker[Session]
) -> None:
    v1 = fresh()
    applied = await conveyor.apply_pipeline(v1)
    assert applied.new_version and applied.status == PipelineStatus.DRAFT
    again = await conveyor.apply_pipeline(v1)
    assert not again.new_version and again.version == applied.version

    with pytest.raises(PipelineNotAccepting, match="Draft"):
        await conveyor.creation_target(v1.name)
    await conveyor.set_pipeline_status(v1.name, PipelineStatus.ACTIVE)
    old = await new_task(conveyor, v1.name)

    v2 = edited(v1)
    moved = await conveyor.apply_pipeline(v2)
    assert moved.new_version and moved.version == v2.content_hash() != v1.content_hash()
    new = await new_task(conveyor, v1.name)
    assert (await old.state()).pipeline_hash == v1.content_hash()
    assert (await new.state()).pipeline_hash == v2.content_hash()

    token = await claim(old, "ana", ["labeler"], "label")
    await submit(old, "ana", "label", token, {"label": "positive"})
    assert (await old.state()).pipeline_hash == v1.content_hash()  # finishes on v1

    view = await conveyor.describe_pipeline(v1.name)
    assert [v.hash for v in view.versions] == [v1.content_hash(), v2.content_hash()]
    for _ in range(100):
        with transaction(store_sessions) as session:
            row = session.get(PipelineRow, v1.name)
            hashes = set(
                session.scalars(
                    select(PipelineVersionRow.hash).where(
                        PipelineVersionRow.pipeline_name == v1.name
                    )
                )
            )
            current = row.current_version if row else None
        if current == v2.content_hash():
            break
        await asyncio.sleep(0.05)
    assert current == v2.content_hash()
    assert hashes == {v1.content_hash(), v2.content_hash()}


async def test_status_transitions_are_checked(conveyor: ConveyorClient) -> None:
    pipeline = fresh()
    with pytest.raises(UnknownPipeline, match="apply"):
        await conveyor.describe_pipeline(pipeline.name)
    await conveyor.apply_pipeline(pipeline)
    with pytest.raises(PipelineCommandRejected, match="Draft pipeline cannot become Paused"):
        await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.PAUSED)
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE)
    with pytest.raises(PipelineCommandRejected, match="cannot become Archived"):
        await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ARCHIVED)
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.COMPLETED)
    with pytest.raises(PipelineNotAccepting, match="Completed"):
        await conveyor.creation_target(pipeline.name)
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ARCHIVED)
    view = await until(conveyor, pipeline.name, lambda v: v.status == PipelineStatus.ARCHIVED)
    assert not view.accepts_tasks
    with pytest.raises(PipelineCommandRejected, match="Archived"):
        await conveyor.apply_pipeline(edited(pipeline))
    with pytest.raises(PipelineCommandRejected, match="Archived"):
        await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE)


async def test_pause_and_resume_a_pipeline_with_tasks_in_every_state(
    conveyor: ConveyorClient, store_sessions: sessionmaker[Session]
) -> None:
    conveyor.pipeline_recheck_seconds = 1.0
    pipeline = fresh()
    await conveyor.apply_pipeline(pipeline)
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE)

    claimed = await new_task(conveyor, pipeline.name)
    token = await claim(claimed, "ana", ["labeler"], "label")
    waiting = await new_task(conveyor, pipeline.name)
    escalated = await new_task(conveyor, pipeline.name)
    await escalated.send(Escalate(request_id=rid(), admin="root", reason="legal check"))
    operator_paused = await new_task(conveyor, pipeline.name)
    await operator_paused.send(Pause(request_id=rid(), by="ops", reason="customer asked"))
    done = await new_task(conveyor, pipeline.name)
    t = await claim(done, "ana", ["labeler"], "label")
    await submit(done, "ana", "label", t, {"label": "neutral"})
    t = await claim(done, "bo", ["reviewer"], "check")
    await review(done, "bo", "check", t, "pass")
    await done.result()

    before = {
        task.workflow_id: (await task.state()).status
        for task in (claimed, waiting, escalated, operator_paused)
    }
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.PAUSED, by="ops")
    view = await until(conveyor, pipeline.name, lambda v: v.sweep is not None and v.sweep.done)
    assert view.status == PipelineStatus.PAUSED and view.sweep is not None
    assert view.sweep.remaining == 0
    for task in (claimed, waiting, escalated, operator_paused):
        assert (await task.state()).status == TaskStatus.PAUSED
    assert (await done.state()).status == TaskStatus.FINISHED

    during = await new_task(conveyor, pipeline.name)  # created while paused: starts Paused
    assert (await during.state()).status == TaskStatus.PAUSED

    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE, by="ops")
    await until(conveyor, pipeline.name, lambda v: v.sweep is not None and v.sweep.done)
    for task in (claimed, waiting, escalated):
        expected = before[task.workflow_id]
        await eventually(task, lambda v, expected=expected: v.status == expected)  # type: ignore[misc]
    await eventually(during, lambda v: v.status == TaskStatus.IN_PROGRESS)
    await asyncio.sleep(0.5)
    assert (await operator_paused.state()).status == TaskStatus.PAUSED  # ops paused it: stays
    # The claim survived: its holder submits with the same token.
    await submit(claimed, "ana", "label", token, {"label": "negative"})
    assert nodes(await claimed.state())["label"].status == NodeStatus.SUBMITTED


async def test_a_task_that_missed_the_fan_out_is_paused_by_the_re_check(
    conveyor: ConveyorClient,
) -> None:
    conveyor.pipeline_recheck_seconds = 1.0
    pipeline = fresh()
    await conveyor.apply_pipeline(pipeline)
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE)
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.PAUSED)
    await until(conveyor, pipeline.name, lambda v: v.sweep is not None and v.sweep.done)
    # A creator that read the status before the pause (stale) starts the task running.
    created = await conveyor.create_task(pipeline, "slipped", {"text": "x"}, start_paused=False)
    task = conveyor.task(created.workflow_id)
    assert (await task.state()).status == TaskStatus.IN_PROGRESS
    await eventually(task, lambda v: v.status == TaskStatus.PAUSED, timeout=20)
