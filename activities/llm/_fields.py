"""Filling an ``llm`` node's fields: prompt, completion, validated values (one attempt)."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.llm._completion import complete, completion_kwargs
from activities.llm._errors import INVALID_LLM_REQUEST, _invalid_output, _template_error
from activities.llm._offline import OFFLINE_MODEL, _offline_reply
from activities.llm._output import parse_output
from activities.llm._prompt import build_messages
from activities.llm._schema import _response_format, supports_structured_output
from activities.llm._settings import LlmSettings
from activities.llm._usage import Usage
from workflows.messages import LlmRequest, LlmResponse


async def _fill_fields(
    settings: LlmSettings, request: LlmRequest, attempt: int, usage: Usage
) -> LlmResponse:
    spec, fields = request.spec, list(request.fields)
    who = f"node {request.node!r}"
    if not fields:
        raise ApplicationError(
            f"{who}: an LLM call needs at least one field to fill",
            type=INVALID_LLM_REQUEST,
            non_retryable=True,
        )
    api_base = spec.api_base or settings.api_base
    structured = spec.structured_output and supports_structured_output(spec.model, api_base)
    try:
        # Rendering is CPU work (capped, yet a loop over long task data takes a while): in a
        # thread, so the worker's event loop keeps heartbeating and running other activities.
        messages = await asyncio.to_thread(
            build_messages, spec, fields, request.context, as_object=structured
        )
    except ApplicationError as e:
        raise _template_error(who, e) from None
    kwargs = completion_kwargs(
        settings,
        model=spec.model,
        api_base=api_base,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        messages=messages,
        response_format=_response_format(fields, structured=structured, model=spec.model),
        offline_reply=_offline_reply(fields, messages[-1]["content"])
        if spec.model == OFFLINE_MODEL
        else None,
    )
    reply = await complete(settings, kwargs, usage)
    try:
        values = parse_output(fields, reply.content, as_object=structured)
    except ValueError as e:
        raise _invalid_output(
            who, usage, attempt, str(e), reply, spec.max_tokens, settings.api_key
        ) from None

    activity.logger.info(
        "LLM call: node=%s model=%s structured=%s tokens=%s/%s cost=%s latency_ms=%.0f attempt=%d",
        request.node,
        spec.model,
        structured,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cost_usd,
        usage.latency_ms,
        attempt,
    )
    return LlmResponse(
        values=values,
        model=spec.model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost_usd,
        latency_ms=usage.latency_ms,
        attempt=attempt,
    )
