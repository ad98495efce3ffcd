"""A pipeline's claim limit is part of the claim itself, whoever sends it.

The SDK, a signal, the stock ``temporal`` CLI (update and signal) and ``starter.py claim`` all go
past the work queue; each is refused at the limit. The HTTP API's path is in
tests/api/test_queue.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from conveyor.client import CommandRejected, ConveyorClient, TaskClient
from conveyor.workqueue import wait_for_projection
from store.db import transaction
from store.workqueue import held_count
from tests.support.actors import claim, eventually, rid
from tests.support.pipelines import label_review
from tests.test_starter import run, server_env
from tests.workflows.test_operator_cli import temporal
from workflows.messages import Claim, NodeStatus, Release

LABELER = ["labeler"]


async def _tasks(conveyor: ConveyorClient, limit: int, count: int) -> list[TaskClient]:
    pipeline = label_review(name=f"limit-{rid()[:8]}")
    pipeline = pipeline.model_copy(update={"claim_limits": {"labeler": limit}})
    created = [await conveyor.create_task(pipeline, f"t{i}", {"text": "x"}) for i in range(count)]
    return [conveyor.task(c.workflow_id) for c in created]


async def _label_status(task: TaskClient) -> NodeStatus:
    view = await task.state()
    return next(n.status for n in view.nodes if n.name == "label")


async def test_every_path_is_refused_at_the_limit(
    temporal_env: WorkflowEnvironment,
    conveyor: ConveyorClient,
    store_sessions: sessionmaker[Session],
) -> None:
    tasks = await _tasks(conveyor, limit=2, count=7)
    who = f"ana-{rid()[:6]}"
    first = await tasks[0].send(Claim(request_id=rid(), contributor=who, roles=LABELER))
    await claim(tasks[1], who, LABELER, "label")

    # SDK (an update): refused with the code callers act on.
    with pytest.raises(CommandRejected) as refused:
        await claim(tasks[2], who, LABELER, "label")
    assert refused.value.result.code == "claim_limit"
    assert f"{who} holds 2 of the 2 claims allowed" in refused.value.result.message

    # A signal: recorded as rejected, the node stays Available.
    await tasks[3].signal(Claim(request_id=rid(), contributor=who, roles=LABELER, node="label"))
    view = await eventually(tasks[3], lambda v: any(e.kind == "rejected" for e in v.timeline))
    assert (
        "2 of the 2 claims allowed"
        in next(e for e in view.timeline if e.kind == "rejected").message
    )

    # The stock CLI, as an update and as a signal.
    payload = json.dumps({"request_id": rid(), "contributor": who, "roles": LABELER})
    code, _, err = await temporal(
        temporal_env,
        "workflow",
        "update",
        "execute",
        "--workflow-id",
        tasks[4].workflow_id,
        "--name",
        "claim",
        "--input",
        payload,
    )
    assert code != 0 and "claims allowed" in err, err
    code, _, err = await temporal(
        temporal_env,
        "workflow",
        "signal",
        "--workflow-id",
        tasks[5].workflow_id,
        "--name",
        "claim",
        "--input",
        payload,
    )
    assert code == 0, err
    await eventually(tasks[5], lambda v: any(e.kind == "rejected" for e in v.timeline))

    # starter.py claim.
    code, _, err = await run(
        "claim",
        tasks[6].workflow_id,
        "--as",
        who,
        "--roles",
        "labeler",
        env=server_env(temporal_env, conveyor),
    )
    assert code == 2 and "claims allowed" in err, (code, err)

    for task in tasks[2:]:
        assert await _label_status(task) == NodeStatus.AVAILABLE

    # Releasing one makes room again (once the store shows the release).
    release = await tasks[0].send(
        Release(request_id=rid(), contributor=who, node="label", token=first.token or "")
    )
    assert await wait_for_projection(store_sessions, tasks[0].workflow_id, release.seq)
    await claim(tasks[6], who, LABELER, "label")
    with transaction(store_sessions) as session:
        pipeline = tasks[0].workflow_id.split("/")[0]
        assert held_count(session, who, pipeline) == 2


async def test_concurrent_claims_on_many_tasks_never_pass_the_limit(
    conveyor: ConveyorClient,
) -> None:
    tasks = await _tasks(conveyor, limit=3, count=12)
    who = f"bo-{rid()[:6]}"

    async def attempt(task: TaskClient, by_signal: bool) -> None:
        command = Claim(request_id=rid(), contributor=who, roles=LABELER, node="label")
        if by_signal:
            await task.signal(command)
            return
        try:
            await task.send(command)
        except CommandRejected as err:
            assert err.result.code == "claim_limit", err.result

    await asyncio.gather(*(attempt(t, by_signal=i % 3 == 0) for i, t in enumerate(tasks)))

    signalled = [t for i, t in enumerate(tasks) if i % 3 == 0]
    for task in signalled:  # each signal answered: a claim, or a refusal in the timeline
        await eventually(
            task,
            lambda v: (
                any(e.kind == "rejected" for e in v.timeline)
                or any(n.name == "label" and n.status == NodeStatus.CLAIMED for n in v.nodes)
            ),
        )
    statuses = [await _label_status(t) for t in tasks]
    assert statuses.count(NodeStatus.CLAIMED) == 3, statuses
