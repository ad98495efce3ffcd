"""A bulk evaluation's reads and writes of ``evaluation_results``: which results exist, and
inserting new ones at most once.

Like the other store functions these take a session and never commit: the caller owns the
transaction. Rows go in as the plain dicts :func:`store.projection.evaluation_row` builds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.dialect import upsert_ignore
from store.models import EvaluationResultRow

ResultKey = tuple[str, str, str, str]
"""``(workflow_id, node, criterion, criterion version)``: one result at most per key."""


def result_keys(
    session: Session, workflow_ids: Sequence[str], criteria: Collection[str]
) -> set[ResultKey]:
    """The keys of the stored results of the tasks ``workflow_ids`` for the named criteria
    (any node, any version)."""
    return {
        (wid, node, criterion, version)
        for wid, node, criterion, version in session.execute(
            select(
                EvaluationResultRow.workflow_id,
                EvaluationResultRow.node,
                EvaluationResultRow.criterion,
                EvaluationResultRow.criterion_version,
            ).where(
                EvaluationResultRow.workflow_id.in_(list(workflow_ids)),
                EvaluationResultRow.criterion.in_(criteria),
            )
        )
    }


def insert_results(session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """``INSERT ... ON CONFLICT DO NOTHING`` of ``evaluation_results`` rows (each with the same
    keys); how many were inserted (a result already stored under the same key is skipped)."""
    return upsert_ignore(session, EvaluationResultRow, rows)
