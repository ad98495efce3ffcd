"""The work queue's ``next``: find work for a contributor and claim it through the workflow.

Candidates come from the store (oldest first); contributors asking at the same moment are spread
over different tasks (each takes a random one of the oldest few) so they do not all contend for
one task. A lost race (the workflow says someone else was faster) moves on to the next
candidate. Claim limits hold across tasks: the check and a reservation happen under a per-
contributor lock in the store, before the workflow is asked.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from conveyor.client import CommandRejected, ConveyorClient
from store.db import transaction
from store.workqueue import (
    WorkItem,
    claim_limit,
    claimable,
    held_count,
    lock_contributor,
    record_claim,
    reserve,
    unreserve,
)
from workflows.messages import Claim, CommandResult, NodeStatus

SPREAD = 8
"""How many of the oldest candidates a contributor picks from at random."""


class NoWorkAvailable(LookupError):
    """Nothing the contributor may claim right now (the reason says why)."""


class ClaimLimitReached(NoWorkAvailable):
    """The contributor holds as many claims as the pipeline allows them."""

    def __init__(self, contributor: str, pipeline: str) -> None:
        super().__init__(
            f"{contributor} holds as many claims as allowed in {pipeline}; "
            "submit or release one first"
        )
        self.contributor = contributor
        self.pipeline = pipeline


class AlreadyClaiming(RuntimeError):
    """Another call of the same contributor is claiming this node right now."""


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
    for _ in range(attempts):
        candidates = await asyncio.to_thread(
            _candidates, sessions, contributor, roles, pipeline, SPREAD * 4
        )
        fresh = [c for c in candidates if (c.workflow_id, c.node) not in tried]
        fresh = [c for c in fresh if c.pipeline not in at_limit]
        if not fresh:
            break
        item = random.choice(fresh[:SPREAD])
        tried.add((item.workflow_id, item.node))
        try:
            result = await _claim_item(conveyor, sessions, contributor, roles, item)
        except ClaimLimitReached:
            at_limit.add(item.pipeline)
            continue
        except (AlreadyClaiming, CommandRejected):
            continue  # another of this contributor's calls has it, or someone was faster
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
    """Claim one chosen node, with the claim limit kept as ``next`` keeps it: checked, and a
    reservation made, under the contributor's lock in the store before the workflow is asked,
    so concurrent claims cannot pass the limit together.

    Raises:
        ClaimLimitReached: the contributor is at the pipeline's claim limit.
        AlreadyClaiming: another call of this contributor is claiming the node.
        CommandRejected: the workflow refused (taken, not allowed, not available).
    """
    pipeline = workflow_id.split("/", 1)[0]
    item = WorkItem(workflow_id, node, pipeline, NodeStatus.AVAILABLE.value, None)
    return await _claim_item(conveyor, sessions, contributor, roles, item, request_id)


async def _claim_item(
    conveyor: ConveyorClient,
    sessions: sessionmaker[Session],
    contributor: str,
    roles: list[str],
    item: WorkItem,
    request_id: str | None = None,
) -> CommandResult:
    """Reserve ``item`` within the limit, ask the workflow, then record the claim (if there is
    one) and drop the reservation, whatever the answer."""
    outcome = await asyncio.to_thread(_reserve, sessions, contributor, roles, item)
    if outcome == _AT_LIMIT:
        raise ClaimLimitReached(contributor, item.pipeline)
    if outcome == _TAKEN:
        raise AlreadyClaiming(
            f"{contributor} is claiming {item.node} of {item.workflow_id} elsewhere"
        )
    result: CommandResult | None = None
    try:
        result = await conveyor.task(item.workflow_id).send(
            Claim(
                request_id=request_id or uuid.uuid4().hex,
                contributor=contributor,
                roles=roles,
                node=item.node,
            )
        )
    finally:
        await asyncio.to_thread(_release, sessions, contributor, item, result)
    return result


def _candidates(
    sessions: sessionmaker[Session],
    contributor: str,
    roles: list[str],
    pipeline: str | None,
    limit: int,
) -> list[WorkItem]:
    with transaction(sessions) as session:
        return claimable(session, contributor, roles, pipeline=pipeline, limit=limit)


_RESERVED, _AT_LIMIT, _TAKEN = "reserved", "at limit", "taken"


def _reserve(
    sessions: sessionmaker[Session], contributor: str, roles: list[str], item: WorkItem
) -> str:
    """Reserve ``item`` under the contributor's lock.

    Each reservation belongs to exactly one ``next`` call: if another call of the same person
    already reserved this node, this one moves on (sharing it would let the loser delete the
    winner's reservation and open a gap in the limit count).
    """
    with transaction(sessions) as session:
        lock_contributor(session, contributor, roles)
        limit = claim_limit(session, item.pipeline, roles)
        if limit is not None and held_count(session, contributor, item.pipeline) >= limit:
            return _AT_LIMIT
        return _RESERVED if reserve(session, contributor, item) else _TAKEN


def _release(
    sessions: sessionmaker[Session],
    contributor: str,
    item: WorkItem,
    result: CommandResult | None,
) -> None:
    with transaction(sessions) as session:
        # Under the same lock as the limit check: that check reads claims and reservations in
        # two statements, and must not see this swap half done.
        lock_contributor(session, contributor, [])
        if result is not None and result.token is not None:
            record_claim(session, item, contributor, result.token, result.seq)
        unreserve(session, contributor, item)
