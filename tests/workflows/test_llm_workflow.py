"""LLM nodes on a real worker and dev server, against a fake OpenAI-compatible server.

Each scenario checks what the task shows (status, node, reason) and what LLM Analytics gets: the
``llm_calls`` rows the activity writes into the worker's store, one per attempt. Retries follow
the real ``LLM_RETRY`` policy (1 s, then 2 s…), so scenarios are kept to a few attempts.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.llm import MAX_OUTPUT_ATTEMPTS, LlmSettings
from conveyor.client import ConveyorClient, TaskClient
from store.models import LlmCallRow
from tests.support.actors import eventually, nodes, rid
from tests.support.fake_openai import FakeOpenAI, delay, reply, reply_json, status
from worker import build_worker
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import NodeStatus, RetryFailed, TaskStatus, TaskView

MODEL = "openai/fake-model"


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    """A fake provider of this test's own: its script and requests are this test's alone."""
    with FakeOpenAI() as server:
        yield server


def classify_pipeline(
    api_base: str,
    *,
    structured: bool = False,
    score: bool = False,
    name: str = "llm-calls",
    evaluators: list[dict[str, Any]] | None = None,
) -> Pipeline:
    """start -> classify (an LLM node: label, optionally a score in the same call) -> end."""
    spec = {
        "model": MODEL,
        "system": "You sort messages.",
        "prompt": "Classify: {{ text }}",
        "api_base": api_base,
        "structured_output": structured,
    }
    fields: list[dict[str, Any]] = [
        {"name": "text", "type": "long_text", "source": "predefined"},
        {
            "name": "label",
            "type": "select",
            "options": ["spam", "ham"],
            "source": "llm",
            "llm": spec,
        },
    ]
    if score:
        fields.append(
            {"name": "score", "type": "rating", "min": 1, "max": 5, "source": "llm", "llm": spec}
        )
    return validate_pipeline(
        {
            "name": name,
            "nodes": [
                {"name": "start", "kind": "start", "next": ["classify"]},
                {
                    "name": "classify",
                    "kind": "subtask",
                    "fields": fields,
                    "evaluators": evaluators or [],
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
        }
    )


async def start(conveyor: ConveyorClient, pipeline: Pipeline) -> TaskClient:
    created = await conveyor.create_task(pipeline, f"t-{rid()}", {"text": "Buy cheap pills"})
    return conveyor.task(created.workflow_id)


def calls(sessions: sessionmaker[Session], workflow_id: str) -> list[tuple[int, str, str | None]]:
    """``(attempt, outcome, error_class)`` of every recorded attempt of the task, in order."""
    with sessions() as session:
        rows = session.scalars(
            select(LlmCallRow).where(LlmCallRow.workflow_id == workflow_id).order_by(LlmCallRow.id)
        ).all()
        return [(r.attempt, r.outcome, r.error_class) for r in rows]


def call_rows(sessions: sessionmaker[Session], workflow_id: str) -> list[LlmCallRow]:
    with sessions() as session:
        return list(
            session.scalars(
                select(LlmCallRow)
                .where(LlmCallRow.workflow_id == workflow_id)
                .order_by(LlmCallRow.id)
            ).all()
        )


async def finished(task: TaskClient) -> TaskView:
    view = await task.result()
    assert view.status == TaskStatus.FINISHED
    return view


async def failed(task: TaskClient, timeout: float = 20) -> TaskView:
    return await eventually(task, lambda v: v.status == TaskStatus.FAILED, timeout=timeout)


# --------------------------------------------------------------------------- success


async def test_success_fills_the_node_and_records_one_call(
    conveyor: ConveyorClient, llm: FakeOpenAI, store_sessions: sessionmaker[Session]
) -> None:
    llm.script(reply("ham", usage={"prompt_tokens": 21, "completion_tokens": 1}))
    task = await start(conveyor, classify_pipeline(llm.base_url))

    view = await finished(task)

    assert nodes(view)["classify"].values == {"label": "ham"}
    assert nodes(view)["classify"].status == NodeStatus.FINISHED
    [row] = call_rows(store_sessions, task.workflow_id)
    assert (row.attempt, row.outcome, row.error_class) == (1, "ok", None)
    assert (row.pipeline_name, row.node, row.purpose) == ("llm-calls", "classify", "field")
    assert (row.model, row.fields) == (MODEL, ["label"])
    assert (row.prompt_tokens, row.completion_tokens, row.cost_usd) == (21, 1, None)
    assert row.latency_ms > 0
    assert row.call_id


async def test_structured_output_sends_a_schema(
    conveyor: ConveyorClient, llm: FakeOpenAI, store_sessions: sessionmaker[Session]
) -> None:
    llm.script(reply_json({"label": "spam", "score": 5}))
    task = await start(conveyor, classify_pipeline(llm.base_url, structured=True, score=True))

    view = await finished(task)

    assert nodes(view)["classify"].values == {"label": "spam", "score": 5}
    response_format = llm.last_request.response_format
    assert response_format["type"] == "json_schema"
    schema = response_format["json_schema"]["schema"]
    assert schema["required"] == ["label", "score"]
    assert schema["properties"]["label"]["enum"] == ["spam", "ham"]
    assert calls(store_sessions, task.workflow_id) == [(1, "ok", None)]


async def test_judge_calls_are_recorded_next_to_field_calls(
    conveyor: ConveyorClient, llm: FakeOpenAI, store_sessions: sessionmaker[Session]
) -> None:
    pipeline = classify_pipeline(
        llm.base_url,
        name="llm-judged",
        evaluators=[
            {
                "name": "right_label",
                "kind": "llm_judge",
                "fields": ["label"],
                "judge": {
                    "model": "openai/fake-judge",
                    "api_base": llm.base_url,
                    "prompt": "Is {{ label }} right for {{ text }}?",
                    "output": "rating",
                    "pass_threshold": 4,
                },
            }
        ],
    )
    llm.script(reply("spam"), status(500), reply_json({"verdict": 4}))
    task = await start(conveyor, pipeline)

    view = await eventually(
        task,
        lambda v: any(
            r.criterion == "right_label" for r in nodes(v)["classify"].evaluations.values()
        ),
        timeout=20,
    )

    [record] = nodes(view)["classify"].evaluations.values()
    assert (record.score, record.passed, record.actor) == (4.0, True, "llm:openai/fake-judge")
    rows = call_rows(store_sessions, task.workflow_id)
    assert [(r.purpose, r.attempt, r.outcome, r.error_class) for r in rows] == [
        ("field", 1, "ok", None),
        ("judge", 1, "retry", "InternalServerError"),
        ("judge", 2, "ok", None),
    ]
    assert rows[1].model == "openai/fake-judge"
    assert rows[1].fields == ["label"]


# --------------------------------------------------------------------------- transient errors


async def test_rate_limit_waits_for_retry_after_then_succeeds(
    conveyor: ConveyorClient, llm: FakeOpenAI, store_sessions: sessionmaker[Session]
) -> None:
    llm.script(status(429, headers={"Retry-After": "1"}), reply("spam"))
    task = await start(conveyor, classify_pipeline(llm.base_url))

    view = await finished(task)

    assert nodes(view)["classify"].values == {"label": "spam"}
    assert len(llm.requests) == 2
    assert calls(store_sessions, task.workflow_id) == [
        (1, "retry", "RateLimitError"),
        (2, "ok", None),
    ]


async def test_server_error_retries_then_succeeds(
    conveyor: ConveyorClient, llm: FakeOpenAI, store_sessions: sessionmaker[Session]
) -> None:
    llm.script(status(500), reply("ham"))
    task = await start(conveyor, classify_pipeline(llm.base_url))

    view = await finished(task)

    assert nodes(view)["classify"].values == {"label": "ham"}
    assert calls(store_sessions, task.workflow_id) == [
        (1, "retry", "InternalServerError"),
        (2, "ok", None),
    ]


# --------------------------------------------------------------------------- failures


async def test_bad_key_fails_the_task_until_an_admin_retries(
    conveyor: ConveyorClient, llm: FakeOpenAI, store_sessions: sessionmaker[Session]
) -> None:
    llm.script(status(401, {"error": {"message": "Incorrect API key provided: test-key"}}))
    task = await start(conveyor, classify_pipeline(llm.base_url))

    view = await failed(task)

    reason = view.hold_reason or ""
    assert "classify" in reason and "AuthenticationError" in reason
    assert "set the provider's API key" in reason  # names the fix
    assert "test-key" not in reason
    node = nodes(view)["classify"]
    assert node.error is not None and "AuthenticationError" in node.error
    assert len(llm.requests) == 1  # not retried: it cannot succeed
    assert calls(store_sessions, task.workflow_id) == [(1, "failed", "AuthenticationError")]

    llm.script(reply("ham"))  # the key is fixed
    await task.send(RetryFailed(request_id=rid(), admin="root", reason="key fixed"))

    view = await finished(task)
    assert nodes(view)["classify"].values == {"label": "ham"}
    assert nodes(view)["classify"].error is None
    # The retry is a new call: its first attempt is recorded alongside the failed one.
    rows = call_rows(store_sessions, task.workflow_id)
    assert [(r.attempt, r.outcome, r.error_class) for r in rows] == [
        (1, "failed", "AuthenticationError"),
        (1, "ok", None),
    ]
    assert rows[0].call_id != rows[1].call_id


async def test_malformed_output_fails_after_the_last_output_attempt(
    conveyor: ConveyorClient, llm: FakeOpenAI, store_sessions: sessionmaker[Session]
) -> None:
    llm.script(*[reply("probably junk mail")] * MAX_OUTPUT_ATTEMPTS)
    task = await start(conveyor, classify_pipeline(llm.base_url))

    view = await failed(task)

    reason = view.hold_reason or ""
    assert "LlmOutputInvalid" in reason
    assert f"failed validation on attempt {MAX_OUTPUT_ATTEMPTS} (giving up)" in reason
    assert "is not one of" in reason  # says what was wrong
    assert nodes(view)["classify"].error is not None
    assert len(llm.requests) == MAX_OUTPUT_ATTEMPTS
    assert calls(store_sessions, task.workflow_id) == [
        *[(n, "retry", "LlmOutputInvalid") for n in range(1, MAX_OUTPUT_ATTEMPTS)],
        (MAX_OUTPUT_ATTEMPTS, "failed", "LlmOutputInvalid"),
    ]


# --------------------------------------------------------------------------- timeouts


@pytest.fixture
async def impatient(
    client: Client, store_sessions: sessionmaker[Session]
) -> AsyncIterator[ConveyorClient]:
    """Like ``conveyor``, but the worker gives the provider 1 s per call."""
    task_queue = f"test-{uuid.uuid4().hex[:8]}"
    worker = build_worker(
        client,
        task_queue,
        sessions=store_sessions,
        llm=LlmSettings(api_key="test-key", timeout_seconds=1.0),
    )
    async with worker:
        yield ConveyorClient(client, task_queue, update_timeout=20)


async def test_timeout_is_an_attempt_then_success(
    impatient: ConveyorClient, llm: FakeOpenAI, store_sessions: sessionmaker[Session]
) -> None:
    llm.script(delay(3.0, reply("spam")), reply("ham"))
    task = await start(impatient, classify_pipeline(llm.base_url))

    view = await finished(task)

    assert nodes(view)["classify"].values == {"label": "ham"}
    rows = call_rows(store_sessions, task.workflow_id)
    assert [(r.attempt, r.outcome, r.error_class) for r in rows] == [
        (1, "retry", "Timeout"),
        (2, "ok", None),
    ]
    assert rows[0].latency_ms >= 900  # the wait counts as latency
    assert rows[0].prompt_tokens is None


# --------------------------------------------------------------------------- analytics


async def test_llm_analytics_match_the_calls_actually_made(
    conveyor: ConveyorClient, llm: FakeOpenAI, store_sessions: sessionmaker[Session]
) -> None:
    """Three tasks (clean, 500 then success, 401): the aggregates equal what the server saw."""
    from store.analytics import llm_analytics

    pipeline = classify_pipeline(llm.base_url, name=f"llm-analytics-{rid()[:8]}")
    llm.script(reply("spam", usage={"prompt_tokens": 10, "completion_tokens": 4}))
    await finished(await start(conveyor, pipeline))
    llm.script(status(500), reply("ham", usage={"prompt_tokens": 12, "completion_tokens": 5}))
    await finished(await start(conveyor, pipeline))
    llm.script(status(401, {"error": {"message": "bad key"}}))
    await failed(await start(conveyor, pipeline))

    with store_sessions() as session:
        (stats,) = llm_analytics(session, pipeline.name)
    assert (stats.pipeline, stats.model, stats.node) == (pipeline.name, MODEL, "classify")
    assert stats.attempts == len(llm.requests) == 4
    assert (stats.calls, stats.retries, stats.failed_calls) == (3, 1, 1)
    assert stats.error_rate == 1 / 3
    assert (stats.prompt_tokens, stats.completion_tokens) == (10 + 12, 4 + 5)
    assert stats.cost_usd is None and stats.cost_unknown_attempts == 4  # unpriced, not $0
    assert stats.errors == {"InternalServerError": 1, "AuthenticationError": 1}
    assert stats.latency_p50_ms is not None and stats.latency_p50_ms > 0
