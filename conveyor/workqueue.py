"""The work queue's ``next``: find work for a contributor and claim it through the workflow.

Candidates come from the store (oldest first); contributors asking at the same moment are spread
over different tasks (each takes a random one of the oldest few) so they do not all contend for
one task. A lost race (the workflow says someone else was faster) moves on to the next
candidate (of those the store already gave, choosing among more of them after each loss).
Claim limits hold across tasks: the task's claim itself reserves within the limit,
under a per-contributor lock in the store (``activities/claims.py``), whoever sends it.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from conveyor.client import CommandRejected, ConveyorClient
from conveyor.commands import task_command
from conveyor.errors import Conflict, NotFound
from store.db import transaction
from store.workqueue import WorkItem, claimable, pipeline_paused, projected_seq
from workflows.messages import CommandResult, NodeStatus

SPREAD = 8
"""How many of the oldest candidates a contributor picks from at random."""

PROJECTION_WAIT = 3.0
"""How long a claim waits for the store to show it before answering anyway (seconds)."""


class NoWorkAvailable(NotFound, LookupError):
    """Nothing the contributor may claim right now (the reason says why)."""

    code = "no_work"


class ClaimLimitReached(NoWorkAvailable):
    """The contributor holds as many claims as the pipeline allows them."""

    def __init__(self, contributor: str, pipeline: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"{contributor} holds as many claims as allowed in {pipeline}; "
            "submit or release one first"
        )
        self.contributor = contributor
        self.pipeline = pipeline


class PipelinePaused(Conflict):
    """The task's pipeline is Paused: it takes no claims."""

    code = "pipeline_paused"


@dataclass(frozen=True)
class Claimed:
    item: WorkItem
    result: CommandResult

    @property
    def token(self) -> str:
        assert self.result.token is not None
        return self.result.token


async def next_work(
    conveyor: ConveyorClient,
    sessions: sessionmaker[Session],
    contributor: str,
    roles: list[str],
    *,
    pipeline: str | None = None,
    attempts: int = 20,
) -> Claimed:
    """Claim the next piece of work for ``contributor``.

    Raises:
        NoWorkAvailable: nothing claimable, or the contributor is at their claim limit.
    """
    tried: set[tuple[str, str]] = set()
    at_limit: set[str] = set()
    fresh: list[WorkItem] = []
    lost = 0
    for _ in range(attempts):
        fresh = [c for c in fresh if c.pipeline not in at_limit]
        if not fresh:
            # The store is asked again only once the candidates it gave are used up: a lost
            # race moves on to another of them without a query.
            candidates = await asyncio.to_thread(
                _candidates, sessions, contributor, roles, pipeline, SPREAD * 4
            )
            fresh = [c for c in candidates if (c.workflow_id, c.node) not in tried]
            fresh = [c for c in fresh if c.pipeline not in at_limit]
            if not fresh:
                break
        # Each lost race widens the choice: many people asking at once spread out further.
        item = random.choice(fresh[: SPREAD * (lost + 1)])
        fresh.remove(item)
        tried.add((item.workflow_id, item.node))
        try:
            result = await _claim_item(conveyor, sessions, contributor, roles, item)
        except ClaimLimitReached:
            at_limit.add(item.pipeline)
            continue
        except CommandRejected:
            lost += 1
            continue  # someone (or another call of this contributor) was faster
        return Claimed(item, result)
    if at_limit:
        raise NoWorkAvailable(
            f"{contributor} holds as many claims as allowed in: {', '.join(sorted(at_limit))}; "
            "submit or release one first"
        )
    raise NoWorkAvailable(
        f"no work for {contributor} (roles: {', '.join(roles) or 'none'})"
        + (f" in pipeline {pipeline}" if pipeline else "")
    )


async def claim_node(
    conveyor: ConveyorClient,
    sessions: sessionmaker[Session],
    contributor: str,
    roles: list[str],
    workflow_id: str,
    node: str,
    *,
    request_id: str | None = None,
) -> CommandResult:
    """Claim one chosen node. The claim limit is kept by the claim itself, in the workflow.

    A pipeline the store has Paused takes no claim from here at once, before its pause has
    reached every task (the work queue already leaves its tasks out).

    Raises:
        ClaimLimitReached: the contributor is at the pipeline's claim limit.
        PipelinePaused: the task's pipeline is Paused.
        CommandRejected: the workflow refused (taken, not allowed, not available).
    """
    await refuse_if_paused(sessions, workflow_id)
    pipeline = workflow_id.split("/", 1)[0]
    item = WorkItem(workflow_id, node, pipeline, NodeStatus.AVAILABLE.value, None)
    return await _claim_item(conveyor, sessions, contributor, roles, item, request_id)


async def refuse_if_paused(sessions: sessionmaker[Session], workflow_id: str) -> None:
    """Refuse a claim at once while the store has the task's pipeline Paused (the work queue
    and the command line ask before sending it; the pause may not have reached the task yet).

    Raises:
        PipelinePaused: it is Paused.
    """
    pipeline = workflow_id.split("/", 1)[0]
    if await asyncio.to_thread(_paused, sessions, pipeline):
        raise PipelinePaused(
            f"pipeline {pipeline} is Paused: no new claims until it is resumed "
            f"(python starter.py pipeline resume {pipeline})"
        )


async def _claim_item(
    conveyor: ConveyorClient,
    sessions: sessionmaker[Session],
    contributor: str,
    roles: list[str],
    item: WorkItem,
    request_id: str | None = None,
) -> CommandResult:
    """Ask the workflow for ``item``; a refusal at the claim limit is ClaimLimitReached.

    Returns once the store shows the claim (or after ``PROJECTION_WAIT``), so the pages and
    answers that follow — my claims, the claim count, the form — already include it.
    """
    try:
        result = await conveyor.task(item.workflow_id).send(
            task_command(
                "claim", actor=contributor, request_id=request_id, roles=roles, node=item.node
            ),
            untouched=item.untouched,
        )
    except CommandRejected as rejected:
        if rejected.result.code == "claim_limit":
            raise ClaimLimitReached(contributor, item.pipeline, rejected.result.message) from None
        raise
    await wait_for_projection(sessions, item.workflow_id, result.seq)
    return result


async def wait_for_projection(
    sessions: sessionmaker[Session], workflow_id: str, seq: int, timeout: float | None = None
) -> bool:
    """Wait until the store has task ``workflow_id`` at ``seq`` or later; False on timeout.

    The task's own workflow writes the store moments after each command; this lets a caller
    read its own write.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (PROJECTION_WAIT if timeout is None else timeout)
    delay = 0.005
    while True:
        if await asyncio.to_thread(_projected_seq, sessions, workflow_id) >= seq:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


def _paused(sessions: sessionmaker[Session], pipeline: str) -> bool:
    with transaction(sessions) as session:
        return pipeline_paused(session, pipeline)


def _projected_seq(sessions: sessionmaker[Session], workflow_id: str) -> int:
    with transaction(sessions) as session:
        return projected_seq(session, workflow_id)


def _candidates(
    sessions: sessionmaker[Session],
    contributor: str,
    roles: list[str],
    pipeline: str | None,
    limit: int,
) -> list[WorkItem]:
    with transaction(sessions) as session:
        return claimable(session, contributor, roles, pipeline=pipeline, limit=limit)
