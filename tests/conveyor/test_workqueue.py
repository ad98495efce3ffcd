"""The work queue over the store, claiming through the workflows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.llm import LlmSettings
from conveyor.client import ConveyorClient
from conveyor.workqueue import NoWorkAvailable, next_work
from store.db import transaction
from store.repositories import set_pipeline_status
from store.schemas import PipelineStatus
from store.workqueue import WorkItem, claimable, my_claims, my_submitted
from tests.support.actors import claim, nodes, review, submit
from tests.support.pipelines import label_review
from worker import build_worker
from workflows.graph import Pipeline

T = TypeVar("T")


@pytest.fixture
async def conveyor(
    client: Client, sessions: sessionmaker[Session]
) -> AsyncIterator[ConveyorClient]:
    task_queue = f"wq-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, task_queue, sessions=sessions, llm=LlmSettings()):
        yield ConveyorClient(client, task_queue, update_timeout=20)


def fresh_pipeline(**review: object) -> Pipeline:
    return label_review(name=f"wq-{uuid.uuid4().hex[:8]}", **review)


async def until(
    sessions: sessionmaker[Session],
    read: Callable[[Session], list[T]],
    predicate: Callable[[list[T]], bool],
    timeout: float = 10.0,
) -> list[T]:
    """Poll the store until the projection has caught up."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        with transaction(sessions) as session:
            items = read(session)
        if predicate(items):
            return items
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"store never satisfied the condition: {items}")
        await asyncio.sleep(0.05)


async def test_roles_rework_and_self_review_shape_the_queue(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    pipeline = fresh_pipeline(rejection_routing="same_person")
    created = await conveyor.create_task(pipeline, "a", {"text": "x"})
    task = conveyor.task(created.workflow_id)

    def queue(who: str, roles: list[str]) -> Callable[[Session], list[WorkItem]]:
        return lambda s: claimable(s, who, roles, pipeline=pipeline.name)

    await until(sessions, queue("ana", ["labeler"]), lambda items: len(items) == 1)
    assert await until(sessions, queue("bo", ["reviewer"]), lambda items: True) == []

    token = await claim(task, "ana", ["labeler", "reviewer"], "label")
    await submit(task, "ana", "label", token, {"label": "neutral"})
    # ana submitted: she may not review her own work; bo may
    await until(sessions, queue("bo", ["reviewer"]), lambda items: len(items) == 1)
    assert await until(sessions, queue("ana", ["reviewer"]), lambda i: True) == []

    token = await claim(task, "bo", ["reviewer"], "check")
    await review(task, "bo", "check", token, "fail", "wrong")
    items = await until(sessions, queue("ana", ["labeler"]), lambda items: len(items) == 1)
    assert items[0].rework_reason == "wrong"
    assert await until(sessions, queue("carl", ["labeler"]), lambda i: True) == []

    with transaction(sessions) as session:
        set_pipeline_status(session, pipeline.name, PipelineStatus.PAUSED)
    assert await until(sessions, queue("ana", ["labeler"]), lambda i: True) == []


async def test_twenty_contributors_at_once_never_double_claim(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    pipeline = fresh_pipeline()
    for i in range(20):
        await conveyor.create_task(pipeline, f"t{i}", {"text": f"text {i}"})
    await until(
        sessions,
        lambda s: claimable(s, "x", ["labeler"], pipeline=pipeline.name),
        lambda items: len(items) == 20,
    )
    results = await asyncio.gather(
        *(
            next_work(conveyor, sessions, f"c{i}", ["labeler"], pipeline=pipeline.name)
            for i in range(20)
        )
    )
    claimed = [(r.item.workflow_id, r.item.node) for r in results]
    assert len(set(claimed)) == 20, "every contributor got distinct work"
    for r in results:
        view = await conveyor.task(r.item.workflow_id).state()
        held = nodes(view)[r.item.node].claim
        assert held is not None and held.token == r.token
    with pytest.raises(NoWorkAvailable, match="no work for late"):
        await next_work(conveyor, sessions, "late", ["labeler"], pipeline=pipeline.name)


async def test_claim_limit_holds_under_concurrency(
    conveyor: ConveyorClient, sessions: sessionmaker[Session]
) -> None:
    base = fresh_pipeline()
    pipeline = base.model_copy(update={"claim_limits": {"labeler": 2}})
    for i in range(6):
        await conveyor.create_task(pipeline, f"t{i}", {"text": "x"})
    await until(
        sessions,
        lambda s: claimable(s, "ana", ["labeler"], pipeline=pipeline.name),
        lambda items: len(items) == 6,
    )
    outcomes = await asyncio.gather(
        *(
            next_work(conveyor, sessions, "ana", ["labeler"], pipeline=pipeline.name)
            for _ in range(6)
        ),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, NoWorkAvailable)]
    assert len(won) == 2 and len(refused) == 4
    assert all("as many claims as allowed" in str(err) for err in refused)

    # Handing one in frees a slot; "my claims" and "my submitted work" follow.
    first = won[0]
    await submit(
        conveyor.task(first.item.workflow_id),
        "ana",
        first.item.node,
        first.token,
        {"label": "neutral"},
    )
    await until(sessions, lambda s: my_claims(s, "ana"), lambda items: len(items) == 1)
    done = await until(sessions, lambda s: my_submitted(s, "ana"), lambda items: bool(items))
    assert done[0].workflow_id == first.item.workflow_id
    await next_work(conveyor, sessions, "ana", ["labeler"], pipeline=pipeline.name)
