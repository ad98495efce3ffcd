"""LLM Analytics, Evaluation Analytics and judge/human agreement on SQLite and PostgreSQL.

Rows are inserted directly (the queries are under test, not the writers); every expected number
is worked out by hand in a comment, or recomputed from the inserted rows with plain Python.
"""

from __future__ import annotations

import math
import random
import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from store.analytics import (
    LlmStats,
    UnknownPipeline,
    agreement,
    evaluation_analytics,
    llm_analytics,
)
from store.db import transaction
from store.models import EvaluationResultRow, LlmCallRow, PipelineRow
from workflows.messages import EvaluationKind

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def call(
    pipeline: str,
    task: str,
    call_id: str,
    attempt: int = 1,
    *,
    model: str = "gpt-a",
    node: str = "summarize",
    purpose: str = "field",
    outcome: str = "ok",
    prompt: int | None = None,
    completion: int | None = None,
    cost: float | None = None,
    latency: float = 100.0,
    error: str | None = None,
    at: datetime = T0,
) -> dict[str, Any]:
    return {
        "workflow_id": f"{pipeline}/{task}",
        "pipeline_name": pipeline,
        "node": node,
        "call_id": call_id,
        "purpose": purpose,
        "fields": ["summary"],
        "model": model,
        "attempt": attempt,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cost_usd": cost,
        "latency_ms": latency,
        "outcome": outcome,
        "error_class": error,
        "at": at,
    }


def result(
    pipeline: str,
    task: str,
    criterion: str,
    *,
    node: str = "label",
    kind: EvaluationKind = EvaluationKind.LLM_JUDGE,
    version: str = "v1",
    score: float | None = None,
    passed: bool | None = None,
    label: str | None = None,
    reasoning: str | None = None,
    error: str | None = None,
    at: datetime = T0,
) -> dict[str, Any]:
    return {
        "workflow_id": f"{pipeline}/{task}",
        "pipeline_name": pipeline,
        "node": node,
        "criterion": criterion,
        "criterion_version": version,
        "kind": kind.value,
        "evaluator": "llm_judge" if kind == EvaluationKind.LLM_JUDGE else "boolean",
        "target_fields": ["label"],
        "score": score,
        "passed": passed,
        "label": label,
        "reasoning": reasoning,
        "actor": "llm:gpt-a" if kind == EvaluationKind.LLM_JUDGE else "ana",
        "error": error,
        "at": at,
    }


def insert_rows(sessions: sessionmaker[Session], table: Any, rows: list[dict[str, Any]]) -> None:
    with transaction(sessions) as session:
        session.execute(insert(table), rows)


# --------------------------------------------------------------------------- LLM Analytics


@pytest.fixture
def llm_rows(sessions: sessionmaker[Session]) -> tuple[str, str]:
    """Two pipelines of hand-made attempts (see the tests for the sums)."""
    p, q = _name("llm"), _name("other")
    m = timedelta(minutes=1)
    rows = [
        # gpt-a / summarize / field: 4 calls (t1:c1, t1:c2, t2:c3, t2:c1), 7 attempts.
        call(p, "t1", "c1", 1, prompt=100, completion=20, cost=0.01, latency=100, at=T0),
        call(p, "t1", "c2", 1, outcome="retry", error="RateLimitError", latency=50, at=T0 + m),
        call(p, "t1", "c2", 2, prompt=120, completion=30, cost=0.012, latency=200, at=T0 + 2 * m),
        call(p, "t2", "c3", 1, outcome="retry", error="Timeout", latency=300, at=T0 + 3 * m),
        call(p, "t2", "c3", 2, outcome="retry", error="Timeout", latency=310, at=T0 + 4 * m),
        call(p, "t2", "c3", 3, outcome="failed", error="Timeout", latency=320, at=T0 + 5 * m),
        call(p, "t2", "c1", 1, prompt=80, completion=10, cost=0.008, latency=150, at=T0 + 6 * m),
        # local-b / summarize / field: no known price at all.
        call(p, "t1", "c4", 1, model="local-b", prompt=40, completion=5, latency=10, at=T0),
        call(p, "t2", "c4", 1, model="local-b", prompt=60, completion=5, latency=30, at=T0),
        # gpt-c / summarize / field: a "failed" attempt that was not the last one, and a
        # failed attempt without an error class.
        call(p, "t3", "c5", 1, model="gpt-c", outcome="failed", error="APIError", latency=5),
        call(p, "t3", "c5", 2, model="gpt-c", cost=0.001, latency=7),
        call(p, "t3", "c6", 1, model="gpt-c", outcome="retry", latency=9),
        call(p, "t3", "c6", 2, model="gpt-c", latency=11),
        # gpt-a / label / judge, two hours later.
        call(
            p,
            "t1",
            "label:judge:tone:v1:1",
            node="label",
            purpose="judge",
            prompt=10,
            completion=2,
            cost=0.002,
            latency=400,
            at=T0 + timedelta(hours=2),
        ),
        # Another pipeline: never in p's numbers.
        call(q, "t1", "c1", prompt=1000, completion=1000, cost=1.0, latency=9999),
    ]
    insert_rows(sessions, LlmCallRow, rows)
    return p, q


