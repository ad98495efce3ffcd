"""Deleting tasks' rows (``conveyor.bulk.deleting`` deletes their workflows first).

Like the other store functions these take a session and never commit: the caller owns the
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from store.lazy import NOT_STARTED
from store.models import ClaimReservationRow, EvaluationResultRow, LlmCallRow, TaskRow

_IDS_PER_QUERY = 1000


def delete_task_rows(session: Session, workflow_ids: Sequence[str]) -> set[str]:
    """Delete tasks' store rows; returns the ids that had a task row.

    Node instances, timeline events, submissions, reviews and tags go with the task row
    (``ON DELETE CASCADE``; SQLite enforces it because ``store.db`` turns foreign keys on).
    LLM calls, evaluation results and claim reservations have no foreign key and are deleted
    explicitly.
    """
    ids = list(workflow_ids)
    for table in (LlmCallRow, EvaluationResultRow, ClaimReservationRow):
        session.execute(delete(table).where(table.workflow_id.in_(ids)))
    gone = session.scalars(
        delete(TaskRow).where(TaskRow.workflow_id.in_(ids)).returning(TaskRow.workflow_id)
    )
    return set(gone)


def delete_untouched_rows(session: Session, workflow_ids: Sequence[str]) -> set[str]:
    """Delete the rows of those tasks that were created lazily and have no workflow (their row
    is the whole task); returns their ids. One statement decides: a start begun at the same
    moment (which marks the row first) keeps its task, and the task goes the usual way."""
    ids = list(workflow_ids)
    gone = set(
        session.scalars(
            delete(TaskRow)
            .where(TaskRow.workflow_id.in_(ids), TaskRow.start.in_(NOT_STARTED))
            .returning(TaskRow.workflow_id)
        )
    )
    if gone:
        for table in (LlmCallRow, EvaluationResultRow, ClaimReservationRow):
            session.execute(delete(table).where(table.workflow_id.in_(list(gone))))
    return gone


def ids_of_other_pipelines(session: Session, pipeline: str, workflow_ids: list[str]) -> list[str]:
    """The ids among ``workflow_ids`` whose task the store knows under another pipeline."""
    others: list[str] = []
    for start in range(0, len(workflow_ids), _IDS_PER_QUERY):
        others += session.scalars(
            select(TaskRow.workflow_id).where(
                TaskRow.workflow_id.in_(workflow_ids[start : start + _IDS_PER_QUERY]),
                TaskRow.pipeline_name != pipeline,
            )
        )
    return others
