"""store.llm_calls: one row per attempt, written once, texts cut to their columns' sizes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.llm_calls import LlmCallAttempt, insert_llm_call
from store.models import LlmCallRow

ATTEMPT = LlmCallAttempt(
    workflow_id="spam-filter/t-1",
    node="classify",
    call_id="classify:1:0",
    purpose="field",
    fields=("label",),
    model="openai/fake-model",
    attempt=1,
    prompt_tokens=12,
    completion_tokens=3,
    cost_usd=None,
    latency_ms=41.5,
    outcome="ok",
    error_class=None,
    at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
)


def _rows(sessions: sessionmaker[Session]) -> list[LlmCallRow]:
    with sessions() as session:
        return list(session.scalars(select(LlmCallRow).order_by(LlmCallRow.attempt)))


def test_insert_writes_one_row_per_attempt(sessions: sessionmaker[Session]) -> None:
    retry = dataclasses.replace(ATTEMPT, attempt=2, outcome="retry", error_class="RateLimitError")
    with transaction(sessions) as session:
        insert_llm_call(session, ATTEMPT)
        insert_llm_call(session, retry)
        insert_llm_call(session, dataclasses.replace(ATTEMPT, outcome="failed"))  # a repeat

    rows = _rows(sessions)
    assert [(r.attempt, r.outcome, r.error_class) for r in rows] == [
        (1, "ok", None),
        (2, "retry", "RateLimitError"),
    ]
    first = rows[0]
    assert first.pipeline_name == "spam-filter"
    assert (first.node, first.call_id, first.purpose, first.fields) == (
        "classify",
        "classify:1:0",
        "field",
        ["label"],
    )
    assert (first.prompt_tokens, first.completion_tokens, first.cost_usd) == (12, 3, None)
    assert first.latency_ms == 41.5


def test_insert_cuts_texts_to_their_columns(sessions: sessionmaker[Session]) -> None:
    long = dataclasses.replace(
        ATTEMPT,
        workflow_id="p" * 150 + "/t-1",
        node="n" * 250,
        call_id="c" * 350,
        model="m" * 250,
        outcome="failed",
        error_class="E" * 150,
    )
    with transaction(sessions) as session:
        insert_llm_call(session, long)

    (row,) = _rows(sessions)
    assert row.pipeline_name == "p" * 100
    assert (len(row.node), len(row.call_id), len(row.model)) == (200, 300, 200)
    assert row.error_class == "E" * 100