def _by_group(stats: Sequence[LlmStats], *keys: str) -> dict[tuple[Any, ...], LlmStats]:
    return {tuple(getattr(s, k) for k in keys): s for s in stats}


def test_llm_analytics_by_hand(sessions: sessionmaker[Session], llm_rows: tuple[str, str]) -> None:
    p, _ = llm_rows
    with transaction(sessions) as session:
        stats = llm_analytics(session, p)
    assert [(s.pipeline, s.model, s.node) for s in stats] == [
        (p, "gpt-a", "label"),
        (p, "gpt-a", "summarize"),
        (p, "gpt-c", "summarize"),
        (p, "local-b", "summarize"),
    ]
    judge, gpt_a, gpt_c, local = stats
    assert gpt_a.purpose is None  # not a grouping key

    assert (gpt_a.calls, gpt_a.attempts, gpt_a.retries, gpt_a.failed_calls) == (4, 7, 3, 1)
    assert gpt_a.error_rate == pytest.approx(1 / 4)
    # tokens: 100 + 120 + 80 = 300 prompt, 20 + 30 + 10 = 60 completion
    assert (gpt_a.prompt_tokens, gpt_a.completion_tokens, gpt_a.total_tokens) == (300, 60, 360)
    # cost: 0.01 + 0.012 + 0.008; the four failed attempts have none
    assert gpt_a.cost_usd == pytest.approx(0.03)
    assert gpt_a.cost_unknown_attempts == 4
    # latencies 50 100 150 200 300 310 320: p50 at position 3 -> 200;
    # p95 at position 0.95 * 6 = 5.7 -> 310 + 10 * 0.7 = 317
    assert gpt_a.latency_p50_ms == pytest.approx(200)
    assert gpt_a.latency_p95_ms == pytest.approx(317)
    assert gpt_a.errors == {"Timeout": 3, "RateLimitError": 1}
    assert list(gpt_a.errors) == ["Timeout", "RateLimitError"]

    # Unknown price is unknown, not free.
    assert local.cost_usd is None and local.cost_unknown_attempts == 2
    assert (local.calls, local.attempts, local.retries, local.failed_calls) == (2, 2, 0, 0)
    assert local.error_rate == 0 and local.errors == {}
    # latencies 10 30: p50 = 20, p95 = 10 + 20 * 0.95 = 29
    assert local.latency_p50_ms == pytest.approx(20)
    assert local.latency_p95_ms == pytest.approx(29)
    assert (local.prompt_tokens, local.completion_tokens, local.total_tokens) == (100, 10, 110)

    # c5 failed on attempt 1 but attempt 2 succeeded: no failed call.
    assert (gpt_c.calls, gpt_c.attempts, gpt_c.retries, gpt_c.failed_calls) == (2, 4, 2, 0)
    assert gpt_c.cost_usd == pytest.approx(0.001) and gpt_c.cost_unknown_attempts == 3
    assert gpt_c.errors == {"APIError": 1, "unknown": 1}
    # latencies 5 7 9 11: p50 = 8; p95 at 2.85 -> 9 + 2 * 0.85 = 10.7
    assert gpt_c.latency_p50_ms == pytest.approx(8)
    assert gpt_c.latency_p95_ms == pytest.approx(10.7)
    assert (gpt_c.prompt_tokens, gpt_c.total_tokens) == (0, 0)

    assert (judge.calls, judge.attempts, judge.total_tokens) == (1, 1, 12)
    assert judge.cost_usd == pytest.approx(0.002)
    assert judge.latency_p50_ms == judge.latency_p95_ms == pytest.approx(400)


