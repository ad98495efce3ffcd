"""The LLM activity against a local fake OpenAI-compatible server: real litellm, no internet."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.llm import (
    INVALID_PROMPT_TEMPLATE,
    LLM_OUTPUT_INVALID,
    OFFLINE_LABEL,
    OFFLINE_MODEL,
    LlmActivities,
    LlmSettings,
    offline_answer,
)
from tests.support.fake_openai import FakeOpenAI, delay, reply, status
from workflows.forms import validate_value
from workflows.graph import FieldSource, FieldSpec, FieldType, LlmSpec
from workflows.messages import LlmRequest, LlmResponse

KEY = "test-key"
MODEL = "openai/fake-model"


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
) -> LlmRequest:
    return LlmRequest(
        workflow_id="wf-1",
        node="classify",
        spec=LlmSpec(model=model, prompt=prompt, system=system, max_tokens=64),
        fields=list(fields),
        context={"text": "Buy cheap pills now"} if context is None else context,
    )


async def run(acts: LlmActivities, req: LlmRequest, *, attempt: int = 1) -> LlmResponse:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    result: LlmResponse = await env.run(acts.call_llm, req)
    return result


async def run_error(acts: LlmActivities, req: LlmRequest, *, attempt: int = 1) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        await run(acts, req, attempt=attempt)
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
