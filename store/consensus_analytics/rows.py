"""Reading a pipeline's consensus nodes: which nodes there are (over its stored versions) and
their rows, streamed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from store.consensus_analytics.models import NotConsensus
from store.explorer import TaskFilter, filter_clauses, pipeline_versions
from store.models import NodeRow, PipelineRow, TaskRow
from workflows.errors import UnknownPipeline
from workflows.graph import Pipeline

_STREAM_BATCH = 2000


def consensus_nodes(
    session: Session, pipeline: str, node: str | None
) -> tuple[list[Pipeline], list[str]]:
    """The pipeline's stored versions (the current one first) and the consensus nodes asked for:
    ``node``, or every consensus node of any version (sorted).

    Raises:
        UnknownPipeline: no pipeline of that name was applied.
        NotConsensus: the pipeline has no consensus node, or ``node`` is not one.
    """
    versions = [parsed for _, parsed in pipeline_versions(session, pipeline)]
    if not versions:
        check_pipeline(session, pipeline)
    names = sorted({n.name for v in versions for n in v.nodes if n.consensus is not None})
    if not names:
        raise NotConsensus(
            f"pipeline {pipeline!r} has no consensus node (a subtask with `consensus:`), so "
            "there is no agreement between annotators to report",
            details={"pipeline": pipeline},
        )
    if node is not None and node not in names:
        raise NotConsensus(
            f"{node!r} is not a consensus node of pipeline {pipeline!r}; its consensus nodes: "
            f"{', '.join(names)}",
            details={"pipeline": pipeline, "consensus_nodes": names},
        )
    return versions, [node] if node is not None else names


def node_rows(
    session: Session, pipeline: str, nodes: list[str], criteria: TaskFilter | None
) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """``(node, workflow_id, consensus, values)`` of the nodes' rows that have a ``consensus``
    column, in no particular order (of the tasks ``criteria`` selects, when given)."""
    where: list[ColumnElement[bool]] = [
        NodeRow.pipeline_name == pipeline,
        NodeRow.node.in_(nodes),
    ]
    query = select(NodeRow.node, NodeRow.workflow_id, NodeRow.consensus, NodeRow.values)
    if criteria is not None:
        query = query.join(TaskRow, TaskRow.workflow_id == NodeRow.workflow_id)
        where.extend(filter_clauses(pipeline, criteria))
    rows = session.execute(query.where(*where), execution_options={"yield_per": _STREAM_BATCH})
    for name, workflow_id, consensus, values in rows:
        if isinstance(consensus, dict):
            yield name, workflow_id, consensus, values or {}


def current_answers(consensus: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The item's current-round answers: contributor -> values, in the order they came (a
    repeated contributor keeps their latest)."""
    latest: dict[str, dict[str, Any]] = {}
    for answer in consensus.get("answers") or []:
        latest[str(answer.get("by"))] = dict(answer.get("values") or {})
    return latest


def is_final(consensus: dict[str, Any], answers: int) -> bool:
    """Whether the item's answer is final: all its answers are in and merged, and it agreed or
    an adjudicator settled it (not while one more person is asked, nor awaiting a settlement)."""
    result = consensus.get("result")
    if not result or answers < int(consensus.get("needed") or 0):
        return False
    return bool(result.get("agreed") or result.get("adjudicated_by"))


def check_pipeline(session: Session, pipeline: str) -> None:
    """Raise :class:`UnknownPipeline` unless the pipeline was applied."""
    if session.get(PipelineRow, pipeline) is not None:
        return
    known = sorted(session.scalars(select(PipelineRow.name)))
    listing = (
        f"pipelines in the store: {', '.join(known)}"
        if known
        else "the store has no pipelines yet (apply one first)"
    )
    raise UnknownPipeline(f"no pipeline named {pipeline!r}; {listing}", name=pipeline, known=known)