def test_llm_analytics_filters_and_groupings(
    sessions: sessionmaker[Session], llm_rows: tuple[str, str]
) -> None:
    p, q = llm_rows
    with transaction(sessions) as session:
        field = llm_analytics(session, p, purpose="field")
        judged = llm_analytics(session, p, purpose="judge", group_by=("purpose",))
        late = llm_analytics(session, p, since=T0 + timedelta(hours=1))
        early = llm_analytics(session, p, until=T0 + timedelta(minutes=3), group_by=("model",))
        naive = llm_analytics(session, p, since=datetime(2026, 2, 1, 11), group_by=())
        models = llm_analytics(session, None, group_by=("model",))
        total = llm_analytics(session, p, group_by=())
        nothing = llm_analytics(session, p, since=T0 + timedelta(days=1))
        others = llm_analytics(session, q)
    assert [s.model for s in field] == ["gpt-a", "gpt-c", "local-b"]
    assert [(s.purpose, s.calls, s.model) for s in judged] == [("judge", 1, None)]
    assert [(s.node, s.calls) for s in late] == [("label", 1)]
    assert [(s.calls, s.total_tokens) for s in naive] == [(1, 12)]  # naive 11:00 is UTC

    # Before 09:03: t1:c1 (1 attempt), t1:c2 (2 attempts) for gpt-a; the rest at 09:00.
    early_by_model = _by_group(early, "model")
    assert (early_by_model[("gpt-a",)].calls, early_by_model[("gpt-a",)].attempts) == (2, 3)
    assert early_by_model[("gpt-a",)].node is None

    # Across pipelines (each test has a database of its own): q's gpt-a call joins p's four
    # field calls and one judge call; 0.03 + 0.002 + 1.0.
    by_model = _by_group(models, "model")
    assert sorted(by_model) == [("gpt-a",), ("gpt-c",), ("local-b",)]
    assert (by_model[("gpt-a",)].calls, by_model[("gpt-a",)].attempts) == (6, 9)
    assert by_model[("gpt-a",)].cost_usd == pytest.approx(1.032)
    assert by_model[("gpt-a",)].pipeline is None

    # One total: 4 + 2 + 2 + 1 = 9 calls; 7 + 2 + 4 + 1 = 14 attempts.
    assert len(total) == 1
    assert (total[0].calls, total[0].attempts, total[0].failed_calls) == (9, 14, 1)
    assert total[0].cost_usd == pytest.approx(0.03 + 0.001 + 0.002)
    assert total[0].cost_unknown_attempts == 4 + 2 + 3
    assert nothing == []
    assert [(s.pipeline, s.calls, s.total_tokens, s.cost_usd) for s in others] == [
        (q, 1, 2000, 1.0)
    ]


