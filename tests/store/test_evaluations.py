"""A bulk evaluation's reads and writes of evaluation_results (store/evaluations.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.evaluations import insert_results, result_keys
from store.models import EvaluationResultRow
from store.projection import evaluation_row
from workflows.messages import EvaluationKind, EvaluationRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _row(
    workflow_id: str, node: str, criterion: str, version: str = "v1", **record: Any
) -> dict[str, Any]:
    result = EvaluationRecord(
        criterion=criterion,
        version=version,
        kind=EvaluationKind.PROGRAMMATIC,
        evaluator="regex",
        node=node,
        fields=["label"],
        **record,
    )
    return evaluation_row(workflow_id, "p", result, source="bulk", seq=0, at=NOW)


def test_insert_results_writes_each_key_once(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        assert insert_results(session, [_row("p/a", "label", "short", score=1.0)]) == 1
    with transaction(sessions) as session:
        again = [
            _row("p/a", "label", "short", score=0.0),  # the same key: skipped
            _row("p/a", "label", "short", "v2", score=0.0),
            _row("p/b", "label", "short", error="boom"),
        ]
        assert insert_results(session, again) == 2
        assert insert_results(session, []) == 0
    with sessions() as session:
        stored = session.execute(
            select(
                EvaluationResultRow.workflow_id,
                EvaluationResultRow.criterion_version,
                EvaluationResultRow.score,
                EvaluationResultRow.error,
                EvaluationResultRow.source,
            ).order_by(EvaluationResultRow.workflow_id, EvaluationResultRow.criterion_version)
        ).all()
    assert [tuple(r) for r in stored] == [
        ("p/a", "v1", 1.0, None, "bulk"),
        ("p/a", "v2", 0.0, None, "bulk"),
        ("p/b", "v1", None, "boom", "bulk"),
    ]


def test_result_keys_of_the_tasks_and_criteria(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        insert_results(
            session,
            [
                _row("p/a", "label", "short"),
                _row("p/a", "label", "short", "v2"),
                _row("p/a", "check", "short"),
                _row("p/a", "label", "polite"),
                _row("p/b", "label", "short"),
                _row("p/c", "label", "short"),
            ],
        )
    with transaction(sessions) as session:
        keys = result_keys(session, ["p/a", "p/b", "p/missing"], {"short"})
        assert result_keys(session, [], {"short"}) == set()
        assert result_keys(session, ["p/a"], set()) == set()
    assert keys == {
        ("p/a", "label", "short", "v1"),
        ("p/a", "label", "short", "v2"),
        ("p/a", "check", "short", "v1"),
        ("p/b", "label", "short", "v1"),
    }
