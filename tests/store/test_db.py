"""Engine, URL and transaction helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, event, select

from store.db import (
    database_url,
    make_engine,
    normalize_url,
    safe_url,
    session_factory,
    transaction,
)
from store.models import ContributorRow
from store.repositories import get_contributor, upsert_contributor


def test_database_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", "postgresql://u:p@db/conveyor")
    assert database_url() == "postgresql://u:p@db/conveyor"


def test_database_url_defaults_to_sqlite_in_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CONVEYOR_DATABASE_URL", raising=False)
    monkeypatch.setenv("CONVEYOR_DATA_DIR", str(tmp_path / "new" / "dir"))
    assert database_url() == f"sqlite:///{tmp_path}/new/dir/conveyor.db"
    assert (tmp_path / "new" / "dir").is_dir()

    monkeypatch.delenv("CONVEYOR_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    assert database_url() == "sqlite:///data/conveyor.db"
    assert (tmp_path / "data").is_dir()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://conveyor:s3cr%40t@db:5432/conveyor",
            "postgresql+psycopg://conveyor:***@db:5432/conveyor",
        ),
        ("postgresql://conveyor@db/conveyor", "postgresql://conveyor@db/conveyor"),
        ("sqlite:///data/conveyor.db", "sqlite:///data/conveyor.db"),
        ("not a url :: hunter2", "<unparseable database URL>"),
    ],
)
def test_safe_url_masks_the_password(url: str, shown: str) -> None:
    assert safe_url(url) == shown
    assert "s3cr" not in safe_url(url) and "hunter2" not in safe_url(url)


def test_engine_repr_and_errors_never_show_the_password() -> None:
    engine = make_engine("postgresql://conveyor:topsecret@127.0.0.1:1/nowhere")
    try:
        assert "topsecret" not in repr(engine)
        assert "topsecret" not in safe_url(engine.url)
    finally:
        engine.dispose()


def test_plain_postgresql_urls_use_psycopg_3() -> None:
    assert normalize_url("postgresql://h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"
    engine = make_engine("postgresql://postgres@127.0.0.1:5432/test")
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_sqlite_connections_are_configured(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            pragma = conn.exec_driver_sql
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA busy_timeout").scalar() == 5000
    finally:
        engine.dispose()


def test_make_engine_passes_engine_kwargs(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", pool_pre_ping=True, echo=False)
    try:
        assert engine.pool._pre_ping
    finally:
        engine.dispose()


def test_transaction_commits_on_success(migrated_engine: Engine) -> None:
    sessions = session_factory(migrated_engine)
    with transaction(sessions) as session:
        upsert_contributor(session, "ada", ["labeler"])
    with sessions() as session:
        assert get_contributor(session, "ada") is not None


def test_transaction_rolls_back_on_error(migrated_engine: Engine) -> None:
    sessions = session_factory(migrated_engine)
    with pytest.raises(RuntimeError, match="boom"), transaction(sessions) as session:
        upsert_contributor(session, "ada", ["labeler"])
        raise RuntimeError("boom")
    with sessions() as session:
        assert session.scalars(select(ContributorRow)).all() == []


def test_transactions_are_real_on_sqlite(migrated_engine: Engine) -> None:
    # The sqlite3 driver's legacy mode would run the SELECT outside any transaction.
    statements: list[str] = []
    event.listen(
        migrated_engine,
        "before_cursor_execute",
        lambda _conn, _cursor, statement, *_: statements.append(statement),
    )
    with transaction(session_factory(migrated_engine)) as session:
        get_contributor(session, "nobody")
    if migrated_engine.dialect.name == "sqlite":
        assert statements[0] == "BEGIN IMMEDIATE"


def test_objects_stay_readable_after_commit(migrated_engine: Engine) -> None:
    sessions = session_factory(migrated_engine)
    with transaction(sessions) as session:
        upsert_contributor(session, "ada", ["labeler"])
        row = session.get(ContributorRow, "ada")
    assert row is not None and row.roles == ["labeler"]  # expire_on_commit=False
