"""The store's figures behind Conveyor's Prometheus metrics (``conveyor.metrics``): pipeline
names and three ``GROUP BY`` queries (tasks by status, claimed nodes, LLM call attempts).

Each function is one statement, in the caller's transaction, and returns plain values.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import LlmCallRow, NodeRow, PipelineRow, TaskRow
from workflows.messages import NodeStatus


@dataclass(frozen=True)
class LlmCallTotals:
    """The LLM call attempts of one ``(pipeline, model, outcome)``.

    Each sum covers the attempts whose value is known; its ``*_known`` count says how many
    those are (0: no known value, and the sum is ``None``).
    """

    pipeline: str
    model: str
    outcome: str
    calls: int
    prompt_tokens: int | None
    prompt_known: int
    completion_tokens: int | None
    completion_known: int
    cost_usd: float | None
    cost_known: int


def pipeline_names(session: Session) -> set[str]:
    """The names of every pipeline row."""
    return set(session.scalars(select(PipelineRow.name)))


def task_counts(session: Session) -> dict[tuple[str, str], int]:
    """How many tasks each ``(pipeline, status)`` has (pairs with none are absent)."""
    rows = session.execute(
        select(TaskRow.pipeline_name, TaskRow.status, func.count()).group_by(
            TaskRow.pipeline_name, TaskRow.status
        )
    )
    return {(pipeline, status): count for pipeline, status, count in rows}


def claimed_node_counts(session: Session) -> dict[str, int]:
    """How many node instances are Claimed, by pipeline (pipelines with none are absent)."""
    rows = session.execute(
        select(NodeRow.pipeline_name, func.count())
        .where(NodeRow.status == NodeStatus.CLAIMED.value)
        .group_by(NodeRow.pipeline_name)
    )
    return {pipeline: count for pipeline, count in rows}


def llm_call_totals(session: Session) -> list[LlmCallTotals]:
    """Every LLM call attempt summed by ``(pipeline, model, outcome)``, in that order."""
    rows = session.execute(
        select(
            LlmCallRow.pipeline_name,
            LlmCallRow.model,
            LlmCallRow.outcome,
            func.count(),
            func.sum(LlmCallRow.prompt_tokens),
            func.count(LlmCallRow.prompt_tokens),
            func.sum(LlmCallRow.completion_tokens),
            func.count(LlmCallRow.completion_tokens),
            func.sum(LlmCallRow.cost_usd),
            func.count(LlmCallRow.cost_usd),
        )
        .group_by(LlmCallRow.pipeline_name, LlmCallRow.model, LlmCallRow.outcome)
        .order_by(LlmCallRow.pipeline_name, LlmCallRow.model, LlmCallRow.outcome)
    )
    return [
        LlmCallTotals(
            pipeline=pipeline,
            model=model,
            outcome=outcome,
            calls=calls,
            prompt_tokens=prompt,
            prompt_known=n_prompt,
            completion_tokens=completion,
            completion_known=n_completion,
            cost_usd=cost,
            cost_known=n_cost,
        )
        for (
            pipeline,
            model,
            outcome,
            calls,
            prompt,
            n_prompt,
            completion,
            n_completion,
            cost,
            n_cost,
        ) in rows
    ]
