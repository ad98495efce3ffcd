"""The activities ``call_llm`` and ``judge_llm``, heartbeating while the model answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.llm._fields import _fill_fields
from activities.llm._judge import run_judge
from activities.llm._records import _CallKey, _recorded
from activities.llm._settings import LlmSettings
from activities.llm._usage import Usage
from workflows.messages import EvaluationRecord, JudgeRequest, LlmRequest, LlmResponse

HEARTBEAT_EVERY = 3.0
"""Seconds between heartbeats while a model call is in flight (the workflow's heartbeat
timeout is ``workflows.options.LLM_HEARTBEAT``)."""


@asynccontextmanager
async def heartbeating(every: float = HEARTBEAT_EVERY) -> AsyncIterator[None]:
    """Heartbeat every ``every`` seconds while the block runs: a worker that dies mid-call is
    noticed within the heartbeat timeout and the attempt is retried on another worker, and a
    cancelled task's call is interrupted instead of running to its end."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    beats = asyncio.create_task(beat())
    try:
        yield
    finally:
        beats.cancel()
        with suppress(asyncio.CancelledError):
            await beats


class LlmActivities:
    """The LLM activities with their configuration injected (construct once per worker).

    Register with ``Worker(..., activities=[acts.call_llm, acts.judge_llm])`` where
    ``acts = LlmActivities(settings, sessions)``. Without ``sessions`` nothing is recorded for
    LLM Analytics.
    """

    def __init__(
        self, settings: LlmSettings, sessions: sessionmaker[Session] | None = None
    ) -> None:
        self._settings = settings
        self._sessions = sessions

    @activity.defn(name="call_llm")
    async def call_llm(self, request: LlmRequest) -> LlmResponse:
        """Fill ``request.fields`` by asking ``request.spec.model``.

        Every attempt is recorded in ``llm_calls`` (purpose ``field``; call id
        ``request.call_id``, or ``<node>:<activity id>`` when empty).

        Returns:
            The validated values with model, token counts, cost (None when unknown), latency
            and attempt number, for LLM Analytics.

        Raises:
            ApplicationError: ``InvalidPromptTemplate`` (non-retryable); a litellm exception
                class name such as ``AuthenticationError`` (non-retryable) or ``RateLimitError``
                (retryable, honouring Retry-After); ``LlmOutputInvalid``, retryable before
                attempt ``MAX_OUTPUT_ATTEMPTS`` and non-retryable from it on. Failure details
                carry the attempt's usage when the model answered.
        """
        info = activity.info()
        key = _CallKey(
            workflow_id=request.workflow_id,
            node=request.node,
            call_id=request.call_id or f"{request.node}:{info.activity_id}",
            purpose="field",
            fields=tuple(f.name for f in request.fields),
            attempt=info.attempt,
        )
        usage = Usage(model=request.spec.model)
        work = _fill_fields(self._settings, request, info.attempt, usage)
        async with heartbeating():
            return await _recorded(self._sessions, key, usage, work, info.retry_policy)

    @activity.defn(name="judge_llm")
    async def judge_llm(self, request: JudgeRequest) -> EvaluationRecord:
        """Run the LLM judge ``request.evaluator`` on a node's fields (see :func:`run_judge`).

        Every attempt is recorded in ``llm_calls`` (purpose ``judge``; call id
        ``request.call_id``, or ``<node>:<activity id>`` when empty).
        """
        info = activity.info()
        async with heartbeating():
            return await run_judge(
                self._settings,
                request,
                attempt=info.attempt,
                sessions=self._sessions,
                call_id=request.call_id or f"{request.node}:{info.activity_id}",
                retry_policy=info.retry_policy,
            )
