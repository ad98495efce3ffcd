"""Claim timeouts are durable timers, frozen while a task is paused (time-skipping server)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.llm import LlmSettings
from conveyor.client import ConveyorClient
from tests.support.actors import claim, nodes, rid
from tests.support.pipelines import label_review
from worker import build_worker
from workflows.messages import NodeStatus, Pause, Resume
from workflows.options import SEARCH_ATTRIBUTES


def _test_server() -> str:
    path = Path(sys.executable).parent / "temporal-test-server"
    if not path.exists():
        pytest.fail(f"{path} is missing: install the test extra (pip install -e '.[test]')")
    return str(path)


@pytest.fixture
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    # One server per test: time only skips while no workflow anywhere has pending work, and a
    # previous test's task (its worker gone) would hold the clock.
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_test_server(), data_converter=pydantic_data_converter
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
                for key in SEARCH_ATTRIBUTES
            },
        )
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
async def conveyor(
    skipping_env: WorkflowEnvironment, store_sessions: sessionmaker[Session]
) -> AsyncIterator[ConveyorClient]:
    task_queue = f"ts-{uuid.uuid4().hex[:8]}"
    async with build_worker(
        skipping_env.client, task_queue, sessions=store_sessions, llm=LlmSettings()
    ):
        yield ConveyorClient(skipping_env.client, task_queue, update_timeout=20)


async def test_a_stale_claim_is_released_after_the_timeout(
    skipping_env: WorkflowEnvironment, conveyor: ConveyorClient
) -> None:
    created = await conveyor.create_task(label_review(), f"t-{rid()}", {"text": "x"})
    task = conveyor.task(created.workflow_id)
    await claim(task, "ana", ["labeler"], "label")
    await skipping_env.sleep(timedelta(minutes=29))
    assert nodes(await task.state())["label"].status == NodeStatus.CLAIMED
    await skipping_env.sleep(timedelta(minutes=2))
    view = await task.state()
    assert nodes(view)["label"].status == NodeStatus.AVAILABLE
    assert nodes(view)["label"].claim is None
    assert any(e.kind == "claim_timeout" and "ana" in e.message for e in view.timeline)
    await claim(task, "bo", ["labeler"], "label")


async def test_the_claim_timer_is_frozen_while_paused(
    skipping_env: WorkflowEnvironment, conveyor: ConveyorClient
) -> None:
    created = await conveyor.create_task(label_review(), f"t-{rid()}", {"text": "x"})
    task = conveyor.task(created.workflow_id)
    await claim(task, "ana", ["labeler"], "label")
    await skipping_env.sleep(timedelta(minutes=10))
    await task.send(Pause(request_id=rid(), by="ops"))
    await skipping_env.sleep(timedelta(hours=6))
    view = await task.state()
    held = nodes(view)["label"].claim
    assert held is not None and held.expires_at is None
    assert held.remaining_seconds == pytest.approx(20 * 60, abs=5)
    await task.send(Resume(request_id=rid(), by="ops"))
    await skipping_env.sleep(timedelta(minutes=19))
    assert nodes(await task.state())["label"].status == NodeStatus.CLAIMED
    await skipping_env.sleep(timedelta(minutes=2))
    assert nodes(await task.state())["label"].status == NodeStatus.AVAILABLE


async def test_each_consensus_place_times_out_on_its_own(
    skipping_env: WorkflowEnvironment, conveyor: ConveyorClient
) -> None:
    """Every place on a consensus item has its own timer: a stale one reopens for someone else
    while the others stay held."""
    from conveyor.pipelines import load_pipeline_file

    pipeline = load_pipeline_file(str(Path(__file__).parents[2] / "examples/consensus-label.yaml"))
    created = await conveyor.create_task(pipeline, f"t-{rid()}", {"text": "x"})
    task = conveyor.task(created.workflow_id)
    await claim(task, "ana", ["labeler"], "label")
    await skipping_env.sleep(timedelta(minutes=20))
    await claim(task, "bo", ["labeler"], "label")
    await claim(task, "cy", ["labeler"], "label")
    assert nodes(await task.state())["label"].status == NodeStatus.CLAIMED
    await skipping_env.sleep(timedelta(minutes=11))  # ana's 30 minutes are up, not the others'
    view = await task.state()
    item = nodes(view)["label"].consensus
    assert item is not None
    assert sorted(s.claim.holder for s in item.slots) == ["bo", "cy"]
    assert nodes(view)["label"].status == NodeStatus.AVAILABLE
    assert any(e.kind == "claim_timeout" and "ana" in e.message for e in view.timeline)
    await claim(task, "di", ["labeler"], "label")
    await skipping_env.sleep(timedelta(minutes=25))  # bo's and cy's run out too
    item = nodes(await task.state())["label"].consensus
    assert item is not None
    assert [s.claim.holder for s in item.slots] == ["di"]
