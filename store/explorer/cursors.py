"""Keyset pagination: opaque cursors, the index ranges after one, and pages of workflow ids."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, literal, select, tuple_
from sqlalchemy.orm import Session

from store.explorer.base import MAX_PAGE_SIZE, InvalidCursor
from store.explorer.filters import (
    _NULL_MARK,
    _NULLABLE,
    _SORT_COLUMNS,
    _UNIQUE,
    Sort,
    SortField,
    TaskFilter,
    filter_clauses,
)
from store.models import TaskRow
from workflows.messages import TaskStatus

# --------------------------------------------------------------------------- cursors


def encode_cursor(sort: Sort, value: Any, workflow_id: str) -> str:
    """The opaque cursor after a row: base64 of JSON ``{sort, value, workflow_id}``."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC).isoformat()
    raw = json.dumps({"s": str(sort), "v": value, "w": workflow_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> tuple[Any, str]:
    """``(sort value, workflow_id)`` of a cursor made for ``sort``.

    Raises:
        InvalidCursor: not a cursor of this module, or made for another sort order.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = json.loads(base64.urlsafe_b64decode(padded.encode()))
        made_for, value, workflow_id = raw["s"], raw["v"], raw["w"]
        if not isinstance(workflow_id, str):
            raise TypeError("workflow id")
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise InvalidCursor(
            "the cursor is not one the explorer made; start from the first page (omit --after)"
        ) from None
    if made_for != str(sort):
        raise InvalidCursor(
            f"the cursor was made for sort {made_for!r}, not {str(sort)!r}; keep the sort "
            "unchanged while paging, or start from the first page"
        )
    if (value is None and sort.field not in _NULLABLE) or not isinstance(value, str | None):
        raise InvalidCursor(
            f"the cursor's {sort.field.value} value is not one the explorer made; start from "
            "the first page"
        )
    if value is not None and sort.field in (
        SortField.CREATED_AT,
        SortField.UPDATED_AT,
        SortField.FINISHED_AT,
    ):
        try:
            value = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise InvalidCursor("the cursor's timestamp is unreadable") from None
    return value, workflow_id


_Segment = tuple[list[ColumnElement[bool]], list[Any]]
"""WHERE clauses and ORDER BY of one index range scan."""


def _segments(
    sort: Sort, after: tuple[Any, str] | None, statuses: Sequence[TaskStatus] = ()
) -> list[_Segment]:
    """The rows after the cursor, as index ranges read one after the other.

    Sorted by status with a filter on several states, each state is a range of its own
    (``ix_tasks_pipeline_status_workflow``): PostgreSQL does not keep an index's order for an
    ``IN`` list, so one range would walk every state in between to find the wanted ones.

    A non-null sort column is one range: ``(value, workflow_id) > (v, w)`` (a row-value
    comparison PostgreSQL turns into one index condition). The nullable ``finished_at`` sorts
    NULL last ascending and first descending (as PostgreSQL's indexes store it); an ``OR`` of
    "after the cursor" and "NULL" would make every page rescan from the start of the index, so
    the finished and the unfinished rows are two ranges instead, read in order.
    """
    column = _SORT_COLUMNS[sort.field]
    wid = TaskRow.workflow_id
    desc = sort.descending
    by_value = [column.desc(), wid.desc()] if desc else [column.asc(), wid.asc()]
    if sort.field in _UNIQUE:  # its own tie-breaker
        by_value = by_value[:1]
    wanted = sorted({TaskStatus(s).value for s in statuses}, reverse=desc)
    if sort.field == SortField.STATUS and len(wanted) > 1:
        return _status_segments(wanted, after, desc)
    if sort.field not in _NULLABLE:
        if after is None:
            return [([], by_value)]
        value, workflow_id = after
        if value is None:
            raise InvalidCursor(f"the cursor has no {sort.field.value} value")
        bound = literal(value, column.type)
        if sort.field in _UNIQUE:
            return [([column < bound if desc else column > bound], by_value)]
        pair, bound_pair = tuple_(column, wid), tuple_(bound, literal(workflow_id, wid.type))
        return [([pair < bound_pair if desc else pair > bound_pair], by_value)]

    nulls_by_id = [wid.desc() if desc else wid.asc()]
    present: _Segment = ([column.is_not(None)], by_value)
    missing: _Segment = ([_NULL_MARK[sort.field]], nulls_by_id)
    if after is None:
        return [missing, present] if desc else [present, missing]
    value, workflow_id = after
    after_wid = literal(workflow_id, wid.type)
    if value is None:
        rest_of_nulls = [_NULL_MARK[sort.field], wid < after_wid if desc else wid > after_wid]
        return [(rest_of_nulls, nulls_by_id), present] if desc else [(rest_of_nulls, nulls_by_id)]
    pair, bound_pair = tuple_(column, wid), tuple_(literal(value, column.type), after_wid)
    if desc:
        return [([pair < bound_pair], by_value)]
    return [([pair > bound_pair], by_value), missing]


def _status_segments(
    wanted: list[str], after: tuple[Any, str] | None, desc: bool
) -> list[_Segment]:
    """One range per state in sort order (status names order the same in every collation:
    they differ at a letter before anything else), after the cursor."""
    wid = TaskRow.workflow_id
    by_id = [wid.desc() if desc else wid.asc()]
    if after is None:
        return [([TaskRow.status == v], by_id) for v in wanted]
    value, workflow_id = after
    if value is None:
        raise InvalidCursor("the cursor has no status value")
    bound = literal(workflow_id, wid.type)
    rest = [v for v in wanted if (v < value if desc else v > value)]
    current = [TaskRow.status == value, wid < bound if desc else wid > bound]
    return ([(current, by_id)] if value in wanted else []) + [
        ([TaskRow.status == v], by_id) for v in rest
    ]


def _fetch(
    session: Session,
    query: Select[Any],
    pipeline: str,
    criteria: TaskFilter,
    sort: Sort,
    limit: int,
    after: str | None,
) -> list[Any]:
    """Up to ``limit + 1`` rows of ``query`` (a SELECT from ``tasks``) matching ``criteria``
    after the cursor, in sort order (the extra row says whether there is a next page)."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, not {limit}")
    query = query.where(*filter_clauses(pipeline, criteria))
    position = decode_cursor(after, sort) if after is not None else None
    rows: list[Any] = []
    for where, order in _segments(sort, position, criteria.status):
        wanted = limit + 1 - len(rows)
        if wanted <= 0:
            break
        nulls = sort.field in _NULLABLE and where[0] is _NULL_MARK[sort.field]
        if nulls and criteria.status and not _unset_exists(session, pipeline, sort, criteria):
            continue
        rows += session.execute(query.where(*where).order_by(*order).limit(wanted)).all()
    return rows


def _unset_exists(session: Session, pipeline: str, sort: Sort, criteria: TaskFilter) -> bool:
    """Whether any task in the filter's states lacks the sort value (an unfinished one).

    The segment of NULL sort values is read in ``workflow_id`` order: with a status filter
    that no NULL row passes (``status = Finished`` sorted by finished time) the planner would
    walk every task to find none. This answers from the partial index
    ``ix_tasks_pipeline_unfinished`` instead: for each state, the first indexed state at or
    after it (``ORDER BY status``, so the planner takes the index; one descent each).
    """
    column = _SORT_COLUMNS[sort.field]
    probe = (
        select(TaskRow.status)
        .where(
            TaskRow.pipeline_name == pipeline,
            column.is_(None),
            TaskRow.status >= bindparam("status", type_=TaskRow.status.type),
        )
        .order_by(TaskRow.status)
        .limit(1)
    )
    for status in dict.fromkeys(TaskStatus(s).value for s in criteria.status):
        if session.execute(probe, {"status": status}).scalar() == status:
            return True
    return False


def page_ids(
    session: Session,
    pipeline: str,
    criteria: TaskFilter | None = None,
    sort: Sort | None = None,
    *,
    limit: int = 1000,
    after: str | None = None,
) -> tuple[list[str], str | None]:
    """Just the workflow ids of a page, and the next cursor (for bulk actions)."""
    sort = sort or Sort()
    column = _SORT_COLUMNS[sort.field]
    rows = _fetch(
        session,
        select(TaskRow.workflow_id, column),
        pipeline,
        criteria or TaskFilter(),
        sort,
        limit,
        after,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(sort, rows[-1][1], rows[-1][0]) if more else None
    return [r[0] for r in rows], cursor
