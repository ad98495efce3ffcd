"""insert_new_rows: the bulk path of lazy creation, on both dialects — what it stores is what the
ORM stores, and rows already there are skipped (and reported) exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session, sessionmaker

from store.bulk_rows import insert_new_rows
from store.db import transaction
from store.dialect import upsert_ignore
from store.models import NodeRow, TaskRow


def _table(row: type[TaskRow] | type[NodeRow]) -> Table:
    table = row.__table__
    assert isinstance(table, Table)
    return table


def task(i: int, at: datetime, shared: dict[str, Any]) -> dict[str, Any]:
    return {
        "workflow_id": f"bulk/{i}",
        "pipeline_name": "bulk",
        "pipeline_hash": "h" * 64,
        "task_key": str(i),
        "status": "In Progress",
        "seq": 3,
        "data": {"text": f"row {i}", "n": i, "nested": {"list": [1, "ü", None]}},
        "current_nodes": ["label"],
        "assignees": [],
        "tags": shared["tags"],
        "hold_reason": None,
        "search_text": f"{i}\nrow {i}",
        "created_at": at,
        "updated_at": at,
        "finished_at": None,
        "start": "untouched",
    }


def rows_of(sessions: sessionmaker[Session], ids: list[str]) -> dict[str, dict[str, Any]]:
    with transaction(sessions) as session:
        found = session.scalars(select(TaskRow).where(TaskRow.workflow_id.in_(ids)))
        return {
            row.workflow_id: {c.key: getattr(row, c.key) for c in TaskRow.__mapper__.column_attrs}
            for row in found
        }


def test_bulk_rows_read_back_as_the_orm_writes_them(sessions: sessionmaker[Session]) -> None:
    at = datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=UTC) + timedelta(hours=1)
    shared: dict[str, Any] = {"tags": ["a", "b"]}
    bulk = [task(i, at, shared) for i in range(50)]
    orm = [dict(task(i, at, shared), workflow_id=f"orm/{i}", task_key=f"o{i}") for i in range(50)]
    with transaction(sessions) as session:
        written = insert_new_rows(session, _table(TaskRow), bulk, returning="workflow_id")
        upsert_ignore(session, TaskRow, orm)
    assert written == {row["workflow_id"] for row in bulk}
    got = rows_of(sessions, [r["workflow_id"] for r in bulk + orm])
    for i in range(50):
        by_bulk, by_orm = dict(got[f"bulk/{i}"]), dict(got[f"orm/{i}"])
        for row in (by_bulk, by_orm):
            row.pop("workflow_id"), row.pop("task_key")
        assert by_bulk == by_orm
        assert by_bulk["created_at"] == at and by_bulk["data"]["nested"] == {"list": [1, "ü", None]}


def test_rows_already_there_are_skipped_and_not_reported(sessions: sessionmaker[Session]) -> None:
    at = datetime.now(UTC)
    shared: dict[str, Any] = {"tags": []}
    first = [task(i, at, shared) for i in range(0, 30)]
    with transaction(sessions) as session:
        insert_new_rows(session, _table(TaskRow), first, returning="workflow_id")
    # Overlapping: 20 already there (with other data, which must not change), 20 new.
    again = [dict(task(i, at, shared), status="Paused") for i in range(10, 50)]
    with transaction(sessions) as session:
        written = insert_new_rows(session, _table(TaskRow), again, returning="workflow_id")
    assert written == {f"bulk/{i}" for i in range(30, 50)}
    got = rows_of(sessions, [f"bulk/{i}" for i in range(50)])
    assert len(got) == 50
    assert {got[f"bulk/{i}"]["status"] for i in range(30)} == {"In Progress"}
    assert {got[f"bulk/{i}"]["status"] for i in range(30, 50)} == {"Paused"}


def test_rows_without_a_key_check_skip_conflicts_too(sessions: sessionmaker[Session]) -> None:
    """Without ``returning`` nothing is looked up first: a conflict met while writing (PostgreSQL
    ``COPY`` refuses the whole batch) is skipped row by row instead."""
    at = datetime.now(UTC)
    with transaction(sessions) as session:
        insert_new_rows(session, _table(TaskRow), [task(1, at, {"tags": []})])

    def node(name: str) -> dict[str, Any]:
        return {
            "workflow_id": "bulk/1",
            "node": name,
            "pipeline_name": "bulk",
            "status": "Available",
            "seq": 3,
            "values": {},
            "draft": {},
            "attempts": 0,
            "passes": 0,
            "failures": 0,
            "total_failures": 0,
            "available_since": at,
        }

    with transaction(sessions) as session:
        insert_new_rows(session, _table(NodeRow), [node("label")])
    with transaction(sessions) as session:
        insert_new_rows(session, _table(NodeRow), [node("label"), node("check")])
    with transaction(sessions) as session:
        names = set(session.scalars(select(NodeRow.node).where(NodeRow.workflow_id == "bulk/1")))
    assert names == {"label", "check"}
