"""Migrations: empty -> head -> base on both dialects, and models and migrations agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, String, inspect

from store.db import (
    SchemaOutOfDate,
    check_schema,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    migrate,
)
from store.models import Base

TABLES = set(Base.metadata.tables)


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_from_empty_to_head(db_engine: Engine) -> None:
    assert _tables(db_engine) == set()
    assert current_revision(db_engine) is None

    migrate(db_engine)

    assert _tables(db_engine) == TABLES
    assert current_revision(db_engine) == head_revision()
    check_schema(db_engine)


def test_models_and_migrations_agree(migrated_engine: Engine) -> None:
    # If this fails, a model changed without a migration (or the reverse): generate one with
    #   alembic revision --autogenerate -m "what changed" --rev-id NNNN
    with migrated_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_named_by_the_naming_convention(migrated_engine: Engine) -> None:
    inspector = inspect(migrated_engine)
    # SQLite reflects some constraint names as None; the names it does report must match.
    unnamed = {None} if migrated_engine.dialect.name == "sqlite" else set()
    for table in TABLES:
        assert inspector.get_pk_constraint(table)["name"] in {f"pk_{table}", *unnamed}
        for index in inspector.get_indexes(table):
            if "duplicates_constraint" not in index:  # PostgreSQL: a unique constraint's index
                assert str(index["name"]).startswith(f"ix_{table}_")
        for unique in inspector.get_unique_constraints(table):
            assert str(unique["name"]).startswith(f"uq_{table}_")
        for fk in inspector.get_foreign_keys(table):
            expected = f"fk_{table}_{fk['constrained_columns'][0]}_{fk['referred_table']}"
            assert fk["name"] in {expected, *unnamed}


def test_upgrade_twice_is_a_no_op(migrated_engine: Engine) -> None:
    migrate(migrated_engine)
    assert current_revision(migrated_engine) == head_revision()


def test_downgrade_to_base_drops_everything(migrated_engine: Engine) -> None:
    downgrade(migrated_engine, "base")
    assert _tables(migrated_engine) == set()
    assert current_revision(migrated_engine) is None
    # ... and back up again.
    migrate(migrated_engine)
    assert _tables(migrated_engine) == TABLES


def test_migrate_by_url_from_any_working_directory(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_check_schema_names_the_revisions_and_the_fix(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with pytest.raises(SchemaOutOfDate) as raised:
            check_schema(engine)
    finally:
        engine.dispose()
    message = str(raised.value)
    assert f"is at revision none (empty), the code needs {head_revision()}" in message
    assert message.endswith("run: python starter.py db upgrade")
    assert message.startswith("database at ")


def test_sqlite_foreign_keys_are_on_again_after_migrating(migrated_engine: Engine) -> None:
    if migrated_engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with migrated_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_the_comparison_notices_a_model_without_a_migration(migrated_engine: Engine) -> None:
    # Guards the test above against passing vacuously (e.g. comparing the wrong schema).
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["tasks"].append_column(Column("extra", Integer))
    changed.tables["contributors"].c.name.type = String(250)
    with migrated_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, changed)
    kinds = {entry[0] if isinstance(entry, tuple) else entry[0][0] for entry in diff}
    assert kinds == {"add_column", "modify_type"}
