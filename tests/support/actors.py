"""Terse helpers for driving a task the way contributors and admins do."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from conveyor.client import ConveyorClient, TaskClient
from workflows.messages import (
    Claim,
    CommandResult,
    NodeState,
    Review,
    Submit,
    TaskView,
    Verdict,
)


def rid() -> str:
    return uuid.uuid4().hex


async def claim(task: TaskClient, who: str, roles: list[str], node: str | None = None) -> str:
    """Claim and return the token (raises CommandRejected if refused)."""
    result = await task.send(Claim(request_id=rid(), contributor=who, roles=roles, node=node))
    assert result.token is not None
    return result.token


async def submit(
    task: TaskClient, who: str, node: str, token: str, values: dict[str, Any]
) -> CommandResult:
    return await task.send(
        Submit(request_id=rid(), contributor=who, node=node, token=token, values=values)
    )


async def review(
    task: TaskClient, who: str, node: str, token: str, verdict: str, reason: str | None = None
) -> CommandResult:
    return await task.send(
        Review(
            request_id=rid(),
            contributor=who,
            node=node,
            token=token,
            verdict=Verdict(verdict),
            reason=reason,
        )
    )


async def label_and_review(
    task: TaskClient,
    verdict: str,
    *,
    labeler: str = "ana",
    reviewer: str = "bo",
    label: str = "positive",
) -> CommandResult:
    """One round of label-review: the labeler submits, the reviewer decides."""
    token = await claim(task, labeler, ["labeler"], "label")
    await submit(task, labeler, "label", token, {"label": label})
    token = await claim(task, reviewer, ["reviewer"], "check")
    reason = None if verdict == "pass" else "the text is clearly negative"
    return await review(task, reviewer, "check", token, verdict, reason)


def nodes(view: TaskView) -> dict[str, NodeState]:
    return {n.name: n for n in view.nodes}


async def eventually(
    task: TaskClient, predicate: Callable[[TaskView], bool], timeout: float = 10.0
) -> TaskView:
    """Poll the ``state`` query until ``predicate`` holds (signals are asynchronous)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        view = await task.state()
        if predicate(view):
            return view
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last view: {view}")
        await asyncio.sleep(0.05)


async def workflow_exists(conveyor: ConveyorClient, workflow_id: str) -> bool:
    """Whether Temporal has a workflow of that id (running or closed)."""
    try:
        await conveyor.client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True