def test_llm_analytics_rejects_bad_arguments(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        with pytest.raises(ValueError, match="cannot group LLM calls by 'colour'"):
            llm_analytics(session, group_by=("model", "colour"))
        with pytest.raises(ValueError, match="unknown purpose 'chat'"):
            llm_analytics(session, purpose="chat")


def test_llm_analytics_matches_a_recount(sessions: sessionmaker[Session]) -> None:
    """Random attempts (ties, missing tokens and prices, failures) against a plain recount."""
    rng = random.Random(20260201)
    pipelines = [_name("rnd"), _name("rnd")]
    rows: list[dict[str, Any]] = []
    for n in range(120):
        pipeline = rng.choice(pipelines)
        model = rng.choice(["gpt-a", "gpt-b", "local"])
        node = rng.choice(["draft", "label"])
        use = rng.choice(["field", "field", "judge"])
        attempts = rng.choice([1, 1, 1, 2, 3])
        final = rng.choice(["ok", "ok", "ok", "failed"])
        for attempt in range(1, attempts + 1):
            outcome = final if attempt == attempts else "retry"
            rows.append(
                call(
                    pipeline,
                    f"t{n % 17}",
                    f"call-{n}",
                    attempt,
                    model=model,
                    node=node,
                    purpose=use,
                    outcome=outcome,
                    prompt=rng.choice([None, rng.randrange(1, 500)]),
                    completion=rng.choice([None, rng.randrange(1, 200)]),
                    cost=None if model == "local" else rng.choice([None, rng.random() / 100]),
                    latency=float(rng.choice([10, 20, 20, 35.5, rng.uniform(1, 5000)])),
                    error=None if outcome == "ok" else rng.choice(["Timeout", "APIError", None]),
                    at=T0 + timedelta(seconds=rng.randrange(0, 7200)),
                )
            )
    insert_rows(sessions, LlmCallRow, rows)
    since = T0 + timedelta(minutes=30)

    for pipeline, group_by, purpose, window in [
        (pipelines[0], ("pipeline", "model", "node"), None, None),
        (pipelines[1], ("model",), "field", None),
        (pipelines[0], ("node", "purpose"), "judge", since),
        (pipelines[1], (), None, since),
    ]:
        with transaction(sessions) as session:
            got = llm_analytics(session, pipeline, since=window, purpose=purpose, group_by=group_by)
        chosen = [
            r
            for r in rows
            if r["pipeline_name"] == pipeline
            and (purpose is None or r["purpose"] == purpose)
            and (window is None or r["at"] >= window)
        ]
        expected = _recount(chosen, group_by)
        assert [tuple(getattr(s, k) for k in group_by) for s in got] == sorted(expected)
        for stats in got:
            want = expected[tuple(getattr(stats, k) for k in group_by)]
            for name, value in want.items():
                assert getattr(stats, name) == pytest.approx(value), (group_by, name)


_KEY_COLUMN = {"pipeline": "pipeline_name", "model": "model", "node": "node", "purpose": "purpose"}


def _recount(rows: list[dict[str, Any]], group_by: Sequence[str]) -> dict[tuple[Any, ...], Any]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[_KEY_COLUMN[k]] for k in group_by)].append(r)
    out = {}
    for key, members in groups.items():
        last: dict[tuple[str, str], dict[str, Any]] = {}
        for r in members:
            ident = (r["workflow_id"], r["call_id"])
            if ident not in last or r["attempt"] > last[ident]["attempt"]:
                last[ident] = r
        costs = [r["cost_usd"] for r in members if r["cost_usd"] is not None]
        latencies = sorted(r["latency_ms"] for r in members)
        if len(latencies) > 1:
            cuts = statistics.quantiles(latencies, n=100, method="inclusive")
            p50, p95 = cuts[49], cuts[94]
        else:
            p50 = p95 = latencies[0]
        failed = sum(1 for r in last.values() if r["outcome"] == "failed")
        prompt = sum(r["prompt_tokens"] or 0 for r in members)
        completion = sum(r["completion_tokens"] or 0 for r in members)
        errors = Counter(r["error_class"] or "unknown" for r in members if r["outcome"] != "ok")
        out[key] = {
            "calls": len(last),
            "attempts": len(members),
            "retries": len(members) - len(last),
            "failed_calls": failed,
            "error_rate": failed / len(last),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "cost_usd": math.fsum(costs) if costs else None,
            "cost_unknown_attempts": len(members) - len(costs),
            "latency_p50_ms": p50,
            "latency_p95_ms": p95,
            "errors": dict(errors),
        }
    return out


