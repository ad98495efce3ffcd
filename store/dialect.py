"""Idempotent writes that work the same on SQLite and PostgreSQL (``INSERT ... ON CONFLICT``).

These are the primitives of the projection: every row a workflow writes is either inserted at
most once (:func:`upsert_ignore`) or replaced only by a newer snapshot (:func:`upsert_newer`), so
retried, replayed and reordered writes can never move the store backwards. Neither commits.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, FromClause, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

Values = Mapping[str, Any] | Sequence[Mapping[str, Any]]
"""One row, or several rows with the same keys."""

SUPPORTED_DIALECTS = ("sqlite", "postgresql")


def dialect_insert(session: Session, table: FromClause | type[Any]) -> Any:
    """The dialect's own ``insert(table)`` (it has ``on_conflict_do_*``) for the session's bind.

    ``table`` is a :class:`~sqlalchemy.Table` or a mapped class (its table is used, so the
    statement is plain Core: column names, no ORM bulk semantics).
    """
    return _insert_for(session.get_bind().dialect.name, _table(table))


def _insert_for(name: str, target: Table) -> Any:
    if name == "postgresql":
        return postgresql.insert(target)
    if name == "sqlite":
        return sqlite.insert(target)
    raise NotImplementedError(
        f"the store supports {' and '.join(SUPPORTED_DIALECTS)}, not {name!r}; "
        "set CONVEYOR_DATABASE_URL to a sqlite:// or postgresql:// URL"
    )


def upsert_ignore(session: Session, table: FromClause | type[Any], values: Values) -> int:
    """``INSERT ... ON CONFLICT DO NOTHING``: write rows that are not there yet.

    Any unique constraint counts as the conflict (primary key or other). Concurrent callers
    inserting the same key are safe: one inserts, the others do nothing.

    Returns:
        How many rows were inserted (0 when every row already existed).
    """
    rows = _rows(values)
    if not rows:
        return 0
    stmt = _ignore_statement(session.get_bind().dialect.name, _table(table))
    return _execute_counting(session, stmt, rows)


def upsert_newer(
    session: Session,
    table: FromClause | type[Any],
    values: Values,
    key_cols: Sequence[str],
    seq_col: str = "seq",
    *,
    insert_only: Collection[str] = (),
) -> int:
    """Insert rows, or overwrite the stored ones only where ``seq`` is strictly newer.

    ``INSERT ... ON CONFLICT (key_cols) DO UPDATE SET col = excluded.col, ...
    WHERE table.seq < excluded.seq``. Every non-key column given in ``values`` is overwritten
    (except those in ``insert_only``, e.g. a creation time); columns not given keep their stored
    value. A row with an older or equal ``seq`` changes nothing, so retries, replays and
    out-of-order deliveries are harmless.

    Args:
        values: one row, or several rows with the same keys (written one after another, in
            order, by the same statement).
        key_cols: the columns of a primary key or unique constraint (the conflict target).
        seq_col: the monotonically increasing version column.
        insert_only: non-key columns written on insert and never updated.

    Returns:
        How many rows were inserted or updated (0 when every row was stale).
    """
    rows = _rows(values)
    if not rows:
        return 0
    target = _table(table)
    columns = list(rows[0])
    missing = [c for c in (*key_cols, seq_col) if c not in columns]
    if missing:
        raise ValueError(f"upsert_newer into {target.name}: values lack {', '.join(missing)}")
    unknown = [c for c in columns if c not in target.c]
    if unknown:
        raise ValueError(f"upsert_newer into {target.name}: no such columns {', '.join(unknown)}")
    stmt = _newer_statement(
        session.get_bind().dialect.name,
        target,
        tuple(columns),
        tuple(key_cols),
        seq_col,
        frozenset(insert_only),
    )
    return _execute_counting(session, stmt, rows)


# The statements are built once per shape and executed with each row as its parameters: the
# SQL is then compiled once and found in SQLAlchemy's cache afterwards. (Building a new
# ``insert().values(row)`` per row made SQLAlchemy compile every statement again: most of a
# projection batch's time on SQLite.) Statements are immutable, so threads share them.


@functools.lru_cache(maxsize=512)
def _ignore_statement(dialect: str, target: Table) -> Any:
    return _insert_for(dialect, target).on_conflict_do_nothing()


@functools.lru_cache(maxsize=512)
def _newer_statement(
    dialect: str,
    target: Table,
    columns: tuple[str, ...],
    key_cols: tuple[str, ...],
    seq_col: str,
    insert_only: frozenset[str],
) -> Any:
    stmt = _insert_for(dialect, target)
    skip = {*key_cols, *insert_only}
    return stmt.on_conflict_do_update(
        index_elements=list(key_cols),
        set_={c: stmt.excluded[c] for c in columns if c not in skip},
        where=target.c[seq_col] < stmt.excluded[seq_col],
    )


def _table(table: FromClause | type[Any]) -> Table:
    target = getattr(table, "__table__", table)
    if not isinstance(target, Table):
        raise TypeError(f"expected a Table or a mapped class, got {table!r}")
    return target


def _rows(values: Values) -> list[Mapping[str, Any]]:
    return [values] if isinstance(values, Mapping) else list(values)


def _execute_counting(session: Session, stmt: Any, rows: list[Mapping[str, Any]]) -> int:
    # One execution per row: each row's own rowcount is reliable on both drivers, where an
    # executemany's is not. SQLAlchemy keeps an INSERT's rowcount only when asked; the drivers
    # then report the rows actually written: ignored conflicts and stale (WHERE-refused)
    # updates count 0.
    total = 0
    for row in rows:
        result = session.execute(stmt, row, execution_options={"preserve_rowcount": True})
        count = cast(CursorResult[Any], result).rowcount
        if count < 0:
            raise RuntimeError(f"the {session.get_bind().dialect.name} driver gave no row count")
        total += count
    return total
