"""``starter.py analytics llm|eval|agreement`` as operators run them: a real process against a
store (SQLite and, when configured, PostgreSQL) holding hand-made rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.models import EvaluationResultRow, LlmCallRow, PipelineRow
from tests.store.test_analytics import call, result
from workflows.messages import EvaluationKind

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def run(url: str, *args: str) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), "analytics", *args],
        cwd=ROOT,
        env={**os.environ, "CONVEYOR_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def store(db_url: str, sessions: sessionmaker[Session]) -> tuple[str, str]:
    """A store with one pipeline's LLM calls and evaluation results; ``(url, pipeline)``."""
    p = f"cli-{uuid.uuid4().hex[:8]}"
    human = EvaluationKind.HUMAN
    with transaction(sessions) as session:
        session.execute(
            insert(PipelineRow),
            [{"name": p, "status": "Active", "created_at": T0, "updated_at": T0}],
        )
        session.execute(
            insert(LlmCallRow),
            [
                call(p, "t1", "c1", prompt=100, completion=20, cost=0.01, latency=100),
                call(p, "t1", "c2", 1, outcome="retry", error="Timeout", latency=50),
                call(p, "t1", "c2", 2, prompt=120, completion=30, cost=0.02, latency=200),
                call(p, "t2", "c3", outcome="failed", error="Timeout", latency=300),
                call(p, "t2", "c4", model="local", prompt=5, completion=5, latency=40),
            ],
        )
        rows: list[dict[str, Any]] = [
            result(p, "t1", "tone", label="true", score=1, passed=True),
            result(p, "t2", "tone", label="false", score=0, passed=False, reasoning="curt"),
            result(p, "t3", "tone", label="true", score=1, passed=True),
            result(p, "t1", "tone", node="check", kind=human, label="true"),
            result(p, "t2", "tone", node="check", kind=human, label="true"),
            result(p, "t3", "tone", node="check", kind=human, label="true"),
        ]
        session.execute(insert(EvaluationResultRow), rows)
    return db_url, p


def test_llm_table_and_json(store: tuple[str, str]) -> None:
    url, p = store
    code, out, err = run(url, "llm", "--pipeline", p, "--json")
    assert code == 0, err
    stats = {s["model"]: s for s in json.loads(out)}
    # gpt-a: calls t1:c1, t1:c2, t2:c3 (failed); attempts 4; cost 0.01 + 0.02.
    gpt = stats["gpt-a"]
    assert (gpt["calls"], gpt["attempts"], gpt["retries"], gpt["failed_calls"]) == (3, 4, 1, 1)
    assert gpt["cost_usd"] == pytest.approx(0.03) and gpt["cost_unknown_attempts"] == 2
    assert (gpt["prompt_tokens"], gpt["completion_tokens"], gpt["total_tokens"]) == (220, 50, 270)
    # latencies 50 100 200 300: p50 = 150; p95 at 2.85 -> 200 + 100 * 0.85 = 285
    assert gpt["latency_p50_ms"] == pytest.approx(150)
    assert gpt["latency_p95_ms"] == pytest.approx(285)
    assert gpt["errors"] == {"Timeout": 2}
    assert stats["local"]["cost_usd"] is None  # JSON null: unknown, not $0

    code, out, err = run(url, "llm", "--pipeline", p)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["pipeline", "model", "node", "calls"]
    gpt_line = next(line for line in lines if " gpt-a " in line)
    local_line = next(line for line in lines if " local " in line)
    assert "$0.0300" in gpt_line and "33.3%" in gpt_line and "285 ms" in gpt_line
    assert "unknown" in local_line and "$" not in local_line
    assert "Timeout 2" in out

    code, out, _ = run(url, "llm", "--pipeline", p, "--since", "2030-01-01", "--purpose", "field")
    assert code == 0 and "(no LLM calls)" in out


def test_eval_and_agreement(store: tuple[str, str]) -> None:
    url, p = store
    code, out, err = run(url, "eval", "--pipeline", p, "--criterion", "tone")
    assert code == 0, err
    judge_line = next(line for line in out.splitlines() if "llm_judge" in line)
    # 3 results, 2 of 3 passed
    assert judge_line.split()[:7] == ["tone", "label", "llm_judge", "3", "3", "2", "66.7%"]
    assert f"{p}/t2" in out and "curt" in out
    assert "true 2, false 1" in out

    code, out, err = run(url, "eval", "--pipeline", p, "--node", "check", "--json")
    assert code == 0, err
    [human] = json.loads(out)
    assert (human["kind"], human["results"], human["pass_rate"]) == ("human", 3, None)

    # Pairs: t1 true/true, t2 false/true, t3 true/true -> agreement 2/3. Human always "true":
    # pe = (2/3 * 1) + (1/3 * 0) = 2/3, po = 2/3 -> kappa 0.
    code, out, err = run(url, "agreement", "--pipeline", p, "--json")
    assert code == 0, err
    [tone] = json.loads(out)
    assert tone["pairs"] == 3 and tone["percent_agreement"] == pytest.approx(2 / 3)
    assert tone["kappa"] == pytest.approx(0)
    assert [d["workflow_id"] for d in tone["disagreeing"]] == [f"{p}/t2"]

    code, out, err = run(url, "agreement", "--pipeline", p)
    assert code == 0, err
    assert out.splitlines()[1].split() == ["tone", "3", "66.7%", "0.000", "-", "-", "1", "0"]
    assert f"{p}/t2" in out and "false" in out


def test_unknown_pipeline_and_bad_arguments(store: tuple[str, str]) -> None:
    url, p = store
    code, _, err = run(url, "eval", "--pipeline", "nope")
    assert code == 3
    assert "no pipeline named 'nope'" in err and p in err
    code, _, err = run(url, "llm", "--group-by", "colour")
    assert code == 3 and "cannot group by colour" in err  # usage errors are bad input: 3
