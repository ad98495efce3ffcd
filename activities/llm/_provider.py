"""Provider errors: which litellm exceptions may succeed on retry, and the fix to name.

A provider error becomes an ``ApplicationError`` whose type is the litellm exception's class
name; errors that cannot succeed on retry (bad key, unknown model, bad request, prompt too long)
are non-retryable, and a rate limit honours the provider's Retry-After. Keys the provider echoes
back are scrubbed from every message.
"""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
from temporalio.exceptions import ApplicationError

from activities.llm._litellm import litellm

_AUTH_HINT = (
    "the provider rejected the credentials for model {model}: set the provider's API key in "
    "the worker's environment (e.g. OPENAI_API_KEY, or CONVEYOR_LLM_API_KEY for an "
    "OpenAI-compatible endpoint) and restart the worker"
)
_PERMISSION_HINT = (
    "the API key is not allowed to use model {model}: give the worker a key with access to it, "
    "or choose another model"
)
_NOT_FOUND_HINT = (
    "model {model} was not found: check the model name (litellm form 'provider/model', e.g. "
    "openai/gpt-4o-mini) and the api_base"
)
_BAD_REQUEST_HINT = (
    "the provider rejected the request for model {model} as invalid: check the model name and "
    "the node's llm settings (temperature, max_tokens, api_base)"
)


@dataclass(frozen=True)
class _ErrorRule:
    exc_type: type[BaseException]
    retryable: bool
    hint: str
    """How to fix it; ``{model}`` is replaced by the model name."""


# Order matters: subclasses (ContextWindowExceededError is a BadRequestError, Timeout is an
# APIConnectionError) come before their bases.
_ERROR_RULES: tuple[_ErrorRule, ...] = (
    _ErrorRule(
        litellm.ContextWindowExceededError,
        False,
        "the prompt for model {model} is longer than its context window: shorten the prompt "
        "template or the data it includes, lower max_tokens, or choose a larger model",
    ),
    _ErrorRule(
        litellm.UnsupportedParamsError,
        False,
        "model {model} does not support a parameter Conveyor sends (temperature, max_tokens or "
        "JSON output): change the node's llm settings or choose another model",
    ),
    _ErrorRule(
        litellm.ContentPolicyViolationError,
        False,
        "the provider of model {model} refused the prompt under its content policy: change the "
        "prompt template or the task data",
    ),
    _ErrorRule(litellm.AuthenticationError, False, _AUTH_HINT),
    _ErrorRule(litellm.PermissionDeniedError, False, _PERMISSION_HINT),
    _ErrorRule(litellm.NotFoundError, False, _NOT_FOUND_HINT),
    _ErrorRule(litellm.BadRequestError, False, _BAD_REQUEST_HINT),
    _ErrorRule(
        litellm.UnprocessableEntityError,
        False,
        "the provider could not process the request for model {model}: check the node's llm "
        "settings",
    ),
    _ErrorRule(litellm.RateLimitError, True, "model {model} is rate limited; will retry"),
    _ErrorRule(litellm.Timeout, True, "model {model} did not answer in time; will retry"),
    _ErrorRule(
        litellm.APIConnectionError,
        True,
        "could not reach the provider of model {model}; will retry",
    ),
    _ErrorRule(
        litellm.InternalServerError, True, "the provider of model {model} failed; will retry"
    ),
    _ErrorRule(
        litellm.ServiceUnavailableError,
        True,
        "the provider of model {model} is unavailable; will retry",
    ),
    _ErrorRule(
        litellm.BadGatewayError, True, "the provider of model {model} is unreachable; will retry"
    ),
)

# litellm maps some statuses only to its generic APIError (e.g. 403 from OpenAI-compatible
# servers); fall back on the HTTP status so those still fail fast with the right name.
_STATUS_RULES: dict[int, tuple[str, str]] = {
    401: ("AuthenticationError", _AUTH_HINT),
    403: ("PermissionDeniedError", _PERMISSION_HINT),
    404: ("NotFoundError", _NOT_FOUND_HINT),
}
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


def _scrub(text: str, secret: str | None) -> str:
    # Providers echo bad keys back ("Incorrect API key provided: sk-…"); never pass them on.
    return text.replace(secret, "***") if secret else text


def _retry_after(exc: BaseException) -> timedelta | None:
    """The provider's Retry-After (seconds, HTTP date, or OpenAI's retry-after-ms), if any."""
    headers: Any = getattr(exc, "litellm_response_headers", None)
    if not headers:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    seconds: float | None = None
    if "retry-after-ms" in lowered:
        try:
            seconds = float(lowered["retry-after-ms"]) / 1000
        except ValueError:
            seconds = None
    if seconds is None and "retry-after" in lowered:
        value = lowered["retry-after"].strip()
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds is None or not math.isfinite(seconds):
        return None
    return timedelta(seconds=min(max(seconds, 0.0), 3600.0))


def _missing_credentials(exc: BaseException) -> bool:
    """Whether the OpenAI client refused to start for want of a key (no request was sent).

    litellm reports that as a retryable InternalServerError; only the chained exception, the
    client's bare ``openai.OpenAIError``, tells it apart from a provider failure.
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        text = str(cause).lower()
        if type(cause) is openai.OpenAIError and ("credential" in text or "api_key" in text):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _classify(exc: Exception) -> tuple[str, bool, str]:
    """``(error type, retryable, hint)`` for a litellm / provider exception."""
    if _missing_credentials(exc):
        return "AuthenticationError", False, _AUTH_HINT + " (no API key was found)"
    for rule in _ERROR_RULES:
        if isinstance(exc, rule.exc_type):
            return type(exc).__name__, rule.retryable, rule.hint
    status_code = getattr(exc, "status_code", None)
    if isinstance(status_code, int) and status_code in _STATUS_RULES:
        error_type, hint = _STATUS_RULES[status_code]
        return error_type, False, hint
    client_error = isinstance(status_code, int) and 400 <= status_code < 500
    if client_error and status_code not in _RETRYABLE_4XX:
        return type(exc).__name__, False, _BAD_REQUEST_HINT
    return type(exc).__name__, True, "calling model {model} failed; will retry"


def _provider_error(exc: Exception, model: str, secret: str | None) -> ApplicationError:
    """Translate a litellm / provider exception into the ApplicationError Temporal should see."""
    error_type, retryable, hint = _classify(exc)
    said = _scrub(str(exc), secret).strip()
    if len(said) > 500:
        said = said[:499] + "…"
    message = f"{hint.format(model=model)}. Provider said: {said}"
    next_delay = _retry_after(exc) if isinstance(exc, litellm.RateLimitError) else None
    return ApplicationError(
        message, type=error_type, non_retryable=not retryable, next_retry_delay=next_delay
    )
