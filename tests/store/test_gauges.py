"""The store's figures behind Conveyor's metrics (store/gauges.py), one query each."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.gauges import (
    LlmCallTotals,
    claimed_node_counts,
    llm_call_totals,
    pipeline_names,
    task_counts,
)
from tests.support.gauge_rows import fill_gauge_rows


def test_an_empty_store_has_no_figures(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        assert pipeline_names(session) == set()
        assert task_counts(session) == {}
        assert claimed_node_counts(session) == {}
        assert llm_call_totals(session) == []


def test_pipeline_names_are_the_pipeline_rows(sessions: sessionmaker[Session]) -> None:
    fill_gauge_rows(sessions)
    with transaction(sessions) as session:
        # "beta" has tasks but no pipeline row: not a name here.
        assert pipeline_names(session) == {"alpha", "idle"}


def test_task_counts_by_pipeline_and_status(sessions: sessionmaker[Session]) -> None:
    fill_gauge_rows(sessions)
    with transaction(sessions) as session:
        assert task_counts(session) == {
            ("alpha", "In Progress"): 2,
            ("alpha", "Finished"): 1,
            ("beta", "Paused"): 1,
        }


def test_claimed_node_counts_by_pipeline(sessions: sessionmaker[Session]) -> None:
    fill_gauge_rows(sessions)
    with transaction(sessions) as session:
        assert claimed_node_counts(session) == {"alpha": 2, "beta": 1}


def test_llm_call_totals_sum_known_values_only(sessions: sessionmaker[Session]) -> None:
    fill_gauge_rows(sessions)
    with transaction(sessions) as session:
        totals = llm_call_totals(session)
    assert totals == [
        LlmCallTotals("alpha", "ollama/llama3", "ok", 1, 3, 1, 2, 1, None, 0),
        LlmCallTotals("alpha", "openai/gpt-4o-mini", "ok", 2, 30, 2, 12, 2, 0.75, 2),
        LlmCallTotals("alpha", "openai/gpt-4o-mini", "retry", 1, None, 0, None, 0, None, 0),
        LlmCallTotals("beta", "ollama/llama3", "failed", 1, None, 0, None, 0, None, 0),
    ]