def test_unknown_pipeline_names_the_known_ones(sessions: sessionmaker[Session]) -> None:
    known = _name("applied")
    with transaction(sessions) as session:
        session.execute(
            insert(PipelineRow),
            [{"name": known, "status": "Active", "created_at": T0, "updated_at": T0}],
        )
    with transaction(sessions) as session:
        # Applied but nothing recorded yet: no data, not an error.
        assert llm_analytics(session, known) == []
        assert evaluation_analytics(session, known) == []
        assert agreement(session, known) == []
        for query in (llm_analytics, evaluation_analytics, agreement):
            with pytest.raises(UnknownPipeline, match=f"no pipeline named 'nope'.*{known}"):
                query(session, "nope")


# --------------------------------------------------------------------------- Evaluation Analytics


@pytest.fixture
def eval_rows(sessions: sessionmaker[Session]) -> str:
    p = _name("eval")
    h = timedelta(hours=1)
    human, programmatic = EvaluationKind.HUMAN, EvaluationKind.PROGRAMMATIC
    rows = [
        # tone @ label by the judge (boolean): labels, 1/0 scores, one error.
        result(p, "t1", "tone", label="true", score=1, passed=True),
        result(p, "t2", "tone", label="false", score=0, passed=False, reasoning="rude"),
        result(p, "t3", "tone", label="true", score=1, passed=True),
        result(p, "t4", "tone", error="timeout"),
        # quality @ label by the judge (ratings 1..5, passing at 4), two versions.
        result(p, "t1", "quality", score=1, passed=False, at=T0),
        result(p, "t2", "quality", score=2, passed=False, at=T0 + 2 * h, reasoning="thin"),
        result(p, "t3", "quality", score=2, passed=False, at=T0 + h),
        result(p, "t4", "quality", score=4, passed=True, version="v2"),
        result(p, "t5", "quality", score=5, passed=True, version="v2"),
        # format @ label, programmatic.
        result(p, "t1", "format", kind=programmatic, score=1, passed=True),
        result(p, "t2", "format", kind=programmatic, score=1, passed=True),
        result(p, "t3", "format", kind=programmatic, score=0, passed=False),
        # tone @ check by a human: no verdict (a rating without a threshold).
        result(p, "t1", "tone", node="check", kind=human, label="true", score=1),
        result(p, "t2", "tone", node="check", kind=human, label="true", score=1),
        # Another pipeline with the same criterion.
        result(_name("other"), "t1", "tone", label="false", score=0, passed=False),
    ]
    insert_rows(sessions, EvaluationResultRow, rows)
    return p


def test_evaluation_analytics_by_hand(sessions: sessionmaker[Session], eval_rows: str) -> None:
    h = timedelta(hours=1)
    with transaction(sessions) as session:
        stats = evaluation_analytics(session, eval_rows, bins=4, limit=2)
    assert [(s.criterion, s.node, s.kind) for s in stats] == [
        ("format", "label", EvaluationKind.PROGRAMMATIC),
        ("quality", "label", EvaluationKind.LLM_JUDGE),
        ("tone", "check", EvaluationKind.HUMAN),
        ("tone", "label", EvaluationKind.LLM_JUDGE),
    ]
    fmt, quality, human_tone, tone = stats

    # tone: 4 results, 3 with a verdict, 2 passed; scores 1 0 1: mean 2/3, median 1.
    assert (tone.results, tone.with_verdict, tone.passed, tone.errors) == (4, 3, 2, 1)
    assert tone.pass_rate == pytest.approx(2 / 3)
    assert tone.scored == 3
    assert tone.mean_score == pytest.approx(2 / 3) and tone.median_score == 1
    assert tone.labels == {"true": 2, "false": 1}
    assert tone.histogram == []  # labelled verdicts: the labels are the distribution
    assert [(f.workflow_id, f.label, f.reasoning) for f in tone.failing] == [
        (f"{eval_rows}/t2", "false", "rude")
    ]
    assert tone.versions == ["v1"]

    # quality: scores 1 2 2 4 5, 2 of 5 pass; mean 14 / 5 = 2.8, median 2.
    assert (quality.results, quality.with_verdict, quality.passed) == (5, 5, 2)
    assert quality.pass_rate == pytest.approx(0.4)
    assert quality.mean_score == pytest.approx(2.8) and quality.median_score == 2
    # 4 bins over 1..5, edges 1 2 3 4 5: [1,2) 1 | [2,3) 2 2 | [3,4) - | [4,5] 4 5
    assert [(b.low, b.high, b.count) for b in quality.histogram] == [
        (1, 2, 1),
        (2, 3, 2),
        (3, 4, 0),
        (4, 5, 2),
    ]
    assert quality.labels == {} and quality.errors == 0
    assert quality.versions == ["v1", "v2"]
    # Three failures; the newest two (t2 at +2h, t3 at +1h), newest first.
    assert [(f.workflow_id, f.score) for f in quality.failing] == [
        (f"{eval_rows}/t2", 2),
        (f"{eval_rows}/t3", 2),
    ]
    assert quality.failing[0].reasoning == "thin" and quality.failing[0].at == T0 + 2 * h

    assert (fmt.results, fmt.passed, fmt.pass_rate) == (3, 2, pytest.approx(2 / 3))
    assert [f.workflow_id for f in fmt.failing] == [f"{eval_rows}/t3"]

    # No verdicts: no pass rate (not 0%).
    assert (human_tone.results, human_tone.with_verdict, human_tone.pass_rate) == (2, 0, None)
    assert human_tone.labels == {"true": 2} and human_tone.failing == []


