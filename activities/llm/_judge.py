"""LLM judges: one evaluator's verdict on a node's fields, asked of a model (one attempt).

:func:`run_judge` is the core of ``LlmActivities.judge_llm``; a bulk evaluation calls it
directly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from activities.llm._completion import complete, completion_kwargs
from activities.llm._errors import INVALID_LLM_REQUEST, _invalid_output, _template_error
from activities.llm._offline import OFFLINE_LABEL, OFFLINE_MODEL, offline_value
from activities.llm._output import parse_output
from activities.llm._prompt import _chat, output_instructions
from activities.llm._records import _CallKey, _recorded
from activities.llm._schema import _response_format, supports_structured_output
from activities.llm._settings import LlmSettings
from activities.llm._usage import Usage
from workflows.evaluators import judge_range, judge_verdict
from workflows.graph import EvaluatorKind, FieldSpec, FieldType, JudgeOutput, JudgeSpec
from workflows.messages import EvaluationKind, EvaluationRecord, JudgeRequest

_VERDICT = "verdict"
_REASONING = FieldSpec(
    name="reasoning",
    type=FieldType.LONG_TEXT,
    help="Explain briefly why, before giving the verdict.",
)
_OFFLINE_JUDGE_REASONING = f"{OFFLINE_LABEL} a fixed verdict; nothing was evaluated."


def judge_fields(judge: JudgeSpec) -> list[FieldSpec]:
    """The judge's answer as fields: ``reasoning`` (when asked for) then ``verdict``.

    The verdict is a number within ``min``..``max`` (numeric), a whole number within the range,
    1..5 by default (rating), true / false (boolean) or one of ``options`` (categorical).
    Reasoning comes first so that a model writing in schema order explains before it decides.
    """
    low, high = judge_range(judge)
    verdict: FieldSpec
    if judge.output == JudgeOutput.NUMERIC:
        verdict = FieldSpec(name=_VERDICT, type=FieldType.NUMBER, min=low, max=high)
    elif judge.output == JudgeOutput.RATING:
        verdict = FieldSpec(name=_VERDICT, type=FieldType.RATING, min=low, max=high)
    elif judge.output == JudgeOutput.CATEGORICAL:
        verdict = FieldSpec(name=_VERDICT, type=FieldType.SELECT, options=list(judge.options or []))
    else:
        verdict = FieldSpec(name=_VERDICT, type=FieldType.BOOLEAN)
    return [_REASONING, verdict] if judge.reasoning else [verdict]


def _offline_judge_reply(fields: Sequence[FieldSpec]) -> str:
    """The offline model's verdict: true, the rating's middle, the first option, numeric min."""
    answer = {
        f.name: _OFFLINE_JUDGE_REASONING if f.name == _REASONING.name else offline_value(f, "")
        for f in fields
    }
    return json.dumps(answer, ensure_ascii=False)


async def _judge(
    settings: LlmSettings, request: JudgeRequest, attempt: int, usage: Usage
) -> EvaluationRecord:
    evaluator, judge = request.evaluator, request.evaluator.judge
    who = f"node {request.node!r} judge {evaluator.name!r}"
    if judge is None:
        raise ApplicationError(
            f"{who}: an llm_judge evaluator needs judge settings (model, prompt, output)",
            type=INVALID_LLM_REQUEST,
            non_retryable=True,
        )
    if judge.output == JudgeOutput.CATEGORICAL and not judge.options:
        raise ApplicationError(
            f"{who}: a categorical judge needs options to choose from",
            type=INVALID_LLM_REQUEST,
            non_retryable=True,
        )
    fields = judge_fields(judge)
    api_base = judge.api_base or settings.api_base
    structured = supports_structured_output(judge.model, api_base)
    try:
        messages = await asyncio.to_thread(  # CPU work, off the event loop (see above)
            _chat,
            judge.system,
            judge.prompt,
            output_instructions(fields, as_object=True),
            request.context,
        )
    except ApplicationError as e:
        raise _template_error(who, e) from None
    kwargs = completion_kwargs(
        settings,
        model=judge.model,
        api_base=api_base,
        temperature=judge.temperature,
        max_tokens=judge.max_tokens,
        messages=messages,
        # A judge always answers with an object: JSON mode even for the verdict alone.
        response_format=_response_format(
            fields, structured=structured, model=judge.model, as_object=True
        ),
        offline_reply=_offline_judge_reply(fields) if judge.model == OFFLINE_MODEL else None,
    )
    reply = await complete(settings, kwargs, usage)
    try:
        values = parse_output(fields, reply.content, as_object=True)
        score, passed, label = judge_verdict(judge, values[_VERDICT])
    except ValueError as e:
        raise _invalid_output(
            who, usage, attempt, str(e), reply, judge.max_tokens, settings.api_key
        ) from None
    reasoning = values.get(_REASONING.name)
    if judge.model == OFFLINE_MODEL:
        reasoning = _OFFLINE_JUDGE_REASONING

    activity.logger.info(
        "LLM judge: node=%s criterion=%s model=%s score=%s passed=%s tokens=%s/%s cost=%s "
        "latency_ms=%.0f attempt=%d",
        request.node,
        evaluator.name,
        judge.model,
        score,
        passed,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cost_usd,
        usage.latency_ms,
        attempt,
    )
    return EvaluationRecord(
        criterion=evaluator.name,
        version=evaluator.version,
        kind=EvaluationKind.LLM_JUDGE,
        evaluator=EvaluatorKind.LLM_JUDGE.value,
        mode=request.mode,
        node=request.node,
        fields=list(evaluator.fields),
        score=score,
        passed=passed,
        label=label,
        reasoning=reasoning if isinstance(reasoning, str) else None,
        actor=f"llm:{judge.model}",
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost_usd,
        latency_ms=usage.latency_ms,
        at=datetime.now(UTC),
    )


async def run_judge(
    settings: LlmSettings,
    request: JudgeRequest,
    *,
    attempt: int = 1,
    sessions: sessionmaker[Session] | None = None,
    call_id: str | None = None,
    retry_policy: RetryPolicy | None = None,
) -> EvaluationRecord:
    """Run one LLM judge: render its prompt, ask its model, turn the answer into a verdict.

    The core of :meth:`LlmActivities.judge_llm`, for a bulk evaluation activity to call once per
    task (it needs no activity context, but logs through the activity logger when it has one).
    It does not catch failures: a bulk caller turns an ``ApplicationError`` into an
    ``EvaluationRecord`` with ``error`` set (``err.message`` names the problem and never quotes
    a key), or lets retryable ones retry its chunk.

    Args:
        settings: the worker's LLM settings (keys, default ``api_base``, timeout).
        request: the task's node, the evaluator (with its ``judge`` settings) and the task data
            its templates see.
        attempt: the attempt number; from :data:`MAX_OUTPUT_ATTEMPTS` on, invalid output is a
            non-retryable failure (pass 1 for a single try that may be retried).
        sessions: the store; when given, the attempt is written to ``llm_calls`` (purpose
            ``judge``) however it ends. Recording never raises.
        call_id: the ``llm_calls`` key of this call, unique within the task per call (e.g.
            ``<node>:judge:<criterion>:<version>:bulk-<id>``); default ``request.call_id``, else
            ``<node>:judge:<criterion>:<version>``. A repeat with the same key and attempt is not
            recorded twice.
        retry_policy: how the caller retries this call (``judge_llm`` passes its activity's
            policy). It only decides whether a retryable failure is recorded as ``retry`` or, on
            the policy's last attempt, ``failed``; without it retryable failures are ``retry``.

    Returns:
        The verdict (``kind=llm_judge``, ``actor="llm:<model>"``) with tokens, cost (None when
        unknown) and latency; ``at`` is the wall-clock time, ``seq`` 0.

    Raises:
        ApplicationError: ``InvalidPromptTemplate`` / ``InvalidLlmRequest`` (non-retryable);
            provider errors as for :meth:`LlmActivities.call_llm`; ``LlmOutputInvalid`` when
            the answer has no valid verdict (retryable before :data:`MAX_OUTPUT_ATTEMPTS`).
    """
    evaluator = request.evaluator
    key = _CallKey(
        workflow_id=request.workflow_id,
        node=request.node,
        call_id=call_id
        or request.call_id
        or f"{request.node}:judge:{evaluator.name}:{evaluator.version}",
        purpose="judge",
        fields=tuple(evaluator.fields),
        attempt=attempt,
    )
    usage = Usage(model=evaluator.judge.model if evaluator.judge else "")
    work = _judge(settings, request, attempt, usage)
    return await _recorded(sessions, key, usage, work, retry_policy)
