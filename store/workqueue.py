"""Work-queue queries: what a contributor may claim, what they hold, what they handed in.

These read the projection, which can lag the workflows by a moment: the workflow's claim
update has the final word, and ``conveyor.workqueue.next_work`` moves on when it loses.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, delete, false, func, or_, select, tuple_
from sqlalchemy.orm import Session

from store.dialect import dialect_insert
from store.explorer import parsed_version
from store.models import (
    ClaimReservationRow,
    ContributorRow,
    NodeAnnotatorRow,
    NodeRow,
    PipelineRow,
    PipelineVersionRow,
    SubmissionRow,
    TaskRow,
)
from workflows.graph import NodeKind, Pipeline
from workflows.messages import ClaimReservation, NodeStatus, TaskStatus

RESERVATION_TTL = timedelta(seconds=60)
"""A reservation older than this (its ``next`` call died) no longer counts."""

SWEEP_SHARE = 1 / 16
"""The share of reservations that also delete the contributor's reservations that no longer
count (every refusal does too): the table stays small without a delete on every claim."""


@dataclass(frozen=True)
class WorkItem:
    workflow_id: str
    node: str
    pipeline: str
    status: str
    available_since: datetime | None
    rework_reason: str | None = None
    untouched: bool = False
    """The task was created lazily and has no workflow yet: a claim starts it."""


@dataclass(frozen=True)
class SubmittedItem:
    workflow_id: str
    node: str
    kind: str
    attempt: int | None
    at: datetime


def _definitions(session: Session, hashes: list[str]) -> None:
    """Parse and cache the versions among ``hashes`` not cached yet."""
    missing = [h for h in hashes if parsed_version(h) is None]
    if missing:
        rows = session.execute(
            select(PipelineVersionRow.hash, PipelineVersionRow.definition).where(
                PipelineVersionRow.hash.in_(missing)
            )
        )
        for content_hash, definition in rows:
            parsed_version(content_hash, definition)


def _versions(session: Session, pipeline: str | None) -> list[tuple[str, Pipeline]]:
    """The stored versions (of ``pipeline``) whose pipeline is not paused."""
    query = (
        select(PipelineVersionRow.hash)
        .join(PipelineRow, PipelineRow.name == PipelineVersionRow.pipeline_name)
        .where(or_(PipelineRow.status.is_(None), PipelineRow.status != "Paused"))
    )
    if pipeline:
        query = query.where(PipelineVersionRow.pipeline_name == pipeline)
    hashes = list(session.scalars(query))
    _definitions(session, hashes)
    return [(h, p) for h in hashes if (p := parsed_version(h)) is not None]


def _eligible(
    versions: Iterable[tuple[str, Pipeline]], roles: list[str]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(hash, node)`` pairs a person with ``roles`` may claim when Available, and the review
    nodes they may claim when Escalated (as the escalation role)."""
    mine = set(roles)
    available: list[tuple[str, str]] = []
    escalated: list[tuple[str, str]] = []
    for content_hash, pipeline in versions:
        for spec in pipeline.nodes:
            if not spec.is_human:
                continue
            if not spec.roles or mine & set(spec.roles):
                available.append((content_hash, spec.name))
            if spec.kind == NodeKind.REVIEW and spec.escalation_role in mine:
                escalated.append((content_hash, spec.name))
    return available, escalated


_OPEN = (NodeStatus.AVAILABLE.value, NodeStatus.ESCALATED.value)
"""Node states the work queue offers (the partial ``ix_node_instances_open*`` indexes)."""


