"""Column types behave the same on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.models import ContributorRow, NodeRow, TaskRow


def _task(**overrides: object) -> TaskRow:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    values: dict[str, object] = {
        "workflow_id": "wf",
        "pipeline_name": "p",
        "pipeline_hash": "h",
        "task_key": "k",
        "status": "Pending",
        "data": {},
        "current_nodes": [],
        "assignees": [],
        "tags": [],
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    return TaskRow(**values)


def test_timestamps_keep_the_instant_and_come_back_in_utc(
    sessions: sessionmaker[Session],
) -> None:
    plus_two = timezone(timedelta(hours=2))
    early = datetime(2025, 6, 1, 12, 0, tzinfo=plus_two)  # 10:00 UTC
    late = datetime(2025, 6, 1, 11, 0, tzinfo=UTC)
    with transaction(sessions) as session:
        session.add(_task(workflow_id="early", task_key="a", created_at=early))
        session.add(_task(workflow_id="late", task_key="b", created_at=late))
    with sessions() as session:
        rows = session.execute(select(TaskRow.workflow_id, TaskRow.created_at)).all()
        ordered = session.scalars(select(TaskRow.workflow_id).order_by(TaskRow.created_at)).all()
        after = session.scalars(
            select(TaskRow.workflow_id).where(
                TaskRow.created_at > datetime(2025, 6, 1, 10, 30, tzinfo=UTC)
            )
        ).all()
    stored = dict(rows)
    assert stored["early"] == early and stored["early"].tzinfo == UTC
    assert stored["late"] == late and stored["late"].tzinfo == UTC
    assert list(ordered) == ["early", "late"]
    assert list(after) == ["late"]


def test_naive_timestamps_are_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(Exception, match="naive datetime"), transaction(sessions) as session:
        session.add(
            ContributorRow(
                name="x", roles=[], created_at=datetime(2025, 1, 1), updated_at=datetime(2025, 1, 1)
            )
        )


def test_json_none_is_sql_null(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        session.add(_task())
        session.flush()  # no relationship() tells the ORM that tasks go first
        session.add(
            NodeRow(
                workflow_id="wf",
                node="label",
                pipeline_name="p",
                status="Available",
                values={"a": [1, "x"]},
                draft={},
                last_review=None,
            )
        )
    with sessions() as session:
        null_reviews = session.scalars(
            select(NodeRow.node).where(NodeRow.last_review.is_(None))
        ).all()
        values = session.scalar(select(NodeRow.values))
    assert list(null_reviews) == ["label"]
    assert values == {"a": [1, "x"]}
