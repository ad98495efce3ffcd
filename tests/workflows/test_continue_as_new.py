"""Long-lived tasks continue-as-new and carry everything: state, timeline, idempotency keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.llm import LlmSettings
from conveyor.client import ConveyorClient
from conveyor.devserver import temporal_binary
from tests.support.actors import nodes, rid
from tests.support.pipelines import label_review
from worker import build_worker
from workflows.messages import Claim, Release, Submit, Tag, TaskStatus
from workflows.options import SEARCH_ATTRIBUTES


@pytest.fixture(scope="module")
async def small_history_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that suggests continue-as-new after 60 history events, not 4,096."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        dev_server_extra_args=[
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=60",
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def test_state_survives_many_continue_as_new(
    small_history_env: WorkflowEnvironment, store_sessions: sessionmaker[Session]
) -> None:
    task_queue = f"can-{uuid.uuid4().hex[:8]}"
    client = small_history_env.client
    async with build_worker(client, task_queue, sessions=store_sessions, llm=LlmSettings()):
        conveyor = ConveyorClient(client, task_queue, update_timeout=20)
        created = await conveyor.create_task(label_review(), "long-lived", {"text": "x"})
        task = conveyor.task(created.workflow_id)
        first_run = (await task.handle.describe()).run_id
        first_claim = Claim(request_id=rid(), contributor="ana", roles=["labeler"])
        first = await task.send(first_claim)
        await task.send(
            Release(request_id=rid(), contributor="ana", node="label", token=first.token or "")
        )
        for i in range(30):
            result = await task.send(
                Claim(request_id=rid(), contributor=f"c{i}", roles=["labeler"], node="label")
            )
            await task.send(
                Release(
                    request_id=rid(), contributor=f"c{i}", node="label", token=result.token or ""
                )
            )
        latest = await client.get_workflow_handle(created.workflow_id).describe()
        assert latest.run_id != first_run, "expected at least one continue-as-new"

        # The first claim's request_id still returns its first answer in a later run.
        assert await task.send(first_claim) == first
        view = await task.state()
        assert view.seq > 60 and view.timeline[-1].seq == view.seq
        final = await task.send(
            Claim(request_id=rid(), contributor="zoe", roles=["labeler"], node="label")
        )
        await task.send(
            Submit(
                request_id=rid(),
                contributor="zoe",
                node="label",
                token=final.token or "",
                values={"label": "neutral"},
            )
        )
        view = await task.state()
        assert view.status == TaskStatus.IN_PROGRESS
        assert nodes(view)["label"].values["label"] == "neutral"


async def test_commands_that_arm_no_timer_still_continue_as_new(
    small_history_env: WorkflowEnvironment, store_sessions: sessionmaker[Session]
) -> None:
    task_queue = f"can-{uuid.uuid4().hex[:8]}"
    client = small_history_env.client
    async with build_worker(client, task_queue, sessions=store_sessions, llm=LlmSettings()):
        conveyor = ConveyorClient(client, task_queue, update_timeout=20)
        created = await conveyor.create_task(label_review(), "tags-only", {"text": "x"})
        task = conveyor.task(created.workflow_id)
        first_run = (await task.handle.describe()).run_id
        for i in range(40):
            await task.send(Tag(request_id=rid(), by="root", tags=[f"t{i}"]))
        latest = await client.get_workflow_handle(created.workflow_id).describe()
        assert latest.run_id != first_run
        assert len((await task.state()).tags) == 40