def claimable_query(
    session: Session,
    contributor: str,
    roles: list[str],
    *,
    pipeline: str | None = None,
) -> Select:
    """Nodes ``contributor`` may claim now, oldest first (see :func:`claimable`).

    Paused pipelines are left out by leaving their versions out of the eligible
    ``(version, node)`` pairs (an outer join for it made the planner misjudge the query and
    sort every candidate). The query walks open nodes in ``(available_since, workflow_id,
    node)`` order and stops at the LIMIT, so its cost does not grow with the number of tasks:
    ``ix_node_instances_status`` for one node state, the partial ``ix_node_instances_open``
    (``..._open_pipeline`` with ``pipeline``) when both Available and Escalated nodes are
    wanted. The redundant node-side conditions (state, node names) let the planner see that.
    """
    versions = _versions(session, pipeline)
    available, escalated = _eligible(versions, roles)
    pair = tuple_(TaskRow.pipeline_hash, NodeRow.node)
    open_work = (
        and_(
            NodeRow.status == NodeStatus.AVAILABLE.value,
            TaskRow.status == TaskStatus.IN_PROGRESS.value,
            pair.in_(available),
        )
        if available
        else false()
    )
    escalated_work = (
        and_(
            NodeRow.status == NodeStatus.ESCALATED.value,
            TaskRow.status == TaskStatus.ESCALATED.value,
            pair.in_(escalated),
        )
        if escalated
        else false()
    )
    pairs = available + escalated
    query = (
        select(
            NodeRow.workflow_id,
            NodeRow.node,
            NodeRow.pipeline_name,
            NodeRow.status,
            NodeRow.available_since,
            NodeRow.rework_reason,
            TaskRow.start,
        )
        .join(TaskRow, TaskRow.workflow_id == NodeRow.workflow_id)
        .where(
            NodeRow.status.in_(_OPEN),
            NodeRow.node.in_(sorted({node for _, node in pairs}) or [""]),
            or_(open_work, escalated_work),
            or_(NodeRow.rework_only.is_(None), NodeRow.rework_only == contributor),
            or_(NodeRow.rework_exclude.is_(None), NodeRow.rework_exclude != contributor),
            or_(
                NodeRow.blocked_contributor.is_(None),
                NodeRow.blocked_contributor != contributor,
            ),
            ~_annotated_by(contributor),
        )
        .order_by(NodeRow.available_since, NodeRow.workflow_id, NodeRow.node)
    )
    if pipeline:
        query = query.where(NodeRow.pipeline_name == pipeline)
    return query


def _annotated_by(contributor: str) -> ColumnElement[bool]:
    """The node has a ``node_annotators`` row for ``contributor``: they hold a place on it,
    answered it, or may not review or adjudicate it (consensus)."""
    return (
        select(NodeAnnotatorRow.contributor)
        .where(
            NodeAnnotatorRow.workflow_id == NodeRow.workflow_id,
            NodeAnnotatorRow.node == NodeRow.node,
            NodeAnnotatorRow.contributor == contributor,
        )
        .exists()
    )


QueuePosition = tuple[datetime, str, str]
"""Where a page of the work queue ends: ``(available_since, workflow_id, node)`` of its last
item, the order :func:`claimable_query` sorts by."""


def claimable(
    session: Session,
    contributor: str,
    roles: list[str],
    *,
    pipeline: str | None = None,
    after: QueuePosition | None = None,
    limit: int = 50,
) -> list[WorkItem]:
    """What ``contributor`` may claim now: roles, rework routing, self-review and paused
    pipelines respected; oldest first, starting after ``after`` when given (keyset paging)."""
    query = claimable_query(session, contributor, roles, pipeline=pipeline)
    if after is not None:
        query = query.where(
            tuple_(NodeRow.available_since, NodeRow.workflow_id, NodeRow.node) > after
        )
    rows = session.execute(query.limit(limit))
    return [WorkItem(w, n, p, s, a, r, start is not None) for w, n, p, s, a, r, start in rows]


def my_claims(session: Session, contributor: str) -> list[WorkItem]:
    """The nodes ``contributor`` holds, oldest claim first: claimed nodes, and their places on
    consensus items."""
    places = session.execute(
        select(
            NodeRow.workflow_id,
            NodeRow.node,
            NodeRow.pipeline_name,
            NodeRow.status,
            NodeRow.available_since,
            NodeRow.rework_reason,
        )
        .join(
            NodeAnnotatorRow,
            and_(
                NodeAnnotatorRow.workflow_id == NodeRow.workflow_id,
                NodeAnnotatorRow.node == NodeRow.node,
            ),
        )
        .where(NodeAnnotatorRow.contributor == contributor, NodeAnnotatorRow.state == "claimed")
    )
    held = [WorkItem(w, n, p, s, a, r) for w, n, p, s, a, r in places]
    rows = session.execute(
        select(
            NodeRow.workflow_id,
            NodeRow.node,
            NodeRow.pipeline_name,
            NodeRow.status,
            NodeRow.claimed_at,
            NodeRow.rework_reason,
        )
        .where(NodeRow.assignee == contributor, NodeRow.status == NodeStatus.CLAIMED.value)
        .order_by(NodeRow.claimed_at)
    )
    return [WorkItem(w, n, p, s, a, r) for w, n, p, s, a, r in rows] + held