def test_evaluation_analytics_filters(sessions: sessionmaker[Session], eval_rows: str) -> None:
    with transaction(sessions) as session:
        quality = evaluation_analytics(session, eval_rows, criterion="quality")
        check = evaluation_analytics(session, eval_rows, node="check")
        v2 = evaluation_analytics(session, eval_rows, criterion="quality", criterion_version="v2")
        judges = evaluation_analytics(session, eval_rows, kind="llm_judge", limit=0)
        absent = evaluation_analytics(session, eval_rows, criterion="nothing")
    assert [(s.criterion, s.results) for s in quality] == [("quality", 5)]
    assert len(quality[0].failing) == 3  # default limit is larger
    # Whole-number scores 1 2 2 4 5 span 5 values (<= 10 bins): one bin per value, 1 to 5.
    assert [(b.low, b.high, b.count) for b in quality[0].histogram] == [
        (0.5, 1.5, 1),
        (1.5, 2.5, 2),
        (2.5, 3.5, 0),
        (3.5, 4.5, 1),
        (4.5, 5.5, 1),
    ]
    assert [(s.criterion, s.node) for s in check] == [("tone", "check")]
    assert [(s.results, s.pass_rate, s.mean_score) for s in v2] == [(2, 1.0, 4.5)]
    assert [(s.criterion, s.failing) for s in judges] == [("quality", []), ("tone", [])]
    assert absent == []
    with transaction(sessions) as session, pytest.raises(ValueError):
        evaluation_analytics(session, eval_rows, bins=0)


# --------------------------------------------------------------------------- agreement


@pytest.fixture
def paired_rows(sessions: sessionmaker[Session]) -> str:
    p = _name("agree")
    human, programmatic = EvaluationKind.HUMAN, EvaluationKind.PROGRAMMATIC
    h = timedelta(hours=1)
    judge_labels = ["true"] * 6 + ["false"] * 4
    human_labels = ["true"] * 5 + ["false"] * 4 + ["true"]
    rows = []
    for i, (j, hu) in enumerate(zip(judge_labels, human_labels, strict=True)):
        rows.append(result(p, f"t{i}", "tone", label=j, score=float(j == "true"), at=T0 + h))
        rated = float(hu == "true")
        rows.append(result(p, f"t{i}", "tone", node="check", kind=human, label=hu, score=rated))
    rows += [
        # t0: an older judge version said "false"; the latest (above, "true") counts.
        result(p, "t0", "tone", version="v0", label="false", score=0, at=T0),
        # t1: two human ratings on two nodes; the latest (at +2h, "true") counts.
        result(p, "t1", "tone", node="review", kind=human, label="false", at=T0 - h),
        # Only one side: no pair.
        result(p, "t10", "tone", label="true"),
        result(p, "t11", "tone", node="check", kind=human, label="true"),
        # The judge failed: a pair with nothing to compare.
        result(p, "t12", "tone", error="timeout"),
        result(p, "t12", "tone", node="check", kind=human, label="false"),
        # Programmatic results never pair.
        result(p, "t5", "tone", node="x", kind=programmatic, label="true", score=1),
    ]
    # quality, numeric: judge 1 2 2 3.6 against human 1 3 2 4.
    for i, (judged, rated_as) in enumerate(zip([1, 2, 2, 3.6], [1, 3, 2, 4], strict=True)):
        rows.append(result(p, f"q{i}", "quality", score=judged))
        rows.append(result(p, f"q{i}", "quality", node="check", kind=human, score=rated_as))
    # Another pipeline: same task keys and criterion, opposite labels.
    other = _name("other")
    rows.append(result(other, "t9", "tone", label="false"))
    rows.append(result(other, "t9", "tone", node="check", kind=human, label="true"))
    insert_rows(sessions, EvaluationResultRow, rows)
    return p


