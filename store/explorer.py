"""The Data Explorer's queries: header counts, filtered and sorted pages, task data, task detail.

Pure functions over a caller's :class:`~sqlalchemy.orm.Session` (they never commit), returning
frozen pydantic models; the CLI (``conveyor/cli/explorer.py``), bulk actions
(``conveyor/bulk/``) and the HTTP API share them.

Pages use **keyset pagination**, never ``OFFSET``: a page is "the next ``limit`` rows after the
last row of the previous one" in ``(sort value, workflow_id)`` order, so page 20,000 costs what
page 1 does (an index range scan), and a row is never shown twice or skipped because rows before
it were inserted or deleted meanwhile. The cursor that marks "after" is opaque to callers.

Speed on a million tasks comes from indexes that lead with ``pipeline_name`` and end with the
sort column and ``workflow_id`` (see ``store/models.py``). Filters on nodes, assignees and tags
are ``EXISTS`` sub-queries over indexed columns. The text filter is a case-insensitive substring
match over ``tasks.search_text``: it scans the pipeline's rows that pass the other filters (a
page stops as soon as it has ``limit`` matches), so it is fast for common words and slower for
rare ones on very large pipelines.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import ColumnElement, Select, bindparam, false, func, literal, select, tuple_
from sqlalchemy.orm import Session

from store.models import (
    EvaluationResultRow,
    LlmCallRow,
    NodeRow,
    PipelineRow,
    PipelineVersionRow,
    ReviewRow,
    SubmissionRow,
    TaskRow,
    TaskTagRow,
    TimelineEventRow,
)
from workflows.errors import Invalid, NotFound
from workflows.graph import FieldSource, FieldSpec, FieldType, NodeKind, Pipeline
from workflows.messages import NodeStatus, ReviewRecord, TaskStatus

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 5000

# Node states that mean "the task is waiting on this node" (as in tasks.current_nodes).
_CURRENT = (NodeStatus.AVAILABLE.value, NodeStatus.CLAIMED.value, NodeStatus.ESCALATED.value)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class InvalidCursor(Invalid, ValueError):
    """A cursor this module did not make, or one made for another sort order."""

    code = "invalid_cursor"


class TaskNotFound(NotFound, LookupError):
    """No task with that workflow id in the store."""

    code = "task_not_found"

    def __init__(self, workflow_id: str):
        super().__init__(
            f"no task {workflow_id!r} in the store; workflow ids look like 'pipeline/key' "
            "(list them with `explore tasks --pipeline P`)"
        )
        self.workflow_id = workflow_id


# --------------------------------------------------------------------------- header counts


class HeaderCounts(_Frozen):
    """How many tasks of a pipeline are in each of the seven states."""

    pipeline: str
    counts: dict[TaskStatus, int]
    """Every state, in the product's order, with 0 for states no task is in."""
    total: int

    def count(self, status: TaskStatus | str) -> int:
        return self.counts[TaskStatus(status)]

    def progress_text(self, status: TaskStatus | str = TaskStatus.FINISHED) -> str:
        """E.g. ``"1,204 / 5,000 finished"``."""
        state = TaskStatus(status)
        return f"{self.count(state):,} / {self.total:,} {state.value.lower()}"

    def finished_text(self) -> str:
        """``"1,204 / 5,000 finished"``: the header's headline."""
        return self.progress_text(TaskStatus.FINISHED)


def header_counts(session: Session, pipeline: str) -> HeaderCounts:
    """Task counts per state for ``pipeline`` (one ``GROUP BY`` over an index)."""
    rows = session.execute(
        select(TaskRow.status, func.count())
        .where(TaskRow.pipeline_name == pipeline)
        .group_by(TaskRow.status)
    )
    found = {status: int(n) for status, n in rows}
    counts = {state: found.get(state.value, 0) for state in TaskStatus}
    return HeaderCounts(pipeline=pipeline, counts=counts, total=sum(found.values()))


# --------------------------------------------------------------------------- filters and sorting


