"""Lazy start: tasks whose row is written at creation and whose workflow starts on first use.

A task created lazily has a complete row from the start — the snapshot its workflow would
write on starting (seed data, pinned version, its first nodes Available) — with ``start`` set to
``untouched``. It is workable from the store at once; its workflow starts on the first command
that needs it (:func:`begin_start` hands out the start input and marks the row ``starting``),
and its first newer snapshot clears ``start``: from then on the workflow is the truth, as for
every task started at creation.

A task that needs its workflow at once (a model call first) is written the same way but
``queued``: the background starter (``conveyor.starting.background_starts``) takes it
(:func:`take_queued`), and sends again the starts of rows left ``starting``
(:func:`starting_page`).

While untouched or queued, the row is the task: a pipeline's pause and resume change the status
of those rows in one statement (:func:`hold_untouched`); the start input carries the status, so
a task paused before its start starts Paused.

Like the other store functions these take a session and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from store.bulk_rows import insert_new_rows
from store.explorer.versions import parsed_version
from store.models import NodeRow, PipelineVersionRow, TaskRow, TimelineEventRow
from store.projection import event_values, node_values, task_values
from store.repositories import ensure_pipeline_version
from store.tasks import SweepAction
from workflows.graph import Pipeline
from workflows.messages import ProjectionBatch, TaskInput, TaskStatus

__all__ = [
    "NOT_STARTED",
    "QUEUED",
    "STARTING",
    "UNTOUCHED",
    "UntouchedRows",
    "begin_start",
    "hold_untouched",
    "insert_untouched",
    "not_started",
    "requeue",
    "starting_page",
    "take_queued",
    "untouched_ids",
    "untouched_rows",
]

UNTOUCHED = "untouched"
"""``tasks.start`` of a task whose workflow does not exist yet."""
QUEUED = "queued"
"""``tasks.start`` of a task whose workflow does not exist yet and must start without waiting
for a command (a model call first): the background starter starts it."""
NOT_STARTED = (UNTOUCHED, QUEUED)
"""The ``tasks.start`` values of tasks that certainly have no workflow."""
STARTING = "starting"
"""``tasks.start`` of a task whose start was sent (its workflow may or may not exist yet)."""


@dataclass(frozen=True)
class UntouchedRows:
    """The rows of one task created lazily: its task row, node rows and creation events, as
    :mod:`store.projection` writes them (column → value)."""

    task: dict[str, Any]
    nodes: list[dict[str, Any]]
    events: list[dict[str, Any]]

    @property
    def workflow_id(self) -> str:
        return str(self.task["workflow_id"])


def untouched_rows(batch: ProjectionBatch, *, start: str = UNTOUCHED) -> UntouchedRows:
    """The rows of a task created lazily, from the snapshot its workflow would start with;
    ``start``: :data:`UNTOUCHED`, or :data:`QUEUED` for the background starter."""
    view = batch.view
    task = task_values(view)
    task["start"] = start
    return UntouchedRows(
        task=task,
        nodes=[node_values(view, node, batch.blocked.get(node.name)) for node in view.nodes],
        events=[event_values(view.workflow_id, event) for event in batch.events],
    )


def insert_untouched(
    session: Session, pipeline: Pipeline, tasks: Sequence[UntouchedRows], *, paused: bool
) -> set[str]:
    """Write the rows of new untouched tasks (all of ``pipeline``): task, node and creation-event
    rows (:func:`untouched_rows`). A task whose workflow id already has a row is left as it is.
    With ``paused`` the rows are written Paused (the pipeline is): such a task starts Paused.

    Returns:
        The workflow ids whose rows this call wrote.
    """
    if not tasks:
        return set()
    ensure_pipeline_version(session, pipeline)
    task_rows = [t.task for t in tasks]
    if paused:
        task_rows = [dict(row, status=TaskStatus.PAUSED.value) for row in task_rows]
    written = insert_new_rows(session, _table(TaskRow), task_rows, returning="workflow_id")
    if not written:
        return written
    nodes = [node for t in tasks if t.workflow_id in written for node in t.nodes]
    events = [event for t in tasks if t.workflow_id in written for event in t.events]
    insert_new_rows(session, _table(NodeRow), nodes)
    insert_new_rows(session, _table(TimelineEventRow), events)
    return written


_START_COLUMNS = (
    TaskRow.workflow_id,
    TaskRow.start,
    TaskRow.status,
    TaskRow.pipeline_hash,
    TaskRow.task_key,
    TaskRow.data,
    TaskRow.created_at,
)
"""What a start input is made of (:func:`_input_of`)."""


def begin_start(session: Session, workflow_id: str, *, mark: bool = True) -> TaskInput | None:
    """The start input of a lazily created task whose workflow may not exist; None for others.

    Marks the row ``starting`` (unless ``mark`` is false: to show the task, not start it), so a
    pipeline's pause from now on signals the task rather than changing its row. Safe to call
    again (a start that did not reach Temporal is sent again): the task's workflow id keeps a
    second start from making a second workflow. A Finished row gives None: a finished task is
    never started again.
    """
    row = None
    if mark:
        # One conditional statement, so a pause statement and this mark order themselves on
        # the row: the status it returns is the one the pause left.
        row = session.execute(
            update(TaskRow)
            .where(TaskRow.workflow_id == workflow_id, TaskRow.start.in_(NOT_STARTED))
            .values(start=STARTING)
            .returning(*_START_COLUMNS)
        ).one_or_none()
    if row is None:  # not untouched (maybe starting already, maybe no such task), or a peek
        row = session.execute(
            select(*_START_COLUMNS).where(TaskRow.workflow_id == workflow_id)
        ).one_or_none()
    return None if row is None else _input_of(session, row)


def _input_of(session: Session, row: Any) -> TaskInput | None:
    """A row of :data:`_START_COLUMNS` as a start input; None unless it was created lazily and
    is not Finished."""
    if row.start is None or row.status == TaskStatus.FINISHED.value:
        return None
    pipeline = _pipeline_version(session, row.pipeline_hash)
    if pipeline is None:
        return None
    return TaskInput(
        pipeline=pipeline,
        task_key=row.task_key,
        data=dict(row.data),
        start_paused=row.status == TaskStatus.PAUSED.value,
        created_at=row.created_at,
    )


def _pipeline_version(session: Session, content_hash: str) -> Pipeline | None:
    """A pipeline version by hash, parsed once per process (versions never change)."""
    found = parsed_version(content_hash)
    if found is not None:
        return found
    definition = session.scalar(
        select(PipelineVersionRow.definition).where(PipelineVersionRow.hash == content_hash)
    )
    return None if definition is None else parsed_version(content_hash, definition)


def take_queued(session: Session, limit: int) -> list[tuple[str, TaskInput]]:
    """Up to ``limit`` tasks waiting for the background starter (by workflow id), marked
    ``starting`` in one conditional statement (so two starters never take the same one), each
    with its start input."""
    ids = list(
        session.scalars(
            select(TaskRow.workflow_id)
            .where(TaskRow.start == QUEUED)
            .order_by(TaskRow.workflow_id)
            .limit(limit)
        )
    )
    if not ids:
        return []
    rows = session.execute(
        update(TaskRow)
        .where(TaskRow.workflow_id.in_(ids), TaskRow.start == QUEUED)
        .values(start=STARTING)
        .returning(*_START_COLUMNS)
    ).all()
    return _inputs(session, rows)


def starting_page(
    session: Session, after: str | None, limit: int
) -> tuple[str | None, list[tuple[str, TaskInput]]]:
    """One keyset page (by workflow id, after ``after``) of the tasks marked ``starting``: the
    page's last workflow id (None: no more), and each task's start input (Finished ones left
    out)."""
    query = select(*_START_COLUMNS).where(TaskRow.start == STARTING)
    if after is not None:
        query = query.where(TaskRow.workflow_id > after)
    rows = session.execute(query.order_by(TaskRow.workflow_id).limit(limit)).all()
    return (rows[-1].workflow_id if rows else None), _inputs(session, rows)


def _inputs(session: Session, rows: Sequence[Any]) -> list[tuple[str, TaskInput]]:
    found = ((row.workflow_id, _input_of(session, row)) for row in rows)
    return [(workflow_id, input) for workflow_id, input in found if input is not None]


def requeue(session: Session, workflow_ids: Sequence[str]) -> None:
    """Give tasks whose start failed back to the background starter."""
    if workflow_ids:
        session.execute(
            update(TaskRow)
            .where(TaskRow.workflow_id.in_(list(workflow_ids)), TaskRow.start == STARTING)
            .values(start=QUEUED)
        )


def hold_untouched(session: Session, pipeline: str, action: SweepAction) -> int:
    """A pipeline's pause or resume, for its untouched tasks: one statement.

    Returns:
        How many rows changed.
    """
    before, after = (
        (TaskStatus.IN_PROGRESS, TaskStatus.PAUSED)
        if action == "pause"
        else (TaskStatus.PAUSED, TaskStatus.IN_PROGRESS)
    )
    result = session.execute(
        update(TaskRow)
        .where(
            TaskRow.pipeline_name == pipeline,
            TaskRow.start.in_(NOT_STARTED),
            TaskRow.status == before.value,
        )
        .values(status=after.value)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def not_started(session: Session, pipeline: str | None = None) -> dict[str, int]:
    """How many tasks (of ``pipeline``) have no workflow yet, by ``tasks.start``:
    :data:`UNTOUCHED` and :data:`QUEUED` (both always present)."""
    query = (
        select(TaskRow.start, func.count())
        .where(TaskRow.start.in_(NOT_STARTED))
        .group_by(TaskRow.start)
    )
    if pipeline:
        query = query.where(TaskRow.pipeline_name == pipeline)
    counts = {start: 0 for start in NOT_STARTED}
    counts.update({str(start): int(n) for start, n in session.execute(query)})
    return counts


def untouched_ids(
    session: Session, pipeline: str | None, status: str | None, limit: int
) -> list[tuple[str, str]]:
    """Up to ``limit`` untouched tasks (of ``pipeline``, in ``status``) as (workflow id,
    status), oldest first."""
    query = select(TaskRow.workflow_id, TaskRow.status).where(TaskRow.start == UNTOUCHED)
    if pipeline:
        query = query.where(TaskRow.pipeline_name == pipeline)
    if status:
        query = query.where(TaskRow.status == status)
    found = session.execute(query.order_by(TaskRow.created_at, TaskRow.workflow_id).limit(limit))
    return [(workflow_id, task_status) for workflow_id, task_status in found]


def _table(row: type[TaskRow | NodeRow | TimelineEventRow]) -> Table:
    table = row.__table__
    assert isinstance(table, Table)
    return table
