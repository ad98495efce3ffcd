"""Apply a workflow's projection batches to the store.

A batch is the task's snapshot at ``seq`` plus the timeline events since the previous batch.
Every write is an idempotent upsert guarded by ``seq``: the task and node rows move only
forward, and an event (with the submission or review it carries) is written at most once. So a
batch delivered twice, late, or out of order changes nothing that a newer one already wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from store.dialect import upsert_ignore, upsert_newer
from store.models import (
    EvaluationResultRow,
    NodeAnnotatorRow,
    NodeRow,
    ReviewRow,
    SubmissionRow,
    TaskRow,
    TaskTagRow,
    TimelineEventRow,
)
from store.repositories import ensure_pipeline_version
from workflows import events as ev
from workflows.events import event_data
from workflows.messages import (
    EvaluationRecord,
    EventKind,
    NodeState,
    ProjectionBatch,
    TaskView,
    TimelineEvent,
    assignees,
    current_nodes,
)

# Timeline event kinds that carry a form's values, and the submission kind each records.
_CARRY_VALUES = (ev.DraftSaved, ev.Submitted, ev.LlmGenerated, ev.LlmDrafted)
"""The event data of submission kinds whose ``values`` are the submitted values."""

_SUBMISSION_KINDS: dict[str, str] = {
    EventKind.DRAFT_SAVED: "draft",
    EventKind.SUBMITTED: "submit",
    EventKind.LLM_RESULT: "llm",
    EventKind.SUBMISSION_EDITED: "edit",
    EventKind.LLM_DRAFT: "llm_draft",
}


def apply_batch(session: Session, batch: ProjectionBatch) -> None:
    """Write one batch. The caller owns the transaction."""
    view = batch.view
    if batch.pipeline is not None:
        ensure_pipeline_version(session, batch.pipeline)
    newest = upsert_newer(session, TaskRow.__table__, task_values(view), ["workflow_id"]) == 1
    rows = [node_values(view, node, batch.blocked.get(node.name)) for node in view.nodes]
    upsert_newer(session, NodeRow.__table__, rows, ["workflow_id", "node"])
    # Tags follow the newest snapshot only. A batch that wrote nothing is older than the stored
    # one, or the same one delivered again (whose tags went in with it, in its transaction).
    if newest:
        replace_tags(session, view.workflow_id, view.tags)
        if batch.people or any(node.consensus is not None for node in view.nodes):
            replace_people(session, view, batch.people)
    insert_events(session, view.workflow_id, batch.events, view.pipeline)


def task_values(view: TaskView) -> dict[str, Any]:
    """The ``tasks`` row for a snapshot."""
    return {
        "workflow_id": view.workflow_id,
        "pipeline_name": view.pipeline,
        "pipeline_hash": view.pipeline_hash,
        "task_key": view.task_key,
        "status": view.status.value,
        "seq": view.seq,
        "data": view.data,
        "current_nodes": current_nodes(view.nodes),
        "assignees": assignees(view.nodes),
        "tags": list(view.tags),
        "hold_reason": view.hold_reason,
        "search_text": search_text(view),
        "created_at": view.created_at,
        "updated_at": view.updated_at,
        "finished_at": view.finished_at,
        # A newer snapshot is the workflow's own: a lazily created task has started.
        "start": None,
    }


def node_values(view: TaskView, node: NodeState, blocked: str | None = None) -> dict[str, Any]:
    """The ``node_instances`` row for one node of a snapshot."""
    claim = node.claim
    return {
        "workflow_id": view.workflow_id,
        "node": node.name,
        "pipeline_name": view.pipeline,
        "status": node.status.value,
        "seq": view.seq,
        "assignee": claim.holder if claim else None,
        "claim_token": claim.token if claim else None,
        "claimed_at": claim.claimed_at if claim else None,
        "expires_at": claim.expires_at if claim else None,
        "values": node.values,
        "draft": node.draft,
        "submitted_by": node.submitted_by,
        "submitted_at": node.submitted_at,
        "attempts": node.attempts,
        "rework_reason": node.rework_reason,
        "rework_only": node.rework_only,
        "rework_exclude": node.rework_exclude,
        "passes": node.passes,
        "failures": node.failures,
        "total_failures": node.total_failures,
        "last_review": node.last_review.model_dump(mode="json") if node.last_review else None,
        "error": node.error,
        "available_since": node.available_since,
        "blocked_contributor": blocked,
        "consensus": consensus_row(node),
    }


def consensus_row(node: NodeState) -> dict[str, Any] | None:
    """A consensus node's ``consensus`` column: places needed, answers, round and the merged
    result (no claims or drafts)."""
    if node.consensus is None:
        return None
    return node.consensus.model_dump(mode="json", exclude={"slots"}) | {
        "claimed": len(node.consensus.slots)
    }


def event_values(workflow_id: str, event: TimelineEvent) -> dict[str, Any]:
    """The ``timeline_events`` row for one event."""
    return {
        "workflow_id": workflow_id,
        "seq": event.seq,
        "at": event.at,
        "kind": event.kind,
        "actor": event.actor,
        "node": event.node,
        "message": event.message,
        "data": event.data,
    }


def search_text(view: TaskView) -> str:
    """Every value of the task as one lower-cased string, for text search."""
    return search_text_of(view.task_key, view.tags, view.data, [n.values for n in view.nodes])


def search_text_of(
    task_key: str,
    tags: Iterable[str],
    data: dict[str, Any],
    node_values: Iterable[dict[str, Any]] = (),
) -> str:
    """:func:`search_text` from a task's parts."""
    parts: list[str] = [task_key, *tags]
    parts += _flatten(data.values())
    for values in node_values:
        parts += _flatten(values.values())
    return "\n".join(p for p in parts if p).lower()


