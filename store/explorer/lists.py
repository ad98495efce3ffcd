"""The task lists: header counts, the Task Data columns, and pages of tasks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.explorer.base import DEFAULT_PAGE_SIZE, _Frozen
from store.explorer.cursors import _fetch, encode_cursor
from store.explorer.filters import Sort, TaskFilter, agreement_of
from store.explorer.versions import pipeline_versions
from store.models import EvaluationResultRow, NodeRow, TaskRow
from store.tasks import status_counts
from workflows.graph import FieldSource, FieldType, NodeKind
from workflows.messages import NodeStatus, TaskStatus

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
    found = status_counts(session, pipeline)
    counts = {state: found.get(state.value, 0) for state in TaskStatus}
    return HeaderCounts(pipeline=pipeline, counts=counts, total=sum(found.values()))


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
    consensus: list[str] = []
    """The consensus nodes: each item's agreement on them is a column of both tabs."""

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


def data_columns(session: Session, pipeline: str) -> DataColumns:
    """The columns of the Task Data tab (and of exports) for ``pipeline``."""
    versions = pipeline_versions(session, pipeline)
    nodes: dict[str, None] = {}
    consensus: dict[str, None] = {}
    fields: dict[str, FieldColumn] = {}
    for _, definition in versions:
        for spec in definition.nodes:
            if spec.kind not in (NodeKind.START, NodeKind.END):
                nodes.setdefault(spec.name)
            if spec.consensus is not None:
                consensus.setdefault(spec.name)
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
        consensus=list(consensus),
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
    agreements: dict[str, float] = {}
    """Consensus nodes whose answers were merged: the item's agreement (0..1) by node."""


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
    agreements: dict[str, dict[str, float]] = {i: {} for i in ids}
    if ids:
        node_cols: list[Any] = [NodeRow.workflow_id, NodeRow.node, NodeRow.status]
        if columns.consensus:
            node_cols.append(agreement_of(NodeRow.consensus))
        if with_data:
            node_cols.append(NodeRow.values)
        for row in session.execute(select(*node_cols).where(NodeRow.workflow_id.in_(ids))):
            statuses[row[0]][row[1]] = NodeStatus(row[2])
            if columns.consensus and row[3] is not None:
                agreements[row[0]][row[1]] = float(row[3])
            if with_data:
                node_values[row[0]][row[1]] = row[-1] or {}
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
                agreements=agreements[wid],
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
