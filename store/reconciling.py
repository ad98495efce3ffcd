"""What ``conveyor.reconcile`` reads of a task's projection, and the one write it adds to it.

Reconcile compares the store with the workflows: it reads a task's row, node rows, tags and
timeline sequence numbers here (as plain values, the columns :func:`store.projection.task_values`
and :func:`store.projection.node_values` write), and before rewriting a task from its workflow
it lowers the stored ``seq`` (:func:`unguard_task`) so the projection's newer-only guard lets
the rewrite through. The caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from store.lazy import NOT_STARTED
from store.models import Base, NodeRow, TaskRow, TaskTagRow, TimelineEventRow


def _columns(row: Base) -> dict[str, Any]:
    """Every mapped column of ``row``, by attribute name."""
    return {column.key: getattr(row, column.key) for column in row.__mapper__.column_attrs}


def task_ids(session: Session, pipeline: str | None = None) -> set[str]:
    """The workflow ids of the stored tasks (of ``pipeline``, when given) that have, or may
    have, a workflow: not those created lazily and still untouched (their row is the task)."""
    query = select(TaskRow.workflow_id).where(
        or_(TaskRow.start.is_(None), TaskRow.start.not_in(NOT_STARTED))
    )
    if pipeline:
        query = query.where(TaskRow.pipeline_name == pipeline)
    return set(session.scalars(query))


def lazily_created(session: Session, ids: Collection[str]) -> set[str]:
    """Those of ``ids`` whose tasks were created lazily and whose start may not have reached
    Temporal yet (``tasks.start`` is set): no workflow is no orphan for them."""
    found: set[str] = set()
    ordered = sorted(ids)
    for i in range(0, len(ordered), 500):
        chunk = ordered[i : i + 500]
        query = select(TaskRow.workflow_id).where(
            TaskRow.workflow_id.in_(chunk), TaskRow.start.is_not(None)
        )
        found |= set(session.scalars(query))
    return found


def stored_task(session: Session, workflow_id: str) -> dict[str, Any] | None:
    """The task's ``tasks`` row as column → value, or ``None`` when there is none."""
    row = session.get(TaskRow, workflow_id)
    return None if row is None else _columns(row)


def stored_nodes(session: Session, workflow_id: str) -> dict[str, dict[str, Any]]:
    """The task's ``node_instances`` rows, each as column → value, by node name."""
    rows = session.scalars(select(NodeRow).where(NodeRow.workflow_id == workflow_id))
    return {row.node: _columns(row) for row in rows}


def stored_tags(session: Session, workflow_id: str) -> set[str]:
    """The task's tags (``task_tags``)."""
    return set(session.scalars(select(TaskTagRow.tag).where(TaskTagRow.workflow_id == workflow_id)))


def stored_timeline_seqs(session: Session, workflow_id: str) -> set[int]:
    """The ``seq`` of every stored timeline event of the task."""
    return set(
        session.scalars(
            select(TimelineEventRow.seq).where(TimelineEventRow.workflow_id == workflow_id)
        )
    )


def unguard_task(session: Session, workflow_id: str) -> None:
    """Set the ``seq`` of the task's ``tasks`` row and ``node_instances`` rows to -1, so the
    next projection batch overwrites them whatever seq the store held (it may be corrupt and
    higher than the workflow's). Only reconcile's repair does this, right before it applies the
    workflow's view with :func:`store.projection.apply_batch` in the same transaction."""
    session.execute(update(TaskRow).where(TaskRow.workflow_id == workflow_id).values(seq=-1))
    session.execute(update(NodeRow).where(NodeRow.workflow_id == workflow_id).values(seq=-1))
