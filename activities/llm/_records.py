"""Recording every attempt of an LLM call in ``llm_calls`` for LLM Analytics.

One row per attempt, successful or not: model, tokens, cost, latency, outcome and error class;
never prompts, completions or keys. Recording is best effort: a store failure is logged and
never fails the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from activities.llm._usage import Usage
from store.db import transaction
from store.llm_calls import LlmCallAttempt, insert_llm_call

_T = TypeVar("_T")


RECORD_TIMEOUT_SECONDS = 10.0
"""How long recording an attempt in ``llm_calls`` may take before the call goes on without it."""


@dataclass(frozen=True)
class _CallKey:
    """Which call an attempt belongs to: the identity and grouping columns of its row."""

    workflow_id: str
    node: str
    call_id: str
    purpose: str
    """``field`` or ``judge``."""
    fields: tuple[str, ...]
    attempt: int


def _last_attempt(attempt: int, error_type: str, policy: RetryPolicy | None) -> bool:
    """Whether no attempt follows this failure under ``policy`` (its maximum attempts and
    non-retryable types). Without a policy only non-retryable errors are final. A
    schedule-to-close timeout can still end retries early: such a last attempt stays ``retry``.
    """
    if policy is None:
        return False
    if error_type in (policy.non_retryable_error_types or ()):
        return True
    return policy.maximum_attempts > 0 and attempt >= policy.maximum_attempts


def _attempt_outcome(
    exc: BaseException, attempt: int, policy: RetryPolicy | None
) -> tuple[str, str]:
    """``(outcome, error_class)`` of an attempt that ended with ``exc``."""
    if isinstance(exc, asyncio.CancelledError):
        details = activity.cancellation_details() if activity.in_activity() else None
        timed_out = details is not None and details.timed_out
        error_class = "ActivityTimeout" if timed_out else "ActivityCancelled"
        if details is not None and details.cancel_requested:
            return "failed", error_class  # the workflow gave up on the call
        return ("failed" if _last_attempt(attempt, error_class, policy) else "retry"), error_class
    if isinstance(exc, ApplicationError):
        error_class = exc.type or "ApplicationError"
        final = exc.non_retryable or _last_attempt(attempt, error_class, policy)
    else:
        # Anything else is a bug here or in litellm; Temporal retries it like any error.
        error_class = type(exc).__name__
        final = _last_attempt(attempt, error_class, policy)
    return ("failed" if final else "retry"), error_class


def _insert_call(sessions: sessionmaker[Session], call: LlmCallAttempt) -> None:
    with transaction(sessions) as session:
        insert_llm_call(session, call)


def _store_problem(exc: BaseException) -> str:
    # The first line only: SQLAlchemy appends the statement and its parameters.
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 300 else text[:299] + "…"


async def _record_attempt(
    sessions: sessionmaker[Session] | None,
    key: _CallKey,
    usage: Usage,
    outcome: str,
    error_class: str | None,
) -> None:
    """Write the attempt's ``llm_calls`` row. Never raises: analytics must not fail the call."""
    if sessions is None:
        return
    call = LlmCallAttempt(
        workflow_id=key.workflow_id,
        node=key.node,
        call_id=key.call_id,
        purpose=key.purpose,
        fields=key.fields,
        model=usage.model,
        attempt=key.attempt,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost_usd,
        latency_ms=usage.latency_ms,
        outcome=outcome,
        error_class=error_class,
        at=datetime.now(UTC),
    )
    try:
        await asyncio.wait_for(
            asyncio.to_thread(_insert_call, sessions, call), RECORD_TIMEOUT_SECONDS
        )
    except Exception as e:
        activity.logger.warning(
            "could not record LLM call attempt for LLM Analytics (workflow=%s call=%s "
            "attempt=%d outcome=%s); the call itself is unaffected: %s",
            key.workflow_id,
            key.call_id,
            key.attempt,
            outcome,
            _store_problem(e),
        )


async def _recorded(
    sessions: sessionmaker[Session] | None,
    key: _CallKey,
    usage: Usage,
    work: Awaitable[_T],
    policy: RetryPolicy | None,
) -> _T:
    """Await ``work`` (one attempt) and record how it ended, whatever happened."""
    try:
        result = await work
    except (Exception, asyncio.CancelledError) as e:
        outcome, error_class = _attempt_outcome(e, key.attempt, policy)
        await _record_attempt(sessions, key, usage, outcome, error_class)
        raise
    await _record_attempt(sessions, key, usage, "ok", None)
    return result
