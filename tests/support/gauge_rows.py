"""Store rows behind Conveyor's metrics: pipelines, tasks, nodes and LLM calls with known
figures, shared by the store's gauge queries' tests and the metrics endpoint's."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.models import LlmCallRow, NodeRow, PipelineRow, TaskRow

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _task(workflow_id: str, pipeline: str, status: str) -> TaskRow:
    return TaskRow(
        workflow_id=workflow_id,
        pipeline_name=pipeline,
        pipeline_hash="h",
        task_key=workflow_id,
        status=status,
        data={},
        current_nodes=[],
        assignees=[],
        tags=[],
        created_at=NOW,
        updated_at=NOW,
    )


def _node(workflow_id: str, pipeline: str, node: str, status: str) -> NodeRow:
    return NodeRow(
        workflow_id=workflow_id,
        node=node,
        pipeline_name=pipeline,
        status=status,
        values={},
        draft={},
    )


def _call(
    workflow_id: str,
    pipeline: str,
    model: str,
    attempt: int,
    outcome: str,
    tokens: tuple[int, int] | None,
    cost: float | None,
) -> LlmCallRow:
    return LlmCallRow(
        workflow_id=workflow_id,
        pipeline_name=pipeline,
        node="answer",
        call_id=f"answer:1:{model}",
        fields=["reply"],
        model=model,
        attempt=attempt,
        prompt_tokens=tokens[0] if tokens else None,
        completion_tokens=tokens[1] if tokens else None,
        cost_usd=cost,
        latency_ms=100.0,
        outcome=outcome,
        at=NOW,
    )


def fill_gauge_rows(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        for name in ("alpha", "idle"):
            session.add(PipelineRow(name=name, created_at=NOW, updated_at=NOW))
        # "beta" has tasks but no pipeline row: it is reported all the same.
        session.add_all(
            [
                _task("a1", "alpha", "In Progress"),
                _task("a2", "alpha", "In Progress"),
                _task("a3", "alpha", "Finished"),
                _task("b1", "beta", "Paused"),
            ]
        )
        session.flush()  # tasks before their nodes (no relationship() orders them)
        session.add_all(
            [
                _node("a1", "alpha", "label", "Claimed"),
                _node("a2", "alpha", "label", "Claimed"),
                _node("a2", "alpha", "review", "Pending"),
                _node("a3", "alpha", "label", "Finished"),
                _node("b1", "beta", "label", "Claimed"),
                _node("b1", "beta", "check", "Available"),
            ]
        )
        session.add_all(
            [
                _call("a1", "alpha", "openai/gpt-4o-mini", 1, "retry", None, None),
                _call("a1", "alpha", "openai/gpt-4o-mini", 2, "ok", (10, 5), 0.25),
                _call("a2", "alpha", "openai/gpt-4o-mini", 1, "ok", (20, 7), 0.5),
                _call("a2", "alpha", "ollama/llama3", 1, "ok", (3, 2), None),
                _call("b1", "beta", "ollama/llama3", 1, "failed", None, None),
            ]
        )
