"""Reads of a pipeline's tasks for the activities: counts by status, keyset pages of workflow
ids, the keys already stored, and tasks' data with their nodes' values.

Like the other store functions these take a session and never commit: the caller owns the
transaction. They return plain values and dataclasses, never ORM rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from store.models import NodeRow, TaskRow
from workflows.messages import TaskStatus, consensus_figures, merge_task_data

SweepAction = Literal["pause", "resume"]
"""The two fan-outs of a pipeline (:class:`workflows.pipeline_messages.SweepRequest`)."""

KEYS_PER_QUERY = 500


@dataclass(frozen=True)
class FinishedTask:
    """A Finished task: its key and its data (seed data and every field value)."""

    workflow_id: str
    task_key: str
    data: dict[str, Any]


@dataclass(frozen=True)
class NodeInput:
    """One node of a task as an evaluator sees it: its values, and whether it has a submission
    (a form, an LLM output or a review)."""

    workflow_id: str
    node: str
    values: dict[str, Any]
    submitted: bool


# --------------------------------------------------------------------------- counts


def count_unfinished(session: Session, pipeline: str) -> int:
    """How many of the pipeline's tasks are not Finished."""
    unfinished = session.scalar(
        select(func.count())
        .select_from(TaskRow)
        .where(
            TaskRow.pipeline_name == pipeline,
            TaskRow.status != TaskStatus.FINISHED.value,
        )
    )
    return unfinished or 0


def status_counts(session: Session, pipeline: str) -> dict[str, int]:
    """The pipeline's task count per status (statuses without a task are left out)."""
    rows = session.execute(
        select(TaskRow.status, func.count())
        .where(TaskRow.pipeline_name == pipeline)
        .group_by(TaskRow.status)
    ).all()
    return {status: int(n) for status, n in rows}


def existing_keys(
    session: Session, pipeline: str, keys: Sequence[str], *, per_query: int = KEYS_PER_QUERY
) -> set[str]:
    """The task keys among ``keys`` the pipeline has a task under (``per_query`` keys a query)."""
    present: set[str] = set()
    for start in range(0, len(keys), per_query):
        chunk = keys[start : start + per_query]
        present.update(
            session.scalars(
                select(TaskRow.task_key).where(
                    TaskRow.pipeline_name == pipeline, TaskRow.task_key.in_(chunk)
                )
            )
        )
    return present


# --------------------------------------------------------------------------- sweeps


def _wanted(action: SweepAction) -> ColumnElement[bool]:
    """pause: the tasks neither Paused nor Finished; resume: the Paused ones."""
    if action == "pause":
        return TaskRow.status.not_in([TaskStatus.PAUSED.value, TaskStatus.FINISHED.value])
    return TaskRow.status == TaskStatus.PAUSED.value


def sweep_page(
    session: Session, pipeline: str, action: SweepAction, after: str | None, limit: int
) -> list[str]:
    """One keyset page (by workflow id, after ``after``) of the pipeline's tasks a pause or a
    resume fan-out signals."""
    query = select(TaskRow.workflow_id).where(TaskRow.pipeline_name == pipeline, _wanted(action))
    if after is not None:
        query = query.where(TaskRow.workflow_id > after)
    return list(session.scalars(query.order_by(TaskRow.workflow_id).limit(limit)))


def count_not_paused(session: Session, pipeline: str) -> int:
    """How many of the pipeline's tasks are neither Paused nor Finished."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(TaskRow)
            .where(TaskRow.pipeline_name == pipeline, _wanted("pause"))
        )
        or 0
    )


# --------------------------------------------------------------------------- task data


def finished_tasks(
    session: Session, pipeline: str, after: str | None, limit: int
) -> list[FinishedTask]:
    """One keyset page (by workflow id, after ``after``) of a pipeline's Finished tasks, each
    with its data as the workflow sees it (:func:`workflows.engine.task_data`): seed data plus
    every node's values, by field name and as ``node.field``."""
    query = select(TaskRow.workflow_id, TaskRow.task_key, TaskRow.data).where(
        TaskRow.pipeline_name == pipeline, TaskRow.status == TaskStatus.FINISHED.value
    )
    if after is not None:
        query = query.where(TaskRow.workflow_id > after)
    rows = session.execute(query.order_by(TaskRow.workflow_id).limit(limit)).all()
    values: dict[str, list[tuple[str, dict[str, Any]]]] = {wid: [] for wid, _, _ in rows}
    figures: dict[str, dict[str, Any]] = {wid: {} for wid in values}
    if values:
        nodes = session.execute(
            select(NodeRow.workflow_id, NodeRow.node, NodeRow.values, NodeRow.consensus).where(
                NodeRow.workflow_id.in_(list(values))
            )
        ).all()
        for wid, node, node_values, consensus in nodes:
            values[wid].append((node, node_values or {}))
            if consensus:
                figures[wid].update(consensus_figures(node, consensus.get("result")))
    return [
        FinishedTask(wid, key, merge_task_data(seed or {}, values[wid]) | figures[wid])
        for wid, key, seed in rows
    ]


def task_seeds(
    session: Session, pipeline: str, workflow_ids: Sequence[str]
) -> dict[str, dict[str, Any] | None]:
    """The seed data of the tasks among ``workflow_ids`` the pipeline has, by workflow id."""
    return {
        wid: data
        for wid, data in session.execute(
            select(TaskRow.workflow_id, TaskRow.data).where(
                TaskRow.workflow_id.in_(list(workflow_ids)), TaskRow.pipeline_name == pipeline
            )
        )
    }


def node_inputs(session: Session, workflow_ids: Sequence[str]) -> list[NodeInput]:
    """Every node of the tasks ``workflow_ids``: its values, and whether it has a submission."""
    return [
        NodeInput(
            workflow_id=wid,
            node=node,
            values=values or {},
            submitted=submitted_at is not None or last_review is not None,
        )
        for wid, node, values, submitted_at, last_review in session.execute(
            select(
                NodeRow.workflow_id,
                NodeRow.node,
                NodeRow.values,
                NodeRow.submitted_at,
                NodeRow.last_review,
            ).where(NodeRow.workflow_id.in_(list(workflow_ids)))
        )
    ]