def test_agreement_by_hand(sessions: sessionmaker[Session], paired_rows: str) -> None:
    p = paired_rows
    with transaction(sessions) as session:
        stats = agreement(session, p)
    assert [s.criterion for s in stats] == ["quality", "tone"]
    quality, tone = stats

    # tone: the 10-pair set. Agree except t5 (true/false) and t9 (false/true): po = 0.8.
    # judge 6 true 4 false, human 6 true 4 false: pe = .36 + .16 = .52;
    # kappa = (0.8 - 0.52) / 0.48 = 7/12.
    assert (tone.pairs, tone.label_pairs, tone.numeric_pairs, tone.incomparable) == (10, 10, 0, 1)
    assert tone.percent_agreement == pytest.approx(0.8)
    assert tone.kappa == pytest.approx(7 / 12)
    assert tone.confusion == {"false": {"false": 3, "true": 1}, "true": {"false": 1, "true": 5}}
    assert tone.mean_absolute_error is None and tone.spearman is None
    assert tone.disagreements == 2
    assert [(d.workflow_id, d.judge_label, d.human_label) for d in tone.disagreeing] == [
        (f"{p}/t5", "true", "false"),
        (f"{p}/t9", "false", "true"),
    ]
    assert {(d.judge_node, d.human_node, d.difference) for d in tone.disagreeing} == {
        ("label", "check", None)
    }

    # quality: differences 0, -1, 0, -0.4; MAE = 1.4 / 4 = 0.35.
    # ranks judge 1 2.5 2.5 4, human 1 3 2 4: spearman = sqrt(0.9) (see test_stats).
    assert (quality.pairs, quality.numeric_pairs, quality.label_pairs) == (4, 4, 0)
    assert quality.mean_absolute_error == pytest.approx(0.35)
    assert quality.spearman == pytest.approx(math.sqrt(0.9))
    assert quality.kappa is None and quality.percent_agreement is None
    # Tolerance 0.5: only q1 (|-1| > 0.5).
    assert quality.tolerance == 0.5
    assert [(d.workflow_id, d.judge_score, d.human_score) for d in quality.disagreeing] == [
        (f"{p}/q1", 2, 3)
    ]
    assert quality.disagreeing[0].difference == pytest.approx(-1)


def test_agreement_tolerance_limit_and_criterion(
    sessions: sessionmaker[Session], paired_rows: str
) -> None:
    p = paired_rows
    with transaction(sessions) as session:
        strict = agreement(session, p, "quality", tolerance=0.3)
        loose = agreement(session, p, "quality", tolerance=1.0)
        capped = agreement(session, p, "quality", tolerance=0, limit=1)
        none = agreement(session, p, "missing")
    # Tolerance 0.3: q1 (1.0) then q3 (0.4), largest difference first.
    assert [d.workflow_id for d in strict[0].disagreeing] == [f"{p}/q1", f"{p}/q3"]
    assert strict[0].disagreeing[1].difference == pytest.approx(-0.4)
    assert loose[0].disagreements == 0 and loose[0].disagreeing == []
    assert (capped[0].disagreements, len(capped[0].disagreeing)) == (2, 1)
    assert none == []
    with transaction(sessions) as session, pytest.raises(ValueError):
        agreement(session, p, tolerance=-1)
