"""Database fixtures: every store test runs on SQLite and, when configured, on PostgreSQL.

PostgreSQL tests need ``CONVEYOR_TEST_DATABASE_URL`` (``.ci/run`` sets it); each test gets its own
freshly created schema, selected with ``search_path`` in the URL (so anything that opens its own
engine from the URL, e.g. ``migrate(url)``, lands in it too), and dropped afterwards.

Import the fixtures into a ``conftest.py``::

    from tests.support.database import db_engine, db_url, migrated_engine, sessions  # noqa: F401
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, migrate, normalize_url, session_factory

TEST_DATABASE_ENV = "CONVEYOR_TEST_DATABASE_URL"
SKIP_REASON = f"{TEST_DATABASE_ENV} is not set: PostgreSQL tests run in CI (.ci/run sets it)"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'conveyor.db'}"
        return
    base = os.environ.get(TEST_DATABASE_ENV)
    if not base:
        pytest.skip(SKIP_REASON)
    with postgres_schema(base) as url:
        yield url


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    """An engine on the empty database (not migrated)."""
    engine = make_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def migrated_engine(db_engine: Engine) -> Engine:
    """The engine, with the database migrated to head."""
    migrate(db_engine)
    return db_engine


@pytest.fixture
def sessions(migrated_engine: Engine) -> sessionmaker[Session]:
    return session_factory(migrated_engine)


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """Create a uniquely named schema; yield a URL whose connections use it; then drop it."""
    base = normalize_url(base_url)
    schema = f"conveyor_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            url = base.update_query_dict({"options": f"-csearch_path={schema}"})
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        admin.dispose()
