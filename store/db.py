"""Engines, sessions, transactions and schema migrations for the store.

The caller owns the transaction: open one with :func:`transaction` around repository calls
(repositories never commit). The schema is Alembic's job: :func:`migrate` upgrades a database,
:func:`check_schema` refuses to run against one that is behind the code.

SQLite (the embedded default) gets foreign keys, WAL and a busy timeout on every connection,
and real transactions: SQLAlchemy emits ``BEGIN IMMEDIATE`` itself instead of the ``sqlite3``
driver's legacy mode, which starts no transaction for SELECT or DDL (so reads were not
repeatable, DDL was not transactional and savepoints were broken). IMMEDIATE takes the write
lock up front, so concurrent writers wait up to ``busy_timeout`` instead of failing at once
with "database is locked" when a read-then-write transaction tries to upgrade its lock.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
UPGRADE_HINT = "python starter.py db upgrade"


class SchemaOutOfDate(RuntimeError):
    """The database's schema revision is not the one this code was written for."""


def database_url() -> str:
    """The store's URL: ``CONVEYOR_DATABASE_URL``, else a SQLite file in the data directory.

    The data directory is ``CONVEYOR_DATA_DIR`` (default ``./data``); it is created if missing.
    """
    url = os.environ.get("CONVEYOR_DATABASE_URL")
    if url:
        return url
    data_dir = Path(os.environ.get("CONVEYOR_DATA_DIR") or "data")
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'conveyor.db'}"


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; plain ``postgresql://`` (or ``postgres://``) selects psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def safe_url(url: str | URL) -> str:
    """``url`` with its password masked, for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        # Unparseable: say nothing rather than risk echoing a secret.
        return "<unparseable database URL>"


def make_engine(url: str | URL | None = None, **engine_kwargs: Any) -> Engine:
    """A SQLAlchemy engine for ``url`` (default :func:`database_url`).

    ``engine_kwargs`` go to :func:`sqlalchemy.create_engine`, e.g.
    ``connect_args={"options": "-csearch_path=myschema"}`` for PostgreSQL.
    """
    parsed = normalize_url(url if url is not None else database_url())
    engine = create_engine(parsed, **engine_kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below); the driver's legacy mode must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=5000")
            if engine.url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode=WAL")
                # In WAL mode NORMAL syncs at checkpoints, not on every commit (a commit costs
                # ~0.3 ms instead of ~4): the file stays consistent after any crash, and a power
                # cut can lose only the last commits, which `reconcile --fix` restores from the
                # workflows (the truth).
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    _SQLITE_WRITE_LOCKS[engine] = threading.RLock()


_SQLITE_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = (
    weakref.WeakKeyDictionary()
)
"""One lock per SQLite engine, taken by :func:`transaction` around each transaction.

SQLite has one write lock per database and every transaction here takes it (``BEGIN
IMMEDIATE``). Threads of one process that wait for it inside SQLite sleep in its busy handler,
which backs off up to 100 ms between tries and lets a newcomer overtake a waiter: with six
projection threads, some waited past the 5 s ``busy_timeout`` and failed with "database is
locked". Queueing on a lock in Python first hands the database over the moment it is free.
Other processes on the same file still meet each other in the busy handler."""


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; loaded values stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit if the block succeeds, roll back if it raises.

    Example::

        with transaction(sessions) as session:
            upsert_contributor(session, "ada", ["annotator"])
    """
    lock = _SQLITE_WRITE_LOCKS.get(factory.kw.get("bind"))  # type: ignore[arg-type]
    with lock or nullcontext(), factory() as session, session.begin():
        yield session


# --- migrations -----------------------------------------------------------------------------


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config for the packaged migrations; independent of the working directory."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ``%`` is ConfigParser's interpolation character (and appears in encoded passwords).
        rendered = normalize_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest revision the code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def migrate(engine_or_url: Engine | str | URL | None = None, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (default: the newest); a no-op when already there.

    Accepts an engine (its pool and listeners are used) or a URL (default
    :func:`database_url`); safe to call at every start-up.
    """
    _run_alembic(engine_or_url, lambda config: command.upgrade(config, revision))


def downgrade(engine_or_url: Engine | str | URL | None, revision: str) -> None:
    """Downgrade the database to ``revision`` (``"base"`` drops every table)."""
    _run_alembic(engine_or_url, lambda config: command.downgrade(config, revision))


def _run_alembic(engine_or_url: Engine | str | URL | None, run: Callable[[Config], None]) -> None:
    owned = not isinstance(engine_or_url, Engine)
    engine = engine_or_url if isinstance(engine_or_url, Engine) else make_engine(engine_or_url)
    try:
        with engine.connect() as connection:
            config = alembic_config()
            # env.py migrates on this connection instead of opening its own.
            config.attributes["connection"] = connection
            run(config)
    finally:
        if owned:
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    """The database's revision, or None when it was never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Raise :class:`SchemaOutOfDate` unless the database is at the code's head revision."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"database at {safe_url(engine.url)} is at revision {current or 'none (empty)'}, "
            f"the code needs {head}; run: {UPGRADE_HINT}"
        )


@contextmanager
def sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """Disable SQLite foreign keys around a migration, then verify them.

    Alembic's batch mode rebuilds a table by copying it and dropping the original; with foreign
    keys on, that DROP would cascade-delete every referencing row (``ON DELETE CASCADE``). The
    pragma only takes effect outside a transaction, so this must wrap the migration's
    transaction. A no-op on other dialects.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    if connection.in_transaction():
        raise RuntimeError("sqlite_foreign_keys_off must run before the transaction begins")
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
        violations = driver.execute("PRAGMA foreign_key_check").fetchall()
        if violations:
            raise RuntimeError(f"migration left foreign key violations: {violations[:5]}")
    finally:
        driver.execute("PRAGMA foreign_keys=ON")