class TaskFilter(_Frozen):
    """Which tasks of a pipeline to show; every criterion given must hold (AND).

    ``node`` alone selects tasks waiting on that node (Available, Claimed or Escalated);
    ``node_status`` alone selects tasks with any node in that state; both together, e.g.
    ``node="check", node_status="Available"``. ``created_from`` is inclusive, ``created_to``
    exclusive; naive datetimes are taken as UTC. ``text`` is a case-insensitive substring of any
    value of the task (``%`` and ``_`` match themselves). ``workflow_ids`` is an explicit
    selection (an empty list selects nothing).
    """

    status: list[TaskStatus] = Field(default_factory=list)
    node: str | None = None
    node_status: NodeStatus | None = None
    assignee: str | None = None
    tag: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    text: str | None = None
    workflow_ids: list[str] | None = None

    @field_validator("created_from", "created_to")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            return value.replace(tzinfo=UTC)
        return value

    def is_explicit_only(self) -> bool:
        """True when the filter is just a list of workflow ids (nothing else narrows it)."""
        return self.workflow_ids is not None and self == TaskFilter(workflow_ids=self.workflow_ids)


class SortField(StrEnum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    FINISHED_AT = "finished_at"
    STATUS = "status"
    """Alphabetical by state name."""
    TASK_KEY = "task_key"


class Sort(_Frozen):
    """A sort order; ``workflow_id`` (in the same direction) breaks ties.

    Unfinished tasks have no ``finished_at``: they come after finished ones ascending and
    before them descending (NULL sorts as the largest value, as PostgreSQL's indexes do).
    """

    field: SortField = SortField.CREATED_AT
    descending: bool = False

    @classmethod
    def parse(cls, text: str) -> Sort:
        """``"created_at"`` (ascending) or ``"-created_at"`` (descending)."""
        name = text.strip()
        descending = name.startswith("-")
        name = name.lstrip("-+")
        try:
            return cls(field=SortField(name), descending=descending)
        except ValueError:
            choices = ", ".join(f.value for f in SortField)
            raise ValueError(
                f"cannot sort by {text!r}: use one of {choices} (prefix '-' for descending)"
            ) from None

    def __str__(self) -> str:
        return f"{'-' if self.descending else ''}{self.field.value}"


_SORT_COLUMNS: dict[SortField, Any] = {
    SortField.CREATED_AT: TaskRow.created_at,
    SortField.UPDATED_AT: TaskRow.updated_at,
    SortField.FINISHED_AT: TaskRow.finished_at,
    SortField.STATUS: TaskRow.status,
    SortField.TASK_KEY: TaskRow.task_key,
}
_NULLABLE = {SortField.FINISHED_AT}
# The "no value" clause of each nullable sort, one object: it marks the NULL segment.
_NULL_MARK: dict[SortField, ColumnElement[bool]] = {
    f: _SORT_COLUMNS[f].is_(None) for f in _NULLABLE
}
# Unique within a pipeline: it is its own tie-breaker (and the unique index serves the order).
_UNIQUE = {SortField.TASK_KEY}


def like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE ... ESCAPE '\\'``, with the wildcards in ``text`` escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def filter_clauses(pipeline: str, criteria: TaskFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses (over ``tasks``) selecting ``criteria``'s tasks of ``pipeline``."""
    clauses: list[ColumnElement[bool]] = [TaskRow.pipeline_name == pipeline]
    if criteria.status:
        clauses.append(TaskRow.status.in_([TaskStatus(s).value for s in criteria.status]))
    if criteria.node is not None or criteria.node_status is not None:
        nodes = select(NodeRow.workflow_id).where(
            NodeRow.workflow_id == TaskRow.workflow_id, NodeRow.pipeline_name == pipeline
        )
        if criteria.node is not None:
            nodes = nodes.where(NodeRow.node == criteria.node)
        if criteria.node_status is not None:
            nodes = nodes.where(NodeRow.status == NodeStatus(criteria.node_status).value)
        else:
            nodes = nodes.where(NodeRow.status.in_(_CURRENT))
        clauses.append(nodes.exists())
    if criteria.assignee is not None:
        clauses.append(
            select(NodeRow.workflow_id)
            .where(
                NodeRow.workflow_id == TaskRow.workflow_id, NodeRow.assignee == criteria.assignee
            )
            .exists()
        )
    if criteria.tag is not None:
        clauses.append(
            select(TaskTagRow.workflow_id)
            .where(TaskTagRow.workflow_id == TaskRow.workflow_id, TaskTagRow.tag == criteria.tag)
            .exists()
        )
    if criteria.created_from is not None:
        clauses.append(TaskRow.created_at >= criteria.created_from)
    if criteria.created_to is not None:
        clauses.append(TaskRow.created_at < criteria.created_to)
    if criteria.text and criteria.text.strip():
        # search_text is lower-cased in Python when written; lower the needle the same way.
        clauses.append(TaskRow.search_text.like(like_pattern(criteria.text.lower()), escape="\\"))
    if criteria.workflow_ids is not None:
        ids = list(dict.fromkeys(criteria.workflow_ids))
        clauses.append(TaskRow.workflow_id.in_(ids) if ids else false())
    return clauses


def count_tasks(session: Session, pipeline: str, criteria: TaskFilter | None = None) -> int:
    """How many tasks ``criteria`` selects (for progress totals)."""
    query = select(func.count()).select_from(TaskRow)
    query = query.where(*filter_clauses(pipeline, criteria or TaskFilter()))
    return int(session.execute(query).scalar_one())


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


# --------------------------------------------------------------------------- columns


class FieldColumn(_Frozen):
    """One ``node.field`` column of the Task Data tab."""

    name: str
    node: str
    field: str
    type: FieldType
    source: FieldSource


class DataColumns(_Frozen):
    """The Task Data tab's columns for a pipeline, in a stable order.

    ``nodes``: one status column per node (start and end excluded: they say nothing the task
    status does not). ``fields``: every field of every stored version of the pipeline, the
    current version first, in node order then field order (``static`` fields are fixed content,
    not task data, and are left out). ``evaluations``: ``eval.<criterion>.score`` and
    ``eval.<criterion>.passed`` for each criterion with results in the store.
    """

    nodes: list[str]
    fields: list[FieldColumn]
    evaluations: list[str]
    versions: list[str]
    """The pipeline's stored version hashes, current first."""

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


_PARSED: dict[str, Pipeline] = {}
_PARSED_MAX = 256


def parsed_version(content_hash: str, definition: dict[str, Any] | None = None) -> Pipeline | None:
    """The pipeline version ``content_hash``, parsed once per process (a version never
    changes); None when it is not cached and no ``definition`` is given."""
    pipeline = _PARSED.get(content_hash)
    if pipeline is None and definition is not None:
        pipeline = Pipeline.model_validate(definition)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[content_hash] = pipeline
    return pipeline


def pipeline_versions(session: Session, pipeline: str) -> list[tuple[str, Pipeline]]:
    """The stored versions of ``pipeline``: the current one first, then oldest to newest."""
    current = session.execute(
        select(PipelineRow.current_version).where(PipelineRow.name == pipeline)
    ).scalar_one_or_none()
    rows = list(
        session.execute(
            select(PipelineVersionRow.hash, PipelineVersionRow.definition)
            .where(PipelineVersionRow.pipeline_name == pipeline)
            .order_by(PipelineVersionRow.created_at, PipelineVersionRow.hash)
        )
    )
    rows.sort(key=lambda r: r[0] != current)  # stable: current first, the rest by age
    out = []
    for content_hash, definition in rows:
        parsed = parsed_version(content_hash, definition)
        assert parsed is not None
        out.append((content_hash, parsed))
    return out


def data_columns(session: Session, pipeline: str) -> DataColumns:
    """The columns of the Task Data tab (and of exports) for ``pipeline``."""
    versions = pipeline_versions(session, pipeline)
    nodes: dict[str, None] = {}
    fields: dict[str, FieldColumn] = {}
    for _, definition in versions:
        for spec in definition.nodes:
            if spec.kind not in (NodeKind.START, NodeKind.END):
                nodes.setdefault(spec.name)
            for field in spec.fields:
                if field.source == FieldSource.STATIC:
                    continue
                name = f"{spec.name}.{field.name}"
                fields.setdefault(
                    name,
                    FieldColumn(
                        name=name,
                        node=spec.name,
                        field=field.name,
                        type=field.type,
                        source=field.source,
                    ),
                )
    criteria = session.scalars(
        select(EvaluationResultRow.criterion)
        .where(EvaluationResultRow.pipeline_name == pipeline)
        .distinct()
        .order_by(EvaluationResultRow.criterion)
    )
    evaluations = [f"eval.{c}.{part}" for c in criteria for part in ("score", "passed")]
    return DataColumns(
        nodes=list(nodes),
        fields=list(fields.values()),
        evaluations=evaluations,
        versions=[h for h, _ in versions],
    )


# --------------------------------------------------------------------------- pages


class TaskSummary(_Frozen):
    """One row of the Task Metadata tab (and, with ``values``, of the Task Data tab)."""

    workflow_id: str
    task_key: str
    pipeline_hash: str
    status: TaskStatus
    hold_reason: str | None
    current_nodes: list[str]
    assignees: list[str]
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    node_statuses: dict[str, NodeStatus]
    """Every node instance of the task by node name."""
    values: dict[str, Any] | None = None
    """Task Data: ``node.field`` and ``eval.<criterion>.score|passed`` -> value, for the
    columns that have one (None unless the page was asked for data)."""


class Page(_Frozen):
    """One keyset page: rows in sort order and the cursor of the next page (None at the end)."""

    pipeline: str
    sort: Sort
    columns: DataColumns
    rows: list[TaskSummary]
    next_cursor: str | None


def page(
    session: Session,
    pipeline: str,
    criteria: TaskFilter | None = None,
    sort: Sort | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    after: str | None = None,
    *,
    with_data: bool = False,
    columns: DataColumns | None = None,
) -> Page:
    """A page of ``pipeline``'s tasks matching ``criteria`` in ``sort`` order.

    Three queries whatever the page size: the tasks, their node instances, and (with
    ``with_data``) their evaluation results.

    Args:
        after: the ``next_cursor`` of the previous page; None for the first page. Keep the
            filter and the sort unchanged while paging.
        with_data: also fill each row's ``values`` (the Task Data tab).
        columns: reuse columns computed earlier (exports page many times).

    Raises:
        InvalidCursor: ``after`` is not a cursor for this sort.
    """
    criteria = criteria or TaskFilter()
    sort = sort or Sort()
    columns = columns or data_columns(session, pipeline)
    wanted: list[Any] = [
        TaskRow.workflow_id,
        TaskRow.task_key,
        TaskRow.pipeline_hash,
        TaskRow.status,
        TaskRow.hold_reason,
        TaskRow.current_nodes,
        TaskRow.assignees,
        TaskRow.tags,
        TaskRow.created_at,
        TaskRow.updated_at,
        TaskRow.finished_at,
    ]
    if with_data:
        wanted.append(TaskRow.data)
    rows = _fetch(session, select(*wanted), pipeline, criteria, sort, limit, after)
    tasks = [r._asdict() for r in rows]
    more = len(tasks) > limit
    tasks = tasks[:limit]
    ids = [t["workflow_id"] for t in tasks]

    statuses: dict[str, dict[str, NodeStatus]] = {i: {} for i in ids}
    node_values: dict[str, dict[str, dict[str, Any]]] = {i: {} for i in ids}
    if ids:
        node_cols: list[Any] = [NodeRow.workflow_id, NodeRow.node, NodeRow.status]
        if with_data:
            node_cols.append(NodeRow.values)
        for row in session.execute(select(*node_cols).where(NodeRow.workflow_id.in_(ids))):
            statuses[row[0]][row[1]] = NodeStatus(row[2])
            if with_data:
                node_values[row[0]][row[1]] = row[3] or {}
    evaluations = (
        _latest_evaluations(session, pipeline, ids)
        if with_data and ids and columns.evaluations
        else {}
    )

    out: list[TaskSummary] = []
    for task in tasks:
        wid = task["workflow_id"]
        values = None
        if with_data:
            values = _task_values(
                columns, task["data"] or {}, node_values[wid], evaluations.get(wid, {})
            )
        out.append(
            TaskSummary(
                workflow_id=wid,
                task_key=task["task_key"],
                pipeline_hash=task["pipeline_hash"],
                status=TaskStatus(task["status"]),
                hold_reason=task["hold_reason"],
                current_nodes=task["current_nodes"] or [],
                assignees=task["assignees"] or [],
                tags=task["tags"] or [],
                created_at=task["created_at"],
                updated_at=task["updated_at"],
                finished_at=task["finished_at"],
                node_statuses=statuses[wid],
                values=values,
            )
        )
    cursor = None
    if more:
        last = out[-1]
        cursor = encode_cursor(sort, getattr(last, sort.field.value), last.workflow_id)
    return Page(pipeline=pipeline, sort=sort, columns=columns, rows=out, next_cursor=cursor)


def _latest_evaluations(
    session: Session, pipeline: str, ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """``workflow_id -> {eval.<criterion>.score|passed: value}``; the latest result wins."""
    out: dict[str, dict[str, Any]] = {}
    rows = session.execute(
        select(
            EvaluationResultRow.workflow_id,
            EvaluationResultRow.criterion,
            EvaluationResultRow.score,
            EvaluationResultRow.passed,
        )
        .where(
            EvaluationResultRow.workflow_id.in_(ids),
            EvaluationResultRow.pipeline_name == pipeline,
        )
        .order_by(EvaluationResultRow.at, EvaluationResultRow.id)
    )
    for wid, criterion, score, passed in rows:
        found = out.setdefault(wid, {})
        found[f"eval.{criterion}.score"] = score
        found[f"eval.{criterion}.passed"] = passed
    return out


def _task_values(
    columns: DataColumns,
    seed: dict[str, Any],
    nodes: dict[str, dict[str, Any]],
    evaluations: dict[str, Any],
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for column in columns.fields:
        if column.source == FieldSource.PREDEFINED:
            if column.field in seed:
                values[column.name] = seed[column.field]
        else:
            submitted = nodes.get(column.node, {})
            if column.field in submitted:
                values[column.name] = submitted[column.field]
    for name in columns.evaluations:
        if name in evaluations:
            values[name] = evaluations[name]
    return values


# --------------------------------------------------------------------------- task detail


BULK_SOURCE = "bulk"
"""``evaluation_results.source`` of results written by a bulk evaluation."""


class TimelineEntry(_Frozen):
    """One entry of the Timeline view: a task event, or a bulk evaluation's result."""

    seq: int
    """The task's event number; 0 for a bulk evaluation's result (not a task event)."""
    at: datetime
    kind: str
    actor: str
    node: str | None
    message: str
    data: dict[str, Any]


class SubmissionEntry(_Frozen):
    """One attempt at a node's form: ``draft``, ``submit``, ``llm`` or ``edit``."""

    seq: int
    kind: str
    actor: str
    attempt: int | None
    values: dict[str, Any]
    at: datetime


class ReviewEntry(_Frozen):
    seq: int
    reviewer: str
    verdict: str
    reason: str | None
    values: dict[str, Any]
    at: datetime


class EvaluationEntry(_Frozen):
    criterion: str
    criterion_version: str
    target_fields: list[str]
    score: float | None
    passed: bool | None
    reasoning: str | None
    error: str | None
    cost_usd: float | None
    latency_ms: float | None
    at: datetime


class LlmCallEntry(_Frozen):
    model: str
    fields: list[str]
    attempt: int
    outcome: str
    error_class: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    latency_ms: float
    at: datetime


class NodeDetail(_Frozen):
    """One node of a task in the Nodes view: its state, work, reviews and field specs."""

    name: str
    kind: NodeKind | None
    """None if the pinned version is not in the store."""
    title: str | None
    status: NodeStatus
    assignee: str | None
    claimed_at: datetime | None
    expires_at: datetime | None
    values: dict[str, Any]
    draft: dict[str, Any]
    submitted_by: str | None
    submitted_at: datetime | None
    attempts: int
    passes: int
    failures: int
    total_failures: int
    rework_reason: str | None
    last_review: ReviewRecord | None
    error: str | None
    fields: list[FieldSpec]
    """The node's field specs in the task's pinned pipeline version."""
    submissions: list[SubmissionEntry]
    reviews: list[ReviewEntry]
    evaluations: list[EvaluationEntry]
    llm_calls: list[LlmCallEntry]


class TaskDetail(_Frozen):
    """Everything the store knows about one task: the Nodes and Timeline views."""

    workflow_id: str
    task_key: str
    pipeline: str
    pipeline_hash: str
    status: TaskStatus
    hold_reason: str | None
    data: dict[str, Any]
    tags: list[str]
    current_nodes: list[str]
    assignees: list[str]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    nodes: list[NodeDetail]
    """In the pipeline's node order."""
    timeline: list[TimelineEntry]
    """Every event in ``seq`` order, with bulk evaluation results (``evaluated``, seq 0)
    merged in by time."""


def bulk_evaluation_entry(row: EvaluationResultRow) -> TimelineEntry:
    """A bulk evaluation's result as an ``evaluated`` timeline entry, worded like the task's
    own ``evaluated`` events (its data is the evaluation record, with ``source: bulk``)."""
    if row.error:
        verdict = "error"
    elif row.passed is not None:
        verdict = "passed" if row.passed else "failed"
    else:
        verdict = f"scored {row.score if row.score is not None else row.label}"
    message = f"{row.criterion} on {row.node}: {verdict}" + (f" ({row.error})" if row.error else "")
    return TimelineEntry(
        seq=0,
        at=row.at,
        kind="evaluated",
        actor=row.actor or "system",
        node=row.node,
        message=f"{message} [bulk evaluation]",
        data={
            "criterion": row.criterion,
            "version": row.criterion_version,
            "kind": row.kind,
            "evaluator": row.evaluator,
            "mode": row.mode,
            "node": row.node,
            "fields": list(row.target_fields or []),
            "score": row.score,
            "passed": row.passed,
            "label": row.label,
            "reasoning": row.reasoning,
            "actor": row.actor,
            "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens,
            "cost_usd": row.cost_usd,
            "latency_ms": row.latency_ms,
            "error": row.error,
            "at": row.at.isoformat(),
            "seq": 0,
            "source": row.source,
        },
    )


def task_detail(session: Session, workflow_id: str) -> TaskDetail:
    """The Nodes and Timeline views of one task.

    Raises:
        TaskNotFound: the store has no such task.
    """
    task = session.get(TaskRow, workflow_id, populate_existing=True)
    if task is None:
        raise TaskNotFound(workflow_id)
    definition = session.execute(
        select(PipelineVersionRow.definition).where(PipelineVersionRow.hash == task.pipeline_hash)
    ).scalar_one_or_none()
    specs = Pipeline.model_validate(definition).node_map() if definition is not None else {}
    order = {name: i for i, name in enumerate(specs)}

    def by_node(rows: Iterable[Any], build: Any) -> dict[str, list[Any]]:
        grouped: dict[str, list[Any]] = {}
        for row in rows:
            grouped.setdefault(row.node, []).append(build(row))
        return grouped

    submissions = by_node(
        session.scalars(
            select(SubmissionRow)
            .where(SubmissionRow.workflow_id == workflow_id)
            .order_by(SubmissionRow.seq)
        ),
        lambda r: SubmissionEntry(
            seq=r.seq, kind=r.kind, actor=r.actor, attempt=r.attempt, values=r.values, at=r.at
        ),
    )
    reviews = by_node(
        session.scalars(
            select(ReviewRow).where(ReviewRow.workflow_id == workflow_id).order_by(ReviewRow.seq)
        ),
        lambda r: ReviewEntry(
            seq=r.seq,
            reviewer=r.reviewer,
            verdict=r.verdict,
            reason=r.reason,
            values=r.values,
            at=r.at,
        ),
    )
    evaluations = by_node(
        session.scalars(
            select(EvaluationResultRow)
            .where(EvaluationResultRow.workflow_id == workflow_id)
            .order_by(EvaluationResultRow.at, EvaluationResultRow.id)
        ),
        lambda r: EvaluationEntry(
            criterion=r.criterion,
            criterion_version=r.criterion_version,
            target_fields=r.target_fields,
            score=r.score,
            passed=r.passed,
            reasoning=r.reasoning,
            error=r.error,
            cost_usd=r.cost_usd,
            latency_ms=r.latency_ms,
            at=r.at,
        ),
    )
    llm_calls = by_node(
        session.scalars(
            select(LlmCallRow)
            .where(LlmCallRow.workflow_id == workflow_id)
            .order_by(LlmCallRow.at, LlmCallRow.id)
        ),
        lambda r: LlmCallEntry(
            model=r.model,
            fields=r.fields,
            attempt=r.attempt,
            outcome=r.outcome,
            error_class=r.error_class,
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            cost_usd=r.cost_usd,
            latency_ms=r.latency_ms,
            at=r.at,
        ),
    )
    node_rows = sorted(
        session.scalars(
            select(NodeRow)
            .where(NodeRow.workflow_id == workflow_id)
            .execution_options(populate_existing=True)
        ),
        key=lambda n: (order.get(n.node, len(order)), n.node),
    )
    nodes = []
    for row in node_rows:
        spec = specs.get(row.node)
        nodes.append(
            NodeDetail(
                name=row.node,
                kind=spec.kind if spec else None,
                title=spec.title if spec else None,
                status=NodeStatus(row.status),
                assignee=row.assignee,
                claimed_at=row.claimed_at,
                expires_at=row.expires_at,
                values=row.values or {},
                draft=row.draft or {},
                submitted_by=row.submitted_by,
                submitted_at=row.submitted_at,
                attempts=row.attempts,
                passes=row.passes,
                failures=row.failures,
                total_failures=row.total_failures,
                rework_reason=row.rework_reason,
                last_review=(
                    ReviewRecord.model_validate(row.last_review) if row.last_review else None
                ),
                error=row.error,
                fields=list(spec.fields) if spec else [],
                submissions=submissions.get(row.node, []),
                reviews=reviews.get(row.node, []),
                evaluations=evaluations.get(row.node, []),
                llm_calls=llm_calls.get(row.node, []),
            )
        )
    events = [
        TimelineEntry(
            seq=e.seq,
            at=e.at,
            kind=e.kind,
            actor=e.actor,
            node=e.node,
            message=e.message,
            data=e.data or {},
        )
        for e in session.scalars(
            select(TimelineEventRow)
            .where(TimelineEventRow.workflow_id == workflow_id)
            .order_by(TimelineEventRow.seq)
        )
    ]
    bulk = [
        bulk_evaluation_entry(r)
        for r in session.scalars(
            select(EvaluationResultRow)
            .where(
                EvaluationResultRow.workflow_id == workflow_id,
                EvaluationResultRow.source == BULK_SOURCE,
            )
            .order_by(EvaluationResultRow.at, EvaluationResultRow.id)
        )
    ]
    # Events are in seq order, which is time order; a bulk result goes after the events of
    # its instant (heapq.merge is stable: ties keep the first iterable's items first).
    timeline = list(heapq.merge(events, bulk, key=lambda e: e.at))
    return TaskDetail(
        workflow_id=task.workflow_id,
        task_key=task.task_key,
        pipeline=task.pipeline_name,
        pipeline_hash=task.pipeline_hash,
        status=TaskStatus(task.status),
        hold_reason=task.hold_reason,
        data=task.data or {},
        tags=task.tags or [],
        current_nodes=task.current_nodes or [],
        assignees=task.assignees or [],
        created_at=task.created_at,
        updated_at=task.updated_at,
        finished_at=task.finished_at,
        nodes=nodes,
        timeline=timeline,
    )
