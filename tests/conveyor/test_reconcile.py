"""The projection under faults, and reconcile proving the store equals the workflows."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

from sqlalchemy import delete, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.api.workflowservice.v1 import (
    DeleteWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.llm import LlmActivities, LlmSettings
from activities.store import StoreActivities
from conveyor.client import ConveyorClient
from conveyor.reconcile import reconcile
from store.db import transaction
from store.models import NodeRow, TaskRow, TimelineEventRow
from tests.support.actors import claim, label_and_review, rid, submit
from tests.support.pipelines import label_review
from tests.support.wedged import WedgedTaskWorkflow
from workflows.messages import ProjectionBatch, Tag
from workflows.options import SA_PIPELINE
from workflows.task import TaskWorkflow


class FlakyStore:
    """The real projection activity, failing before or after writing some of the time."""

    def __init__(self, sessions: sessionmaker[Session], seed: int):
        self.real = StoreActivities(sessions)
        self.random = random.Random(seed)
        self.failed_before = 0
        self.failed_after = 0

    @activity.defn(name="project_task")
    async def project_task(self, batch: ProjectionBatch) -> int:
        roll = self.random.random()
        if roll < 0.2:
            self.failed_before += 1
            raise ApplicationError("injected: store unavailable")
        await asyncio.sleep(self.random.random() * 0.02)
        seq = await self.real.project_task(batch)
        if roll > 0.8:
            self.failed_after += 1  # written, but Temporal will deliver it again
            raise ApplicationError("injected: lost the acknowledgement")
        return seq


async def test_projection_survives_failures_and_duplicates(
    client: Client, sessions: sessionmaker[Session]
) -> None:
    flaky = FlakyStore(sessions, seed=11)
    task_queue = f"flaky-{uuid.uuid4().hex[:8]}"
    pipeline = label_review(name=f"flaky-{uuid.uuid4().hex[:6]}")
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[TaskWorkflow],
        activities=[flaky.project_task, LlmActivities(LlmSettings()).call_llm],
    )
    async with worker:
        conveyor = ConveyorClient(client, task_queue, update_timeout=20)

        async def one(i: int) -> None:
            created = await conveyor.create_task(pipeline, f"t{i}", {"text": f"text {i}"})
            task = conveyor.task(created.workflow_id)
            if i % 3 == 0:
                await label_and_review(task, "fail", labeler=f"l{i}", reviewer=f"r{i}")
            if i % 2 == 0:
                await label_and_review(task, "pass", labeler=f"l{i}", reviewer=f"r{i}")
                await task.result()
            else:
                token = await claim(task, f"l{i}", ["labeler"], "label")
                await submit(task, f"l{i}", "label", token, {"label": "neutral"})
                await task.send(Tag(request_id=rid(), by="root", tags=["x", f"t{i}"]))

        await asyncio.gather(*(one(i) for i in range(12)))
        # Wait until every running task's latest batch is written (finished ones drained).
        for _ in range(200):
            report = await reconcile(conveyor, sessions, pipeline=pipeline.name)
            if report.clean:
                break
            await asyncio.sleep(0.1)
        assert report.checked == 12
        assert report.clean, [d.problems for d in report.drifted]
        assert flaky.failed_before > 0 and flaky.failed_after > 0

        # Now break the store by hand: reconcile finds every problem and repairs it.
        with transaction(sessions) as session:
            session.execute(
                update(TaskRow)
                .where(TaskRow.workflow_id == f"{pipeline.name}/t1")
                .values(status="Finished")
            )
            session.execute(delete(NodeRow).where(NodeRow.workflow_id == f"{pipeline.name}/t3"))
            session.execute(
                delete(TimelineEventRow).where(
                    TimelineEventRow.workflow_id == f"{pipeline.name}/t5"
                )
            )
            session.execute(delete(TaskRow).where(TaskRow.workflow_id == f"{pipeline.name}/t7"))
        broken = await reconcile(conveyor, sessions, pipeline=pipeline.name)
        assert {d.workflow_id for d in broken.drifted} == {
            f"{pipeline.name}/t{i}" for i in (1, 3, 5, 7)
        }
        fixed = await reconcile(conveyor, sessions, pipeline=pipeline.name, fix=True)
        assert all(d.fixed for d in fixed.drifted)
        assert (await reconcile(conveyor, sessions, pipeline=pipeline.name)).clean


async def test_reconcile_tells_stuck_from_gone_quickly(
    conveyor: ConveyorClient, store_sessions: sessionmaker[Session]
) -> None:
    pipeline = label_review(name=f"stuck-{uuid.uuid4().hex[:6]}")
    healthy, gone = [
        (await conveyor.create_task(pipeline, key, {"text": key})).workflow_id
        for key in ("healthy", "gone")
    ]
    stuck = f"{pipeline.name}/stuck"
    for _ in range(200):
        if (await reconcile(conveyor, store_sessions, pipeline=pipeline.name)).clean:
            break
        await asyncio.sleep(0.1)

    client = conveyor.client
    request = DeleteWorkflowExecutionRequest(namespace=client.namespace)
    request.workflow_execution.workflow_id = gone
    await client.workflow_service.delete_workflow_execution(request)
    wedged_queue = f"wedged-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=wedged_queue,
        workflows=[WedgedTaskWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            WedgedTaskWorkflow.run,
            None,
            id=stuck,
            task_queue=wedged_queue,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SA_PIPELINE, pipeline.name)]
            ),
        )
        await handle.signal(WedgedTaskWorkflow.wedge)
        await check_stuck_and_gone(conveyor, store_sessions, pipeline.name, stuck, gone, healthy)


async def check_stuck_and_gone(
    conveyor: ConveyorClient,
    store_sessions: sessionmaker[Session],
    pipeline: str,
    stuck: str,
    gone: str,
    healthy: str,
) -> None:
    handle = conveyor.task(stuck).handle
    for _ in range(200):
        described = await handle.describe()
        if described.raw_description.pending_workflow_task.attempt > 1:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the task's workflow task never failed")
    for _ in range(100):  # visibility is eventually consistent
        if stuck in [i async for i, _ in conveyor.list_tasks(pipeline=pipeline)]:
            break
        await asyncio.sleep(0.1)
    for _ in range(100):  # deletion is asynchronous on the server
        try:
            await conveyor.task(gone).handle.describe()
        except RPCError:
            break
        await asyncio.sleep(0.1)

    started = time.monotonic()
    report = await reconcile(conveyor, store_sessions, pipeline=pipeline)
    took = time.monotonic() - started
    assert took < 5, f"reconcile took {took:.1f}s"
    assert report.checked == 3
    assert report.orphans == [gone]
    assert [t.workflow_id for t in report.stuck] == [stuck]
    found = report.stuck[0]
    assert found.attempts > 1 and found.since is not None
    assert found.last_error == "deliberately failing workflow task", found.last_error
    assert f"{stuck} is stuck since" in found.describe()
    assert not report.drifted and not report.unanswered
    assert healthy not in report.orphans and not report.clean


async def test_reconcile_reports_tasks_no_worker_answers(
    client: Client, store_sessions: sessionmaker[Session]
) -> None:
    # A task queue no worker polls: the task's workflow runs but nothing can answer for it.
    conveyor = ConveyorClient(client, f"nobody-{uuid.uuid4().hex[:8]}")
    pipeline = label_review(name=f"silent-{uuid.uuid4().hex[:6]}")
    created = await conveyor.create_task(pipeline, "k", {"text": "t"})
    for _ in range(100):  # visibility is eventually consistent
        if [i async for i, _ in conveyor.list_tasks(pipeline=pipeline.name)]:
            break
        await asyncio.sleep(0.1)
    started = time.monotonic()
    report = await reconcile(conveyor, store_sessions, pipeline=pipeline.name, query_timeout=2)
    took = time.monotonic() - started
    assert report.unanswered == [created.workflow_id], report
    assert not report.stuck and not report.orphans and not report.clean
    assert took < 10, f"reconcile took {took:.1f}s"
