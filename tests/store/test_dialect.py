"""upsert_ignore / upsert_newer: the projection's write primitives, on both dialects."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import BigInteger, Column, Engine, Integer, MetaData, String, Table, select
from sqlalchemy.orm import Session, sessionmaker

from store.db import session_factory, transaction
from store.dialect import upsert_ignore, upsert_newer
from store.models import Json, TaskRow

probe_metadata = MetaData()
probe = Table(
    "upsert_probe",
    probe_metadata,
    Column("k1", String(50), primary_key=True),
    Column("k2", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("value", String(50)),
    Column("payload", Json),
    Column("note", String(50)),
    Column("created", String(50)),
)


@pytest.fixture
def probe_sessions(db_engine: Engine) -> Iterator[sessionmaker[Session]]:
    probe_metadata.create_all(db_engine)
    yield session_factory(db_engine)
    probe_metadata.drop_all(db_engine)


def _row(sessions: sessionmaker[Session], k1: str = "a", k2: int = 1) -> dict[str, Any] | None:
    with sessions() as session:
        found = session.execute(
            select(probe).where(probe.c.k1 == k1, probe.c.k2 == k2)
        ).one_or_none()
        return dict(found._mapping) if found is not None else None


def _write(sessions: sessionmaker[Session], values: Any, **kwargs: Any) -> int:
    with transaction(sessions) as session:
        return upsert_newer(session, probe, values, ["k1", "k2"], **kwargs)


def _snapshot(seq: int, k1: str = "a", k2: int = 1, **extra: Any) -> dict[str, Any]:
    return {"k1": k1, "k2": k2, "seq": seq, "value": f"v{seq}", "payload": {"seq": seq}, **extra}


def test_inserts_a_missing_row(probe_sessions: sessionmaker[Session]) -> None:
    assert _write(probe_sessions, _snapshot(1)) == 1
    assert _row(probe_sessions) == {**_snapshot(1), "note": None, "created": None}


def test_a_newer_seq_overwrites_every_given_column(probe_sessions: sessionmaker[Session]) -> None:
    _write(probe_sessions, _snapshot(1, note="first"))
    assert _write(probe_sessions, _snapshot(2, note="second")) == 1
    assert _row(probe_sessions) == {**_snapshot(2), "note": "second", "created": None}


def test_an_older_seq_is_ignored(probe_sessions: sessionmaker[Session]) -> None:
    _write(probe_sessions, _snapshot(5))
    assert _write(probe_sessions, _snapshot(4, note="stale")) == 0
    assert _row(probe_sessions) == {**_snapshot(5), "note": None, "created": None}


def test_an_equal_seq_is_ignored(probe_sessions: sessionmaker[Session]) -> None:
    _write(probe_sessions, _snapshot(3))
    assert _write(probe_sessions, {**_snapshot(3), "value": "different"}) == 0
    assert _row(probe_sessions) == {**_snapshot(3), "note": None, "created": None}


def test_columns_not_given_and_insert_only_columns_are_kept(
    probe_sessions: sessionmaker[Session],
) -> None:
    _write(probe_sessions, _snapshot(1, note="kept", created="t1"), insert_only=["created"])
    newer = {"k1": "a", "k2": 1, "seq": 2, "value": "v2", "created": "t2"}
    assert _write(probe_sessions, newer, insert_only=["created"]) == 1
    assert _row(probe_sessions) == {
        "k1": "a",
        "k2": 1,
        "seq": 2,
        "value": "v2",
        "payload": {"seq": 1},
        "note": "kept",
        "created": "t1",
    }


def test_the_whole_key_decides_the_row(probe_sessions: sessionmaker[Session]) -> None:
    _write(probe_sessions, _snapshot(9, k2=1))
    assert _write(probe_sessions, _snapshot(1, k2=2)) == 1  # other key: its own row
    assert _row(probe_sessions, k2=1) == {**_snapshot(9, k2=1), "note": None, "created": None}
    assert _row(probe_sessions, k2=2) == {**_snapshot(1, k2=2), "note": None, "created": None}


def test_several_rows_in_one_statement(probe_sessions: sessionmaker[Session]) -> None:
    _write(probe_sessions, [_snapshot(5, k1="x"), _snapshot(5, k1="y")])
    written = _write(
        probe_sessions,
        [_snapshot(6, k1="x"), _snapshot(4, k1="y"), _snapshot(1, k1="z")],
    )
    assert written == 2  # x updated, y stale, z inserted
    assert [(_row(probe_sessions, k1=k) or {}).get("seq") for k in "xyz"] == [6, 5, 1]


def test_any_delivery_order_ends_at_the_newest(probe_sessions: sessionmaker[Session]) -> None:
    for n, order in enumerate(itertools.permutations([1, 2, 3, 4])):
        for seq in order:
            _write(probe_sessions, _snapshot(seq, k1=f"p{n}"))
        assert _row(probe_sessions, k1=f"p{n}") == {
            **_snapshot(4, k1=f"p{n}"),
            "note": None,
            "created": None,
        }


def test_concurrent_writers_leave_the_newest(probe_sessions: sessionmaker[Session]) -> None:
    seqs = list(range(1, 13))
    random.Random(7).shuffle(seqs)
    start = threading.Barrier(len(seqs))
    errors: list[BaseException] = []

    def write(seq: int) -> None:
        try:
            # released together; then SQLite takes them one at a time, PostgreSQL at once
            start.wait(timeout=10)
            with transaction(probe_sessions) as session:
                upsert_newer(session, probe, _snapshot(seq), ["k1", "k2"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(seq,)) for seq in seqs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert _row(probe_sessions) == {**_snapshot(12), "note": None, "created": None}


def test_values_must_carry_the_key_and_seq(probe_sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="values lack seq"):
        _write(probe_sessions, {"k1": "a", "k2": 1, "value": "v"})
    with pytest.raises(ValueError, match="no such columns nope"):
        _write(probe_sessions, {**_snapshot(1), "nope": 1})
    assert _write(probe_sessions, []) == 0


def test_upsert_ignore_inserts_once(probe_sessions: sessionmaker[Session]) -> None:
    with transaction(probe_sessions) as session:
        assert upsert_ignore(session, probe, _snapshot(1)) == 1
    with transaction(probe_sessions) as session:
        assert upsert_ignore(session, probe, _snapshot(2)) == 0
        assert upsert_ignore(session, probe, [_snapshot(3), _snapshot(1, k1="b")]) == 1
    assert _row(probe_sessions) == {**_snapshot(1), "note": None, "created": None}
    assert _row(probe_sessions, k1="b") is not None


def test_on_a_real_table_with_a_mapped_class(sessions: sessionmaker[Session]) -> None:
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    def task(seq: int, status: str) -> dict[str, Any]:
        return {
            "workflow_id": "wf-1",
            "pipeline_name": "p",
            "pipeline_hash": "h",
            "task_key": "k",
            "status": status,
            "seq": seq,
            "data": {"text": "hi"},
            "current_nodes": ["label"],
            "assignees": [],
            "tags": [],
            "created_at": now,
            "updated_at": now,
        }

    with transaction(sessions) as session:
        assert upsert_newer(session, TaskRow, task(2, "In Progress"), ["workflow_id"]) == 1
        assert upsert_newer(session, TaskRow.__table__, task(1, "Pending"), ["workflow_id"]) == 0
        assert upsert_newer(session, TaskRow, task(3, "Finished"), ["workflow_id"]) == 1
    with sessions() as session:
        row = session.execute(select(TaskRow.status, TaskRow.seq, TaskRow.created_at)).one()
    assert tuple(row) == ("Finished", 3, now)
