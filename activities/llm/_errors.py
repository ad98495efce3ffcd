"""The ``ApplicationError`` types the LLM activities raise besides provider errors."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.llm._completion import _Reply
from activities.llm._provider import _scrub
from activities.llm._usage import Usage

MAX_OUTPUT_ATTEMPTS = 3
"""From this attempt on, output that fails validation is a non-retryable failure."""

INVALID_PROMPT_TEMPLATE = "InvalidPromptTemplate"
LLM_OUTPUT_INVALID = "LlmOutputInvalid"
INVALID_LLM_REQUEST = "InvalidLlmRequest"


def _invalid_output(
    who: str,
    usage: Usage,
    attempt: int,
    problem: str,
    reply: _Reply,
    max_tokens: int,
    secret: str | None,
) -> ApplicationError:
    """The error for output that failed validation: retryable until MAX_OUTPUT_ATTEMPTS."""
    final = attempt >= MAX_OUTPUT_ATTEMPTS
    if reply.finish_reason == "length":
        problem += f" (the reply was cut off at max_tokens={max_tokens}; raise it)"
    activity.logger.warning(
        "LLM output invalid: %s model=%s attempt=%d final=%s", who, usage.model, attempt, final
    )
    return ApplicationError(
        f"{who}: model {usage.model} gave output that failed validation on attempt {attempt}"
        f"{' (giving up)' if final else ' (will retry)'}: {_scrub(problem, secret)}",
        usage.details(attempt),
        type=LLM_OUTPUT_INVALID,
        non_retryable=final,
    )


def _template_error(who: str, error: ApplicationError) -> ApplicationError:
    return ApplicationError(f"{who}: {error.message}", type=error.type, non_retryable=True)
