"""Writing many new rows at bulk-insert speed: ``INSERT ... ON CONFLICT DO NOTHING`` for
thousands of rows at once, on SQLite and PostgreSQL.

SQLAlchemy's ``executemany`` converts every value of every row through its types on each call;
for the rows of a large import that conversion, not the database, was most of the time. Here
each column's conversion is looked up once per call, values shared between rows (the same
dict in many rows) are converted once, and the rows go to the driver directly: SQLite's
``executemany``, PostgreSQL's ``COPY`` into a temporary table followed by one
``INSERT ... SELECT ... ON CONFLICT DO NOTHING``. The values stored are exactly those the ORM
would store (the same type conversions).

Like the other store functions these take a session and never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from store.dialect import SUPPORTED_DIALECTS

__all__ = ["insert_new_rows"]


def insert_new_rows(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    returning: str | None = None,
) -> set[Any]:
    """Insert ``rows`` (all with the same columns), skipping any that conflict with a row
    already there (any unique constraint).

    Args:
        returning: a column whose values of the rows actually inserted are returned. Exact on
            PostgreSQL; on SQLite, the rows whose ``returning`` value was not there before the
            insert (one writer at a time: the store's write lock).

    Returns:
        With ``returning``, those values; else an empty set.
    """
    if not rows:
        return set()
    connection = session.connection()
    dialect = connection.dialect
    columns = list(rows[0])
    values = _converted(table, columns, rows, dialect)
    prepare = dialect.identifier_preparer
    names = ", ".join(prepare.quote(c) for c in columns)
    target = prepare.format_table(table)
    driver = connection.connection.driver_connection
    if dialect.name == "sqlite":
        before: set[Any] = set()
        if returning is not None:
            before = _existing(session, table, returning, [row[returning] for row in rows])
        marks = ", ".join("?" for _ in columns)
        cursor = driver.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(
                f"INSERT INTO {target} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING",
                values,
            )
        finally:
            cursor.close()
        if returning is None:
            return set()
        return {row[returning] for row in rows} - before
    if dialect.name == "postgresql":
        return _postgresql(session, driver, table, columns, rows, values, returning)
    raise NotImplementedError(
        f"the store supports {' and '.join(SUPPORTED_DIALECTS)}, not {dialect.name!r}"
    )


def _postgresql(
    session: Session,
    driver: Any,
    table: Table,
    columns: list[str],
    rows: Sequence[Mapping[str, Any]],
    values: list[tuple[Any, ...]],
    returning: str | None,
) -> set[Any]:
    """``COPY`` straight into the table when none of the rows is there yet (the usual case:
    new keys), under a savepoint; when one is (or arrives meanwhile), ``COPY`` into a scratch
    table and ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` from it."""
    prepare = session.get_bind().dialect.identifier_preparer
    names = ", ".join(prepare.quote(c) for c in columns)
    target = prepare.format_table(table)
    keys = [row[returning] for row in rows] if returning is not None else []
    clash = returning is not None and bool(_existing(session, table, returning, keys))
    if not clash:
        with driver.cursor() as cursor:
            cursor.execute("SAVEPOINT bulk_copy")
            try:
                with cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
            except Exception as err:
                cursor.execute("ROLLBACK TO SAVEPOINT bulk_copy")
                if getattr(err, "sqlstate", None) != "23505":  # unique_violation: long way
                    raise
            else:
                cursor.execute("RELEASE SAVEPOINT bulk_copy")
                return set(keys)
    scratch = prepare.quote(f"bulk_{uuid.uuid4().hex[:16]}")
    with driver.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {scratch} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        with cursor.copy(f"COPY {scratch} ({names}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
        tail = f" RETURNING {prepare.quote(returning)}" if returning else ""
        cursor.execute(
            f"INSERT INTO {target} ({names}) SELECT {names} FROM {scratch} "
            f"ON CONFLICT DO NOTHING{tail}"
        )
        written = {found[0] for found in cursor.fetchall()} if returning else set()
        cursor.execute(f"DROP TABLE {scratch}")
    return written


def _converted(
    table: Table, columns: list[str], rows: Sequence[Mapping[str, Any]], dialect: Any
) -> list[tuple[Any, ...]]:
    """Each row's values as the driver takes them: through each column's type, as the ORM
    binds them; a value object shared by many rows (a dict, a timestamp) is converted once.
    The memo holds each object it keys by ``id``, so no key can be reused while it lives."""
    processors = []
    for name in columns:
        column_type = table.c[name].type.dialect_impl(dialect)
        processors.append(column_type.bind_processor(dialect))
    memo: dict[tuple[int, int], tuple[Any, Any]] = {}
    out: list[tuple[Any, ...]] = []
    for row in rows:
        converted = []
        for position, name in enumerate(columns):
            value = row[name]
            process = processors[position]
            if process is None or value is None:
                converted.append(value)
                continue
            key = (position, id(value))
            found = memo.get(key)
            if found is None or found[0] is not value:
                found = (value, process(value))
                memo[key] = found
            converted.append(found[1])
        out.append(tuple(converted))
    return out


def _existing(session: Session, table: Table, column: str, keys: list[Any]) -> set[Any]:
    found: set[Any] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        query = table.select().with_only_columns(table.c[column]).where(table.c[column].in_(chunk))
        found |= set(session.scalars(query))
    return found