def _flatten(values: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for value in values:
        if value is None:
            continue
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list | dict):
            out.append(json.dumps(value, ensure_ascii=False, sort_keys=True))
        else:
            out.append(str(value))
    return out


def replace_people(session: Session, view: TaskView, people: dict[str, dict[str, str]]) -> None:
    """The task's ``node_annotators`` rows: who holds, answered or may not take each node for
    consensus reasons (:attr:`ProjectionBatch.people`)."""
    session.execute(
        delete(NodeAnnotatorRow).where(NodeAnnotatorRow.workflow_id == view.workflow_id)
    )
    rows = [
        {
            "workflow_id": view.workflow_id,
            "node": node,
            "contributor": person,
            "pipeline_name": view.pipeline,
            "state": state,
        }
        for node, who in people.items()
        for person, state in who.items()
    ]
    if rows:
        session.execute(insert(NodeAnnotatorRow), rows)


def replace_tags(session: Session, workflow_id: str, tags: list[str]) -> None:
    session.execute(delete(TaskTagRow).where(TaskTagRow.workflow_id == workflow_id))
    for tag in dict.fromkeys(tags):
        upsert_ignore(session, TaskTagRow.__table__, {"workflow_id": workflow_id, "tag": tag})


def insert_events(
    session: Session, workflow_id: str, events: list[TimelineEvent], pipeline: str
) -> None:
    """Timeline events and the submissions / reviews they carry, each at most once."""
    for event in events:
        upsert_ignore(session, TimelineEventRow.__table__, event_values(workflow_id, event))
        kind = _SUBMISSION_KINDS.get(event.kind)
        if kind is not None and event.node is not None:
            data = event_data(event)
            if isinstance(data, ev.SubmissionEdited):
                values = data.after
            else:
                assert isinstance(data, _CARRY_VALUES), data
                values = data.values
            upsert_ignore(
                session,
                SubmissionRow.__table__,
                {
                    "workflow_id": workflow_id,
                    "seq": event.seq,
                    "node": event.node,
                    "kind": kind,
                    "actor": event.actor,
                    "attempt": data.attempt if isinstance(data, ev.Submitted) else None,
                    "values": values,
                    "at": event.at,
                },
            )
        elif event.kind == EventKind.EVALUATED and event.node is not None:
            upsert_newer(
                session,
                EvaluationResultRow.__table__,
                evaluation_values(workflow_id, pipeline, event),
                ["workflow_id", "node", "criterion", "criterion_version"],
            )
        elif event.kind == EventKind.REVIEWED and event.node is not None:
            review = event_data(event)
            assert isinstance(review, ev.Reviewed), review
            upsert_ignore(
                session,
                ReviewRow.__table__,
                {
                    "workflow_id": workflow_id,
                    "seq": event.seq,
                    "node": event.node,
                    "reviewer": event.actor,
                    "verdict": review.verdict,
                    "reason": review.reason,
                    "values": review.values,
                    "at": event.at,
                },
            )


def evaluation_values(workflow_id: str, pipeline: str, event: TimelineEvent) -> dict[str, Any]:
    """The ``evaluation_results`` row of an ``evaluated`` event (its data is the record)."""
    evaluated = event_data(event)
    assert isinstance(evaluated, ev.Evaluated), evaluated
    record = evaluated.record
    return evaluation_row(workflow_id, pipeline, record, source="task", seq=event.seq, at=event.at)


def evaluation_row(
    workflow_id: str,
    pipeline: str,
    record: EvaluationRecord,
    *,
    source: str,
    seq: int,
    at: datetime,
) -> dict[str, Any]:
    """One ``evaluation_results`` row: a task's own verdict (``source='task'``, its event's seq)
    or a bulk evaluation's (``source='bulk'``, seq 0). ``at`` is used when the record has none."""
    return {
        "workflow_id": workflow_id,
        "pipeline_name": pipeline,
        "node": record.node,
        "criterion": record.criterion,
        "criterion_version": record.version,
        "kind": record.kind.value,
        "evaluator": record.evaluator,
        "mode": record.mode,
        "source": source,
        "seq": seq,
        "target_fields": list(record.fields),
        "score": record.score,
        "passed": record.passed,
        "label": record.label,
        "reasoning": record.reasoning,
        "actor": record.actor,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cost_usd": record.cost_usd,
        "latency_ms": record.latency_ms,
        "error": record.error,
        "at": record.at or at,
    }
