"""One ``litellm.acompletion`` call: its arguments, the reply, errors mapped for Temporal."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from activities.llm._litellm import litellm
from activities.llm._offline import _OFFLINE_LITELLM_MODEL, OFFLINE_MODEL
from activities.llm._provider import _provider_error
from activities.llm._settings import LlmSettings
from activities.llm._usage import Usage, _cost_usd, _usage


@dataclass(frozen=True)
class _Reply:
    content: str | None
    finish_reason: str | None


def completion_kwargs(
    settings: LlmSettings,
    *,
    model: str,
    api_base: str | None,
    temperature: float,
    max_tokens: int,
    messages: list[dict[str, str]],
    response_format: dict[str, Any] | None,
    offline_reply: str | None,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "messages": messages,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "num_retries": 0,  # Temporal owns retries: every attempt shows in history
        "timeout": settings.timeout_seconds,
    }
    if model == OFFLINE_MODEL:
        # Through litellm anyway, so usage and parsing take the real code path; with
        # mock_response no request leaves the process (and no key is sent anywhere).
        kwargs["model"] = _OFFLINE_LITELLM_MODEL
        kwargs["mock_response"] = offline_reply or ""
        return kwargs
    kwargs["model"] = model
    if response_format is not None:
        kwargs["response_format"] = response_format
    if api_base:
        kwargs["api_base"] = api_base
    if settings.api_key:
        kwargs["api_key"] = settings.api_key
    return kwargs


async def complete(settings: LlmSettings, kwargs: dict[str, Any], usage: Usage) -> _Reply:
    """One ``litellm.acompletion``; measures into ``usage``, maps errors to ApplicationError."""
    started = time.perf_counter()
    try:
        response: Any = await litellm.acompletion(**kwargs)
    except Exception as e:
        # "from None": the original exception (and its chained causes) may quote the key.
        raise _provider_error(e, usage.model, settings.api_key) from None
    finally:
        usage.latency_ms = (time.perf_counter() - started) * 1000
    usage.prompt_tokens, usage.completion_tokens = _usage(response)
    usage.cost_usd = _cost_usd(response, usage.model)
    choice = response.choices[0] if getattr(response, "choices", None) else None
    content = getattr(getattr(choice, "message", None), "content", None)
    finish_reason = getattr(choice, "finish_reason", None)
    return _Reply(
        content if isinstance(content, str) else None,
        finish_reason if isinstance(finish_reason, str) else None,
    )
