"""Writing ``llm_calls``: one row per attempt of an LLM call, for LLM Analytics.

The LLM activities are the table's one writer (``activities.llm``); it is read by
``store.analytics``, ``store.explorer`` and the metrics. Like the other store functions this
takes a session and never commits: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from store.dialect import upsert_ignore
from store.models import LlmCallRow


@dataclass(frozen=True)
class LlmCallAttempt:
    """One attempt of an LLM call as it ended; see :class:`~store.models.LlmCallRow`."""

    workflow_id: str
    node: str
    call_id: str
    purpose: str
    """``field`` or ``judge``."""
    fields: Sequence[str]
    model: str
    attempt: int
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    latency_ms: float
    outcome: str
    """``ok``, ``retry`` or ``failed``."""
    error_class: str | None
    at: datetime


def insert_llm_call(session: Session, call: LlmCallAttempt) -> None:
    """Insert the attempt's row; a repeat of ``(workflow_id, call_id, attempt)`` is ignored.

    ``pipeline_name`` is the workflow id's part before the first ``/``; texts are truncated to
    their columns' sizes, which PostgreSQL enforces.
    """
    row = {
        "workflow_id": call.workflow_id,
        "pipeline_name": call.workflow_id.split("/", 1)[0][:100],
        "node": call.node[:200],
        "call_id": call.call_id[:300],
        "purpose": call.purpose,
        "fields": list(call.fields),
        "model": call.model[:200],
        "attempt": call.attempt,
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": call.completion_tokens,
        "cost_usd": call.cost_usd,
        "latency_ms": call.latency_ms,
        "outcome": call.outcome,
        "error_class": call.error_class[:100] if call.error_class else None,
        "at": call.at,
    }
    upsert_ignore(session, LlmCallRow, row)
