"""Which tasks, in which order: :class:`TaskFilter`, :class:`Sort` and the WHERE clauses."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator
from sqlalchemy import ColumnElement, false, func, select
from sqlalchemy.orm import Session

from store.explorer.base import _Frozen
from store.models import NodeRow, TaskRow, TaskTagRow
from workflows.messages import NodeStatus, TaskStatus

# Node states that mean "the task is waiting on this node" (as in tasks.current_nodes).
_CURRENT = (NodeStatus.AVAILABLE.value, NodeStatus.CLAIMED.value, NodeStatus.ESCALATED.value)


# --------------------------------------------------------------------------- filters and sorting


class TaskFilter(_Frozen):
    """Which tasks of a pipeline to show; every criterion given must hold (AND).

    ``node`` alone selects tasks waiting on that node (Available, Claimed or Escalated);
    ``node_status`` alone selects tasks with any node in that state; both together, e.g.
    ``node="check", node_status="Available"``. ``created_from`` is inclusive, ``created_to``
    exclusive; naive datetimes are taken as UTC. ``text`` is a case-insensitive substring of any
    value of the task (``%`` and ``_`` match themselves). ``agreement_below`` selects tasks with a
    consensus node whose merged answer's agreement is below it (0..1). ``workflow_ids`` is an
    explicit selection (an empty list selects nothing).
    """

    status: list[TaskStatus] = Field(default_factory=list)
    node: str | None = None
    node_status: NodeStatus | None = None
    assignee: str | None = None
    tag: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    text: str | None = None
    agreement_below: float | None = Field(default=None, ge=0, le=1)
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


def agreement_of(consensus: Any) -> ColumnElement[float]:
    """A consensus node's merged agreement (``consensus.result.agreement`` of its row; NULL
    before its answers are merged), as a number SQLite and PostgreSQL both compare."""
    return consensus[("result", "agreement")].as_float()


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
    if criteria.agreement_below is not None:
        clauses.append(
            select(NodeRow.workflow_id)
            .where(
                NodeRow.workflow_id == TaskRow.workflow_id,
                agreement_of(NodeRow.consensus) < criteria.agreement_below,
            )
            .exists()
        )
    if criteria.workflow_ids is not None:
        ids = list(dict.fromkeys(criteria.workflow_ids))
        clauses.append(TaskRow.workflow_id.in_(ids) if ids else false())
    return clauses


def count_tasks(session: Session, pipeline: str, criteria: TaskFilter | None = None) -> int:
    """How many tasks ``criteria`` selects (for progress totals)."""
    query = select(func.count()).select_from(TaskRow)
    query = query.where(*filter_clauses(pipeline, criteria or TaskFilter()))
    return int(session.execute(query).scalar_one())