def my_submitted(session: Session, contributor: str, *, limit: int = 100) -> list[SubmittedItem]:
    """What ``contributor`` handed in, newest first (drafts excluded)."""
    rows = session.execute(
        select(
            SubmissionRow.workflow_id,
            SubmissionRow.node,
            SubmissionRow.kind,
            SubmissionRow.attempt,
            SubmissionRow.at,
        )
        .where(SubmissionRow.actor == contributor, SubmissionRow.kind == "submit")
        .order_by(SubmissionRow.at.desc())
        .limit(limit)
    )
    return [SubmittedItem(w, n, k, a, at) for w, n, k, a, at in rows]


# --------------------------------------------------------------------------- claim limits


def lock_contributor(session: Session, contributor: str, roles: list[str]) -> None:
    """Serialise this contributor's claim decisions until the transaction ends.

    Writing the contributor's row (an upsert: it inserts the row or touches it) takes a row
    lock on PostgreSQL and the write lock on SQLite, so two ``next`` calls of one person cannot
    both pass the limit check.
    """
    now = datetime.now(UTC)
    # One statement: insert the contributor (with ``roles``) or touch their row (roles kept).
    stmt = dialect_insert(session, ContributorRow).values(
        name=contributor, roles=sorted(set(roles)), created_at=now, updated_at=now
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"], set_={"updated_at": stmt.excluded.updated_at}
        )
    )


def held_count(
    session: Session,
    contributor: str,
    pipeline: str,
    *,
    excluding: tuple[str, str] | None = None,
) -> int:
    """Claims held in ``pipeline`` plus live reservations (claims being made right now).

    ``excluding`` (workflow id, node) leaves one node out of both counts: the one being claimed.
    """
    claims = (
        select(func.count())
        .select_from(NodeRow)
        .where(
            NodeRow.assignee == contributor,
            NodeRow.status == NodeStatus.CLAIMED.value,
            NodeRow.pipeline_name == pipeline,
        )
    )
    places = (
        select(func.count())
        .select_from(NodeAnnotatorRow)
        .where(
            NodeAnnotatorRow.contributor == contributor,
            NodeAnnotatorRow.pipeline_name == pipeline,
            NodeAnnotatorRow.state == "claimed",
        )
    )
    cutoff = datetime.now(UTC) - RESERVATION_TTL
    reserved = (
        select(func.count())
        .select_from(ClaimReservationRow)
        .where(
            ClaimReservationRow.contributor == contributor,
            ClaimReservationRow.pipeline_name == pipeline,
            ClaimReservationRow.created_at > cutoff,
            ~_caught_up(),
        )
    )
    if excluding is not None:
        workflow_id, node = excluding
        claims = claims.where(~((NodeRow.workflow_id == workflow_id) & (NodeRow.node == node)))
        places = places.where(
            ~((NodeAnnotatorRow.workflow_id == workflow_id) & (NodeAnnotatorRow.node == node))
        )
        reserved = reserved.where(
            ~((ClaimReservationRow.workflow_id == workflow_id) & (ClaimReservationRow.node == node))
        )
    # One round trip; both counts in the same statement (the same snapshot).
    total = select(claims.scalar_subquery() + places.scalar_subquery() + reserved.scalar_subquery())
    return int(session.execute(total).scalar_one())


def _caught_up() -> ColumnElement[bool]:
    """A reservation the projection has caught up with: its node row is newer than it, so the
    row itself shows the claim (or its end)."""
    return (
        select(NodeRow.seq)
        .where(
            NodeRow.workflow_id == ClaimReservationRow.workflow_id,
            NodeRow.node == ClaimReservationRow.node,
            NodeRow.seq > ClaimReservationRow.seq,
        )
        .exists()
    )


