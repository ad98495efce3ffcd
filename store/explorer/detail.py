"""One task's detail: the Nodes and Timeline views."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.explorer.base import TaskNotFound, _Frozen
from store.models import (
    EvaluationResultRow,
    LlmCallRow,
    NodeAnnotatorRow,
    NodeRow,
    PipelineVersionRow,
    ReviewRow,
    SubmissionRow,
    TaskRow,
    TimelineEventRow,
)
from workflows.graph import FieldSpec, NodeKind, NodeSpec, Pipeline
from workflows.messages import (
    Answer,
    ConsensusResult,
    ConsensusState,
    NodeStatus,
    ReviewRecord,
    TaskStatus,
)

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


class ConsensusDetail(_Frozen):
    """A consensus node's places, answers and merged result in the Nodes view."""

    needed: int
    """How many answers the item takes now."""
    claimed: int
    """Places held now (answers still to come)."""
    holders: list[str]
    """Who holds those places."""
    round: int
    answers: list[Answer]
    """This round's answers, in the order they arrived."""
    earlier: list[Answer]
    """Answers of earlier rounds."""
    result: ConsensusResult | None
    threshold: float | None
    """The agreement an item needs (None if the pinned version is not in the store)."""
    counted: list[str]
    """The fields whose agreement counts (vote)."""


def _consensus_detail(
    raw: dict[str, Any] | None, spec: NodeSpec | None, holders: list[str]
) -> ConsensusDetail | None:
    """The ``consensus`` column of a node instance, read back as the engine's state."""
    if not raw:
        return None
    state = ConsensusState.model_validate({k: v for k, v in raw.items() if k != "claimed"})
    consensus = spec.consensus if spec is not None else None
    return ConsensusDetail(
        needed=state.needed,
        claimed=int(raw.get("claimed") or 0),
        holders=holders,
        round=state.round,
        answers=state.answers,
        earlier=state.earlier,
        result=state.result,
        threshold=consensus.threshold if consensus else None,
        counted=(
            [f.name for f in consensus.voting(spec.input_fields())] if consensus and spec else []
        ),
    )


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
    consensus: ConsensusDetail | None = None
    """Consensus nodes: places, answers and the merged result."""


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
    holders: dict[str, list[str]] = {}
    for node, person in session.execute(
        select(NodeAnnotatorRow.node, NodeAnnotatorRow.contributor)
        .where(NodeAnnotatorRow.workflow_id == workflow_id, NodeAnnotatorRow.state == "claimed")
        .order_by(NodeAnnotatorRow.contributor)
    ):
        holders.setdefault(node, []).append(person)
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
                consensus=_consensus_detail(row.consensus, spec, holders.get(row.node, [])),
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
