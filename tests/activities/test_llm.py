"""The LLM activities against a local fake OpenAI-compatible server: real litellm, no internet.

Covers filling fields (plain, JSON mode, structured output), LLM judges, and the ``llm_calls``
row every attempt writes (on SQLite, and PostgreSQL when configured).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.llm import (
    INVALID_PROMPT_TEMPLATE,
    LLM_OUTPUT_INVALID,
    MAX_OUTPUT_ATTEMPTS,
    OFFLINE_LABEL,
    OFFLINE_MODEL,
    LlmActivities,
    LlmSettings,
    json_schema_for,
    offline_answer,
    run_judge,
    supports_structured_output,
)
from store.db import make_engine, session_factory
from store.models import LlmCallRow
from tests.support.fake_openai import FakeOpenAI, delay, reply, reply_json, status
from workflows.forms import validate_value
from workflows.graph import (
    EvaluatorKind,
    EvaluatorSpec,
    FieldSource,
    FieldSpec,
    FieldType,
    JudgeOutput,
    JudgeSpec,
    LlmSpec,
)
from workflows.messages import (
    EvaluationKind,
    EvaluationRecord,
    JudgeRequest,
    LlmRequest,
    LlmResponse,
)

KEY = "test-key"
MODEL = "openai/fake-model"
WORKFLOW_ID = "spam-filter/t-1"


def text_field(name: str = "summary", **kw: Any) -> FieldSpec:
    return FieldSpec(name=name, type=FieldType.LONG_TEXT, source=FieldSource.LLM, **kw)


def select_field(name: str = "label", options: tuple[str, ...] = ("spam", "ham")) -> FieldSpec:
    return FieldSpec(name=name, type=FieldType.SELECT, source=FieldSource.LLM, options=[*options])


def rating_field(name: str = "score") -> FieldSpec:
    return FieldSpec(name=name, type=FieldType.RATING, source=FieldSource.LLM, min=1, max=5)


def request(
    *fields: FieldSpec,
    prompt: str = "Classify: {{ text }}",
    system: str = "",
    model: str = MODEL,
    context: dict[str, Any] | None = None,
    structured_output: bool = False,
    call_id: str = "",
) -> LlmRequest:
    return LlmRequest(
        workflow_id=WORKFLOW_ID,
        node="classify",
        spec=LlmSpec(
            model=model,
            prompt=prompt,
            system=system,
            max_tokens=64,
            structured_output=structured_output,
        ),
        fields=list(fields),
        context={"text": "Buy cheap pills now"} if context is None else context,
        call_id=call_id,
    )


def environment(attempt: int = 1, retry_policy: RetryPolicy | None = None) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, attempt=attempt, activity_id="7", retry_policy=retry_policy
    )
    return env


async def run(
    acts: LlmActivities,
    req: LlmRequest,
    *,
    attempt: int = 1,
    retry_policy: RetryPolicy | None = None,
) -> LlmResponse:
    result: LlmResponse = await environment(attempt, retry_policy).run(acts.call_llm, req)
    return result


async def run_error(
    acts: LlmActivities,
    req: LlmRequest,
    *,
    attempt: int = 1,
    retry_policy: RetryPolicy | None = None,
) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        await run(acts, req, attempt=attempt, retry_policy=retry_policy)
    return info.value


def assert_no_key(err: ApplicationError) -> None:
    assert KEY not in str(err)
    assert KEY not in repr(err.details)
    assert err.__cause__ is None  # the provider's exception (which may quote the key) is dropped


@pytest.fixture
def srv() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def acts(srv: FakeOpenAI) -> LlmActivities:
    return LlmActivities(LlmSettings(api_base=srv.base_url, api_key=KEY, timeout_seconds=5))


# --------------------------------------------------------------------------- happy paths


async def test_single_text_field_records_prompt_key_and_usage(
    srv: FakeOpenAI, acts: LlmActivities
) -> None:
    srv.script(reply("  Looks like spam.  ", usage={"prompt_tokens": 42, "completion_tokens": 7}))
    req = request(
        text_field(), system="You are {{ role }}.", context={"text": "hi", "role": "terse"}
    )

    result = await run(acts, req)

    assert result.values == {"summary": "Looks like spam."}
    assert (result.prompt_tokens, result.completion_tokens) == (42, 7)
    assert result.cost_usd is None  # fake-model has no price: unknown, not 0
    assert result.model == MODEL
    assert result.attempt == 1
    assert result.latency_ms > 0
    sent = srv.last_request
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["model"] == "fake-model"
    assert sent.body["max_tokens"] == 64
    assert sent.body["temperature"] == 0.0
    assert "response_format" not in sent.body  # one field: the bare value, no JSON mode
    assert sent.message_text("user") == "Classify: hi"
    assert sent.message_text("system").startswith("You are terse.")
    assert '"summary"' in sent.message_text("system")


async def test_select_is_matched_case_insensitively(srv: FakeOpenAI, acts: LlmActivities) -> None:
    srv.script(reply("SPAM"))
    result = await run(acts, request(select_field()))
    assert result.values == {"label": "spam"}
    assert '"spam", "ham"' in srv.last_request.message_text("system")


async def test_several_fields_use_a_json_object(srv: FakeOpenAI, acts: LlmActivities) -> None:
    srv.script(reply('{"label": "ham", "score": "4", "summary": "fine", "extra": 1}'))
    result = await run(acts, request(select_field(), rating_field(), text_field()))

    assert result.values == {"label": "ham", "score": 4, "summary": "fine"}
    sent = srv.last_request
    assert sent.body["response_format"] == {"type": "json_object"}
    system = sent.message_text("system")
    assert "JSON object" in system
    for key in ('"label"', '"score"', '"summary"', "from 1 to 5"):
        assert key in system


async def test_known_model_gets_a_cost(srv: FakeOpenAI, acts: LlmActivities) -> None:
    srv.script(reply("ham", usage={"prompt_tokens": 1000, "completion_tokens": 10}))
    result = await run(acts, request(select_field(), model="openai/gpt-4o-mini"))
    assert result.cost_usd is not None
    assert result.cost_usd > 0


# --------------------------------------------------------------------------- structured output


async def test_structured_output_sends_the_schema_and_parses_the_object(
    srv: FakeOpenAI, acts: LlmActivities
) -> None:
    srv.script(reply_json({"label": "ham"}))
    req = request(select_field(), structured_output=True)

    result = await run(acts, req)

    assert result.values == {"label": "ham"}
    assert srv.last_request.response_format == {
        "type": "json_schema",
        "json_schema": {
            "name": "fields",
            "strict": True,
            "schema": json_schema_for([select_field()]),
        },
    }
    # Even one field is asked for as an object when a schema constrains the reply.
    assert "single JSON object" in srv.last_request.message_text("system")


async def test_structured_output_still_validates(srv: FakeOpenAI, acts: LlmActivities) -> None:
    srv.script(reply_json({"label": "ham", "score": 9}))
    err = await run_error(acts, request(select_field(), rating_field(), structured_output=True))
    assert err.type == LLM_OUTPUT_INVALID
    assert "score: 9 is out of range" in err.message


async def test_structured_output_falls_back_where_unsupported(
    srv: FakeOpenAI, acts: LlmActivities
) -> None:
    # litellm knows gpt-3.5-turbo has no json_schema support: the plain bare-value prompt is used
    # (the worker's api_base still sends the request to the fake server).
    assert not supports_structured_output("gpt-3.5-turbo")
    srv.script(reply("spam"))
    result = await run(acts, request(select_field(), model="gpt-3.5-turbo", structured_output=True))
    assert result.values == {"label": "spam"}
    assert srv.last_request.response_format is None


def test_structured_output_support() -> None:
    assert supports_structured_output("openai/gpt-4o-mini")
    assert supports_structured_output("openai/anything", "http://vllm:8000/v1")
    assert not supports_structured_output("openai/anything")
    assert not supports_structured_output("no-such-provider/x")
    assert not supports_structured_output(OFFLINE_MODEL, "http://vllm:8000/v1")


def test_json_schema_for_every_field_type() -> None:
    def llm(name: str, type: FieldType, **kw: Any) -> FieldSpec:
        return FieldSpec(name=name, type=type, source=FieldSource.LLM, **kw)

    fields = [
        llm("short", FieldType.SHORT_TEXT, min_length=2, max_length=40),
        llm("long", FieldType.LONG_TEXT),
        llm("code", FieldType.CODE, language="python"),
        llm("num", FieldType.NUMBER, min=0.5, max=10),
        llm("int", FieldType.INTEGER, min=1),
        llm("ok", FieldType.BOOLEAN),
        llm("pick", FieldType.SELECT, options=["a", "b"]),
        llm("many", FieldType.MULTI_SELECT, options=["x", "y", "z"], min=1, max=2),
        llm("stars", FieldType.RATING, min=1, max=10),
        llm("stars5", FieldType.RATING),
        llm("order", FieldType.RANKING, options=["p", "q"]),
        llm("better", FieldType.PAIRWISE, options=["A", "B"], allow_tie=True),
        llm("when", FieldType.DATETIME),
        llm("link", FieldType.URL),
        llm("note", FieldType.SHORT_TEXT, required=False),
    ]
    schema = json_schema_for(fields)

    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == [f.name for f in fields]
    props = {
        name: {k: v for k, v in value.items() if k != "description"}
        for name, value in schema["properties"].items()
        if name != "note"
    }
    assert props == {
        "short": {"type": "string"},
        "long": {"type": "string"},
        "code": {"type": "string"},
        "num": {"type": "number", "minimum": 0.5, "maximum": 10},
        "int": {"type": "integer", "minimum": 1},
        "ok": {"type": "boolean"},
        "pick": {"type": "string", "enum": ["a", "b"]},
        "many": {
            "type": "array",
            "items": {"type": "string", "enum": ["x", "y", "z"]},
            "minItems": 1,
            "maxItems": 2,
        },
        "stars": {"type": "integer", "minimum": 1, "maximum": 10},
        "stars5": {"type": "integer", "minimum": 1, "maximum": 5},
        "order": {
            "type": "array",
            "items": {"type": "string", "enum": ["p", "q"]},
            "minItems": 2,
            "maxItems": 2,
        },
        "better": {"type": "string", "enum": ["A", "B", "tie"]},
        "when": {"type": "string", "format": "date-time"},
        "link": {"type": "string"},
    }
    assert "python" in schema["properties"]["code"]["description"]
    # An optional field must still be present (strict mode), but may be null.
    note = schema["properties"]["note"]["anyOf"]
    assert note[1] == {"type": "null"}
    assert note[0]["type"] == "string"


async def test_structured_ranking_is_still_checked_as_a_permutation(
    srv: FakeOpenAI, acts: LlmActivities
) -> None:
    order = FieldSpec(
        name="order", type=FieldType.RANKING, source=FieldSource.LLM, options=["p", "q"]
    )
    srv.script(reply_json({"order": ["p", "p"]}))
    err = await run_error(acts, request(order, structured_output=True))
    assert "not an ordering" in err.message


# --------------------------------------------------------------------------- invalid output


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ((select_field(),), "maybe"),
        ((select_field(), rating_field()), "label: ham, score: 4"),
        # Fenced JSON is not stripped: the model was told to send a bare object.
        ((select_field(), rating_field()), '```json\n{"label": "ham", "score": 4}\n```'),
        ((select_field(), rating_field()), '{"label": "ham", "score": 9}'),
        ((select_field(), rating_field()), '["ham", 4]'),
    ],
)
async def test_invalid_output_retries_then_gives_up(
    srv: FakeOpenAI, acts: LlmActivities, fields: tuple[FieldSpec, ...], text: str
) -> None:
    srv.script(reply(text), reply(text))

    first = await run_error(acts, request(*fields), attempt=1)
    assert first.type == LLM_OUTPUT_INVALID
    assert not first.non_retryable
    assert "will retry" in first.message

    final = await run_error(acts, request(*fields), attempt=3)
    assert final.type == LLM_OUTPUT_INVALID
    assert final.non_retryable
    assert "giving up" in final.message
    assert final.details and final.details[0]["attempt"] == 3  # usage kept for analytics


async def test_invalid_output_names_the_field(srv: FakeOpenAI, acts: LlmActivities) -> None:
    srv.script(reply('{"label": "eggs", "score": 3}'))
    err = await run_error(acts, request(select_field(), rating_field()))
    assert "label: 'eggs' is not one of: spam, ham" in err.message


# --------------------------------------------------------------------------- provider errors


async def test_401_is_final_names_the_fix_and_hides_the_key(
    srv: FakeOpenAI, acts: LlmActivities
) -> None:
    # Real providers echo the rejected key back in the error body.
    srv.script(status(401, {"error": {"message": f"Incorrect API key provided: {KEY}"}}))
    err = await run_error(acts, request(select_field()))
    assert err.type == "AuthenticationError"
    assert err.non_retryable
    assert MODEL in err.message
    assert "API key" in err.message
    assert_no_key(err)


async def test_missing_key_is_final(srv: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    # The OpenAI client refuses to start without a key; litellm calls that a (retryable)
    # InternalServerError, but no retry can succeed until the worker gets a key.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    acts = LlmActivities(LlmSettings(api_base=srv.base_url))
    err = await run_error(acts, request(select_field()))
    assert err.type == "AuthenticationError"
    assert err.non_retryable
    assert "no API key was found" in err.message
    assert srv.requests == []


async def test_429_retries_after_the_providers_delay(srv: FakeOpenAI, acts: LlmActivities) -> None:
    srv.script(status(429, headers={"Retry-After": "7"}))
    err = await run_error(acts, request(select_field()))
    assert err.type == "RateLimitError"
    assert not err.non_retryable
    assert err.next_retry_delay == timedelta(seconds=7)


@pytest.mark.parametrize(
    ("code", "error_type", "retryable"),
    [
        (500, "InternalServerError", True),
        (503, "ServiceUnavailableError", True),
        (400, "BadRequestError", False),
        (403, "PermissionDeniedError", False),
        (404, "NotFoundError", False),
    ],
)
async def test_status_codes_map_to_retryability(
    srv: FakeOpenAI, acts: LlmActivities, code: int, error_type: str, retryable: bool
) -> None:
    srv.script(status(code, {"error": {"message": f"nope (key {KEY})"}}))
    err = await run_error(acts, request(select_field()))
    assert err.type == error_type
    assert err.non_retryable is not retryable
    assert len(srv.requests) == 1  # num_retries=0: Temporal, not litellm, retries
    assert_no_key(err)


async def test_slow_provider_times_out_retryably(srv: FakeOpenAI) -> None:
    acts = LlmActivities(LlmSettings(api_base=srv.base_url, api_key=KEY, timeout_seconds=0.3))
    srv.script(delay(1.0, reply("ham")))
    err = await run_error(acts, request(select_field()))
    assert err.type == "Timeout"
    assert not err.non_retryable


# --------------------------------------------------------------------------- templates


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Classify: {{ missing }}", "'missing' is undefined"),
        ("Classify: {{ text ", "syntax error"),
        ("{{ ''.__class__.__mro__ }}", "sandbox"),
        ("{{ text.__class__.__init__.__globals__ }}", "sandbox"),
        ("{{ 'a' * 10 ** 9 }}", "sandbox"),
    ],
)
async def test_bad_templates_fail_for_good_without_calling_the_model(
    srv: FakeOpenAI, acts: LlmActivities, prompt: str, expected: str
) -> None:
    err = await run_error(acts, request(select_field(), prompt=prompt))
    assert err.type == INVALID_PROMPT_TEMPLATE
    assert err.non_retryable
    assert expected in err.message
    assert "classify" in err.message  # names the node
    assert srv.requests == []


# --------------------------------------------------------------------------- offline model


async def test_offline_model_needs_no_server_and_says_so(srv: FakeOpenAI) -> None:
    # No key, and an api_base that would record any request: nothing may reach it.
    acts = LlmActivities(LlmSettings(api_base=srv.base_url))
    result = await run(acts, request(text_field(), model=OFFLINE_MODEL))

    summary = result.values["summary"]
    assert summary.startswith(OFFLINE_LABEL)
    assert "not a real LLM" in summary
    assert "Buy cheap pills" in summary  # an excerpt of the rendered prompt
    assert result.cost_usd == 0.0
    assert result.prompt_tokens is not None
    assert result.completion_tokens is not None
    assert result.model == OFFLINE_MODEL
    assert srv.requests == []


async def test_offline_model_fills_several_fields(srv: FakeOpenAI) -> None:
    acts = LlmActivities(LlmSettings())
    fields = [
        select_field(),
        rating_field(),
        FieldSpec(name="ok", type=FieldType.BOOLEAN, source=FieldSource.LLM),
        FieldSpec(name="n", type=FieldType.INTEGER, source=FieldSource.LLM, min=2),
        FieldSpec(name="order", type=FieldType.RANKING, source=FieldSource.LLM, options=["b", "a"]),
    ]
    result = await run(acts, request(*fields, model=OFFLINE_MODEL))
    assert result.values == {"label": "spam", "score": 3, "ok": True, "n": 2, "order": ["b", "a"]}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (FieldSpec(name="f", type=FieldType.SELECT, options=["x", "y"]), "x"),
        (FieldSpec(name="f", type=FieldType.PAIRWISE, options=["A", "B"]), "A"),
        (FieldSpec(name="f", type=FieldType.MULTI_SELECT, options=["x", "y"]), '["x"]'),
        (FieldSpec(name="f", type=FieldType.RANKING, options=["x", "y"]), '["x", "y"]'),
        (FieldSpec(name="f", type=FieldType.NUMBER), "0"),
        (FieldSpec(name="f", type=FieldType.NUMBER, min=2.5), "2.5"),
        (FieldSpec(name="f", type=FieldType.INTEGER, min=3), "3"),
        (FieldSpec(name="f", type=FieldType.RATING, min=1, max=10), "5"),
        (FieldSpec(name="f", type=FieldType.BOOLEAN), "true"),
        (FieldSpec(name="f", type=FieldType.DATETIME), "2000-01-01T00:00:00"),
        (FieldSpec(name="f", type=FieldType.URL), "https://example.invalid/offline"),
    ],
)
def test_offline_answers_are_deterministic_and_valid(spec: FieldSpec, expected: str) -> None:
    assert offline_answer(spec, "the prompt") == expected


def test_offline_text_respects_length_limits() -> None:
    spec = FieldSpec(name="t", type=FieldType.SHORT_TEXT, max_length=20)
    answer = offline_answer(spec, "x " * 500)
    assert len(answer) == 20
    assert validate_value(spec, answer) == answer


# --------------------------------------------------------------------------- settings


def test_settings_from_env_and_key_stays_out_of_repr() -> None:
    settings = LlmSettings.from_env(
        {
            "CONVEYOR_LLM_API_BASE": "http://llm:8000/v1",
            "CONVEYOR_LLM_API_KEY": "sk-secret",
            "CONVEYOR_LLM_TIMEOUT_SECONDS": "12.5",
        }
    )
    assert settings == LlmSettings("http://llm:8000/v1", "sk-secret", 12.5)
    assert "sk-secret" not in repr(settings)
    assert LlmSettings.from_env({"CONVEYOR_LLM_API_KEY": ""}) == LlmSettings()
    with pytest.raises(ValueError, match="CONVEYOR_LLM_TIMEOUT_SECONDS"):
        LlmSettings.from_env({"CONVEYOR_LLM_TIMEOUT_SECONDS": "soon"})


# --------------------------------------------------------------------------- LLM judges


def evaluator(
    output: JudgeOutput = JudgeOutput.BOOLEAN,
    *,
    model: str = MODEL,
    prompt: str = "Is this a good summary of {{ text }}? {{ summary }}",
    name: str = "faithful",
    **judge: Any,
) -> EvaluatorSpec:
    return EvaluatorSpec(
        name=name,
        kind=EvaluatorKind.LLM_JUDGE,
        fields=["summary"],
        judge=JudgeSpec(model=model, prompt=prompt, output=output, **judge),
    )


def judge_request(spec: EvaluatorSpec, *, call_id: str = "") -> JudgeRequest:
    return JudgeRequest(
        workflow_id=WORKFLOW_ID,
        node="summarise",
        evaluator=spec,
        context={"text": "The cat sat.", "summary": "A cat sat down."},
        call_id=call_id,
        mode="inline",
    )


async def judge(
    acts: LlmActivities,
    req: JudgeRequest,
    *,
    attempt: int = 1,
    retry_policy: RetryPolicy | None = None,
) -> EvaluationRecord:
    result: EvaluationRecord = await environment(attempt, retry_policy).run(acts.judge_llm, req)
    return result


async def judge_error(
    acts: LlmActivities, req: JudgeRequest, *, attempt: int = 1
) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        await judge(acts, req, attempt=attempt)
    return info.value


def sent_verdict_schema(srv: FakeOpenAI) -> dict[str, Any]:
    response_format = srv.last_request.response_format
    assert response_format["type"] == "json_schema"
    schema: dict[str, Any] = response_format["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    verdict: dict[str, Any] = schema["properties"]["verdict"]
    return {k: v for k, v in verdict.items() if k != "description"}


@pytest.mark.parametrize(
    ("spec", "answer", "schema", "expected"),
    [
        pytest.param(
            evaluator(JudgeOutput.BOOLEAN),
            {"verdict": False},
            {"type": "boolean"},
            (0.0, False, "false"),
            id="boolean",
        ),
        pytest.param(
            evaluator(JudgeOutput.NUMERIC, min=0, max=1, pass_threshold=0.7),
            {"verdict": 0.75},
            {"type": "number", "minimum": 0, "maximum": 1},
            (0.75, True, None),
            id="numeric-passes",
        ),
        pytest.param(
            evaluator(JudgeOutput.NUMERIC, min=0, max=1, pass_threshold=0.7),
            {"verdict": "0.5"},  # a quoted number is accepted
            {"type": "number", "minimum": 0, "maximum": 1},
            (0.5, False, None),
            id="numeric-fails",
        ),
        pytest.param(
            evaluator(JudgeOutput.RATING),
            {"verdict": 4},
            {"type": "integer", "minimum": 1, "maximum": 5},
            (4.0, None, None),
            id="rating-without-threshold",
        ),
        pytest.param(
            evaluator(JudgeOutput.RATING, min=1, max=10, pass_threshold=8),
            {"verdict": 7},
            {"type": "integer", "minimum": 1, "maximum": 10},
            (7.0, False, None),
            id="rating-below-threshold",
        ),
        pytest.param(
            evaluator(
                JudgeOutput.CATEGORICAL, options=["good", "meh", "bad"], pass_values=["good"]
            ),
            {"verdict": "Good"},  # matched ignoring case
            {"type": "string", "enum": ["good", "meh", "bad"]},
            (None, True, "good"),
            id="categorical-passes",
        ),
        pytest.param(
            evaluator(JudgeOutput.CATEGORICAL, options=["good", "bad"]),
            {"verdict": "bad"},
            {"type": "string", "enum": ["good", "bad"]},
            (None, None, "bad"),
            id="categorical-without-pass-values",
        ),
    ],
)
async def test_judge_each_output_type(
    srv: FakeOpenAI,
    acts: LlmActivities,
    spec: EvaluatorSpec,
    answer: dict[str, Any],
    schema: dict[str, Any],
    expected: tuple[float | None, bool | None, str | None],
) -> None:
    srv.script(reply_json(answer, usage={"prompt_tokens": 30, "completion_tokens": 4}))

    record = await judge(acts, judge_request(spec))

    assert (record.score, record.passed, record.label) == expected
    assert sent_verdict_schema(srv) == schema
    assert record.kind == EvaluationKind.LLM_JUDGE
    assert record.evaluator == "llm_judge"
    assert (record.criterion, record.version) == ("faithful", spec.version)
    assert (record.node, record.fields, record.mode) == ("summarise", ["summary"], "inline")
    assert record.actor == f"llm:{MODEL}"
    assert (record.prompt_tokens, record.completion_tokens) == (30, 4)
    assert record.cost_usd is None  # unknown price
    assert record.latency_ms is not None and record.latency_ms > 0
    assert record.reasoning is None
    assert record.error is None
    sent = srv.last_request
    assert sent.message_text("user") == "Is this a good summary of The cat sat.? A cat sat down."
    assert '"verdict"' in sent.message_text("system")
    assert '"reasoning"' not in sent.message_text("system")


async def test_judge_reasoning_is_asked_for_first_and_kept(
    srv: FakeOpenAI, acts: LlmActivities
) -> None:
    spec = evaluator(reasoning=True, system="You are a strict grader.")
    srv.script(reply_json({"reasoning": "It says what the text says.", "verdict": True}))

    record = await judge(acts, judge_request(spec))

    assert record.passed is True
    assert record.reasoning == "It says what the text says."
    schema = srv.last_request.response_format["json_schema"]["schema"]
    assert list(schema["properties"]) == ["reasoning", "verdict"]
    assert schema["required"] == ["reasoning", "verdict"]
    assert srv.last_request.message_text("system").startswith("You are a strict grader.")


async def test_judge_without_structured_output_uses_json_mode(
    srv: FakeOpenAI, acts: LlmActivities
) -> None:
    srv.script(reply('{"verdict": "yes"}'))
    record = await judge(acts, judge_request(evaluator(model="gpt-3.5-turbo")))
    assert record.passed is True
    assert srv.last_request.response_format == {"type": "json_object"}


@pytest.mark.parametrize(
    "answer",
    [
        '{"verdict": 9}',  # out of range
        '{"verdict": 3.5}',  # a rating is a whole number
        '{"score": 3}',  # no verdict
        "Four out of five",  # not JSON
    ],
)
async def test_judge_invalid_output_retries_then_gives_up(
    srv: FakeOpenAI, acts: LlmActivities, answer: str
) -> None:
    spec = evaluator(JudgeOutput.RATING)
    srv.script(*[reply(answer)] * MAX_OUTPUT_ATTEMPTS)

    for attempt in range(1, MAX_OUTPUT_ATTEMPTS):
        err = await judge_error(acts, judge_request(spec), attempt=attempt)
        assert err.type == LLM_OUTPUT_INVALID
        assert not err.non_retryable
        assert "will retry" in err.message
    final = await judge_error(acts, judge_request(spec), attempt=MAX_OUTPUT_ATTEMPTS)
    assert final.type == LLM_OUTPUT_INVALID
    assert final.non_retryable
    assert "giving up" in final.message
    assert "judge 'faithful'" in final.message
    assert final.details and final.details[0]["attempt"] == MAX_OUTPUT_ATTEMPTS


async def test_judge_provider_errors_are_mapped_like_field_calls(
    srv: FakeOpenAI, acts: LlmActivities
) -> None:
    srv.script(status(401, {"error": {"message": f"Incorrect API key provided: {KEY}"}}))
    err = await judge_error(acts, judge_request(evaluator()))
    assert err.type == "AuthenticationError"
    assert err.non_retryable
    assert_no_key(err)
    srv.script(status(429, headers={"Retry-After": "2"}))
    err = await judge_error(acts, judge_request(evaluator()))
    assert err.type == "RateLimitError"
    assert err.next_retry_delay == timedelta(seconds=2)


async def test_judge_bad_template_fails_for_good(srv: FakeOpenAI, acts: LlmActivities) -> None:
    err = await judge_error(acts, judge_request(evaluator(prompt="{{ nothing_here }}")))
    assert err.type == INVALID_PROMPT_TEMPLATE
    assert err.non_retryable
    assert "judge 'faithful'" in err.message
    assert srv.requests == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (evaluator(JudgeOutput.BOOLEAN, model=OFFLINE_MODEL), (1.0, True, "true")),
        (evaluator(JudgeOutput.RATING, model=OFFLINE_MODEL, pass_threshold=3), (3.0, True, None)),
        (evaluator(JudgeOutput.NUMERIC, model=OFFLINE_MODEL, min=0.2, max=1), (0.2, None, None)),
        (
            evaluator(JudgeOutput.CATEGORICAL, model=OFFLINE_MODEL, options=["meh", "good"]),
            (None, None, "meh"),
        ),
    ],
)
async def test_offline_judge_is_deterministic_and_labelled(
    srv: FakeOpenAI, spec: EvaluatorSpec, expected: tuple[float | None, bool | None, str | None]
) -> None:
    acts = LlmActivities(LlmSettings(api_base=srv.base_url))
    record = await judge(acts, judge_request(spec))
    assert (record.score, record.passed, record.label) == expected
    assert record.reasoning is not None and record.reasoning.startswith(OFFLINE_LABEL)
    assert record.cost_usd == 0.0
    assert record.actor == f"llm:{OFFLINE_MODEL}"
    assert srv.requests == []


async def test_run_judge_needs_no_activity_context(srv: FakeOpenAI) -> None:
    # What a bulk evaluation does: call the core once per task, outside judge_llm.
    srv.script(reply_json({"verdict": True}))
    settings = LlmSettings(api_base=srv.base_url, api_key=KEY, timeout_seconds=5)
    record = await run_judge(settings, judge_request(evaluator()))
    assert record.passed is True


async def test_run_judge_records_with_the_callers_retry_policy(
    srv: FakeOpenAI, sessions: sessionmaker[Session]
) -> None:
    # A bulk evaluation retries judges itself: its policy decides when a failure is final.
    settings = LlmSettings(api_base=srv.base_url, api_key=KEY, timeout_seconds=5)
    policy = RetryPolicy(maximum_attempts=2)
    req = judge_request(evaluator(), call_id="summarise:judge:faithful:v:bulk-1")
    srv.script(status(503), status(503))
    for attempt in (1, 2):
        with pytest.raises(ApplicationError):
            await run_judge(settings, req, attempt=attempt, sessions=sessions, retry_policy=policy)
    rows = call_rows(sessions)
    assert [(r["attempt"], r["outcome"], r["error_class"]) for r in rows] == [
        (1, "retry", "ServiceUnavailableError"),
        (2, "failed", "ServiceUnavailableError"),
    ]
    assert {(r["purpose"], r["call_id"]) for r in rows} == {
        ("judge", "summarise:judge:faithful:v:bulk-1")
    }


# --------------------------------------------------------------------------- call records


def call_rows(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    """Every recorded attempt, oldest first, as plain dicts."""
    columns = [c.key for c in LlmCallRow.__table__.columns if c.key not in ("id", "at")]
    with sessions() as session:
        rows = session.scalars(select(LlmCallRow).order_by(LlmCallRow.id)).all()
        return [{c: getattr(r, c) for c in columns} for r in rows]


@pytest.fixture
def recorded(srv: FakeOpenAI, sessions: sessionmaker[Session]) -> LlmActivities:
    return LlmActivities(
        LlmSettings(api_base=srv.base_url, api_key=KEY, timeout_seconds=5), sessions
    )


async def test_a_successful_call_is_recorded(
    srv: FakeOpenAI, recorded: LlmActivities, sessions: sessionmaker[Session]
) -> None:
    srv.script(
        reply('{"label": "ham", "score": 2}', usage={"prompt_tokens": 9, "completion_tokens": 3})
    )
    await run(recorded, request(select_field(), rating_field(), call_id="classify:1:g"))

    [row] = call_rows(sessions)
    latency = row.pop("latency_ms")
    assert latency > 0
    assert row == {
        "workflow_id": WORKFLOW_ID,
        "pipeline_name": "spam-filter",
        "node": "classify",
        "call_id": "classify:1:g",
        "purpose": "field",
        "fields": ["label", "score"],
        "model": MODEL,
        "attempt": 1,
        "prompt_tokens": 9,
        "completion_tokens": 3,
        "cost_usd": None,  # unknown, never 0
        "outcome": "ok",
        "error_class": None,
    }


async def test_every_attempt_is_recorded_with_its_outcome(
    srv: FakeOpenAI, recorded: LlmActivities, sessions: sessionmaker[Session]
) -> None:
    req = request(select_field())  # no call_id: <node>:<activity id>
    srv.script(
        status(429, headers={"Retry-After": "1"}),
        status(500),
        reply("maybe", usage={"prompt_tokens": 5, "completion_tokens": 1}),
        reply("ham"),
    )
    for attempt in (1, 2, 3):
        await run_error(recorded, req, attempt=attempt)
    await run(recorded, req, attempt=4)

    rows = call_rows(sessions)
    assert [(r["attempt"], r["outcome"], r["error_class"]) for r in rows] == [
        (1, "retry", "RateLimitError"),
        (2, "retry", "InternalServerError"),
        (3, "failed", "LlmOutputInvalid"),  # invalid output on attempt 3 is final
        (4, "ok", None),
    ]
    assert {r["call_id"] for r in rows} == {"classify:7"}
    # The provider answered on attempt 3: its tokens count even though the output was invalid.
    assert [(r["prompt_tokens"], r["completion_tokens"]) for r in rows[:3]] == [
        (None, None),
        (None, None),
        (5, 1),
    ]
    assert all(r["cost_usd"] is None for r in rows)


async def test_non_retryable_errors_and_timeouts_are_recorded(
    srv: FakeOpenAI, sessions: sessionmaker[Session]
) -> None:
    acts = LlmActivities(
        LlmSettings(api_base=srv.base_url, api_key=KEY, timeout_seconds=0.3), sessions
    )
    srv.script(delay(1.0, reply("ham")), status(401))
    await run_error(acts, request(select_field(), call_id="a"))
    await run_error(acts, request(select_field(), call_id="b"))
    await run_error(acts, request(select_field(), prompt="{{ oops", call_id="c"))

    rows = call_rows(sessions)
    assert [(r["call_id"], r["outcome"], r["error_class"]) for r in rows] == [
        ("a", "retry", "Timeout"),
        ("b", "failed", "AuthenticationError"),
        ("c", "failed", "InvalidPromptTemplate"),
    ]
    assert rows[0]["latency_ms"] >= 250  # the time spent waiting counts
    assert rows[2]["latency_ms"] == 0.0  # no model was called


async def test_the_retry_policys_last_attempt_is_failed(
    srv: FakeOpenAI, recorded: LlmActivities, sessions: sessionmaker[Session]
) -> None:
    policy = RetryPolicy(maximum_attempts=2)
    srv.script(status(503), status(503))
    await run_error(recorded, request(select_field()), attempt=1, retry_policy=policy)
    await run_error(recorded, request(select_field()), attempt=2, retry_policy=policy)
    assert [r["outcome"] for r in call_rows(sessions)] == ["retry", "failed"]


async def test_a_repeated_attempt_is_recorded_once(
    srv: FakeOpenAI, recorded: LlmActivities, sessions: sessionmaker[Session]
) -> None:
    srv.script(reply("ham"), reply("ham"))
    await run(recorded, request(select_field(), call_id="x"))
    await run(recorded, request(select_field(), call_id="x"))
    assert len(call_rows(sessions)) == 1


async def test_known_and_free_models_record_their_cost(
    srv: FakeOpenAI, recorded: LlmActivities, sessions: sessionmaker[Session]
) -> None:
    srv.script(reply("ham", usage={"prompt_tokens": 1000, "completion_tokens": 10}))
    await run(recorded, request(select_field(), model="openai/gpt-4o-mini", call_id="priced"))
    await run(recorded, request(select_field(), model=OFFLINE_MODEL, call_id="offline"))
    priced, offline = call_rows(sessions)
    assert priced["cost_usd"] is not None and priced["cost_usd"] > 0
    assert offline["cost_usd"] == 0.0
    assert offline["model"] == OFFLINE_MODEL


async def test_judge_attempts_are_recorded(
    srv: FakeOpenAI, recorded: LlmActivities, sessions: sessionmaker[Session]
) -> None:
    spec = evaluator(JudgeOutput.RATING)
    srv.script(reply('{"verdict": 0}'), reply_json({"verdict": 5}))
    req = judge_request(spec, call_id="summarise:judge:faithful:v:1")
    await judge_error(recorded, req, attempt=1)
    await judge(recorded, req, attempt=2)

    rows = call_rows(sessions)
    assert [(r["attempt"], r["outcome"], r["error_class"]) for r in rows] == [
        (1, "retry", "LlmOutputInvalid"),
        (2, "ok", None),
    ]
    assert {r["purpose"] for r in rows} == {"judge"}
    assert {r["call_id"] for r in rows} == {"summarise:judge:faithful:v:1"}
    assert rows[0]["fields"] == ["summary"]
    assert rows[0]["node"] == "summarise"


async def test_no_prompt_completion_or_key_is_recorded(
    srv: FakeOpenAI, recorded: LlmActivities, sessions: sessionmaker[Session]
) -> None:
    srv.script(reply("An answer nobody should store"))
    await run(recorded, request(text_field(), context={"text": "private words"}))
    text = repr(call_rows(sessions))
    for secret in (KEY, "private words", "An answer nobody should store", "Classify"):
        assert secret not in text


async def test_a_store_failure_does_not_fail_the_call(
    srv: FakeOpenAI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A database without the llm_calls table: every insert fails.
    broken = session_factory(make_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
    acts = LlmActivities(LlmSettings(api_base=srv.base_url, api_key=KEY), broken)
    srv.script(reply("ham"), status(500))

    with caplog.at_level(logging.WARNING):
        result = await run(acts, request(select_field()))
        err = await run_error(acts, request(select_field()))

    assert result.values == {"label": "ham"}
    assert err.type == "InternalServerError"  # the call's own error, not the store's
    warnings = [r.getMessage() for r in caplog.records if "LLM Analytics" in r.getMessage()]
    assert len(warnings) == 2
    assert "no such table" in warnings[0]
    assert all(KEY not in w for w in warnings)