def reserve_claim(session: Session, request: ClaimReservation) -> int | None:
    """Reserve a claim within its limit, under the contributor's lock.

    Counts what the contributor holds and reserves in the pipeline, leaving out the node being
    claimed and reservations that no longer count: the projection caught up with them (their
    node row is newer than the reservation) or they outlived ``RESERVATION_TTL``. Those are
    deleted before a refusal and on a share (``SWEEP_SHARE``) of the other calls.

    Returns:
        None if reserved; otherwise how many claims the contributor holds (at or over the limit).
    """
    lock_contributor(session, request.contributor, request.roles)
    held = held_count(
        session,
        request.contributor,
        request.pipeline,
        excluding=(request.workflow_id, request.node),
    )
    # Reservations the projection caught up with, or that expired, no longer count (held_count
    # leaves them out); they are swept now and then, and before a refusal, not on every claim.
    if held >= request.limit or random.random() < SWEEP_SHARE:
        _sweep_reservations(session, request.contributor)
    if held >= request.limit:
        return held
    row = {
        "contributor": request.contributor,
        "workflow_id": request.workflow_id,
        "node": request.node,
        "pipeline_name": request.pipeline,
        "created_at": datetime.now(UTC),
        "seq": request.seq,
    }
    stmt = dialect_insert(session, ClaimReservationRow).values(**row)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["contributor", "workflow_id", "node"],
            set_={"created_at": stmt.excluded.created_at, "seq": stmt.excluded.seq},
        )
    )
    return None


def _sweep_reservations(session: Session, contributor: str) -> None:
    """Delete ``contributor``'s reservations that no longer count."""
    session.execute(
        delete(ClaimReservationRow)
        .where(
            ClaimReservationRow.contributor == contributor,
            _caught_up() | (ClaimReservationRow.created_at <= datetime.now(UTC) - RESERVATION_TTL),
        )
        .execution_options(synchronize_session=False)
    )


def pipeline_paused(session: Session, pipeline: str) -> bool:
    """Whether the store has ``pipeline`` Paused."""
    status = session.scalar(select(PipelineRow.status).where(PipelineRow.name == pipeline))
    return status == "Paused"


def projected_seq(session: Session, workflow_id: str) -> int:
    """The seq the store has of a task (0 before its first projection)."""
    seq = session.execute(
        select(TaskRow.seq).where(TaskRow.workflow_id == workflow_id)
    ).scalar_one_or_none()
    return int(seq or 0)


def drop_reservation(session: Session, request: ClaimReservation) -> None:
    """Drop the reservation ``request`` made (its claim was refused after all)."""
    session.execute(
        delete(ClaimReservationRow).where(
            ClaimReservationRow.contributor == request.contributor,
            ClaimReservationRow.workflow_id == request.workflow_id,
            ClaimReservationRow.node == request.node,
            ClaimReservationRow.seq == request.seq,
        )
    )


def claim_limit(session: Session, pipeline: str, roles: list[str]) -> int | None:
    """The most claims a person with ``roles`` may hold in ``pipeline`` (None: no limit).

    Limits come from the pipeline's current version; with several limited roles, the most
    generous applies.
    """
    content_hash = session.execute(
        select(PipelineVersionRow.hash)
        .join(PipelineRow, PipelineRow.current_version == PipelineVersionRow.hash)
        .where(PipelineRow.name == pipeline)
    ).scalar_one_or_none()
    if content_hash is None:
        content_hash = session.execute(
            select(PipelineVersionRow.hash)
            .where(PipelineVersionRow.pipeline_name == pipeline)
            .order_by(PipelineVersionRow.created_at.desc())
            .limit(1)
        ).scalar_one_or_none()
    if content_hash is None:
        return None
    _definitions(session, [content_hash])
    parsed = parsed_version(content_hash)
    if parsed is None:
        return None
    limits = parsed.claim_limits
    applicable = [limits[r] for r in roles if r in limits]
    return max(applicable) if applicable else None
