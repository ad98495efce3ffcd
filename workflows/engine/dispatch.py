"""Where commands enter the engine: :func:`start_task` creates a task, :func:`apply` runs one
command through its handler (``_HANDLERS``, some behind a shared guard) and answers repeats of a
request id, and :func:`record_rejection` and :func:`record_undecodable` keep refused signals in
the timeline."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from workflows import events
from workflows.engine.admin import (
    _admin_not_paused,
    _deescalate,
    _edit_submission,
    _escalate,
    _release_claim,
    _resolve_quarantine,
    _retry,
    _tag,
    _untag,
)
from workflows.engine.consensus import _adjudicate
from workflows.engine.contributor import _claim, _release, _review, _save_draft, _submit
from workflows.engine.lifecycle import _activate, _claim_timeout, _pause, _resume
from workflows.engine.llm import (
    _judge_result,
    _llm_draft,
    _llm_failure,
    _llm_result,
    _llm_started,
    _regenerate,
)
from workflows.engine.queries import check_seed_data
from workflows.engine.run import (
    PIPELINE_ACTOR,
    SYSTEM,
    Context,
    Outcome,
    Rejected,
    _Handled,
    _remember,
    _Run,
    _working_copy,
)
from workflows.graph import Pipeline
from workflows.messages import (
    Activate,
    Adjudicate,
    Claim,
    ClaimTimeout,
    Command,
    CommandResult,
    Deescalate,
    EditSubmission,
    Escalate,
    JudgeResult,
    LlmDraft,
    LlmFailure,
    LlmResult,
    LlmStarted,
    NodeState,
    Pause,
    Regenerate,
    Release,
    ReleaseClaim,
    ResolveQuarantine,
    Resume,
    RetryFailed,
    Review,
    SaveDraft,
    Submit,
    Tag,
    TaskState,
    TaskStatus,
    Untag,
)


def start_task(
    pipeline: Pipeline,
    task_key: str,
    data: Mapping[str, Any],
    ctx: Context,
    *,
    start_paused: bool = False,
    start_pending: bool = False,
) -> Outcome:
    """Create a task at its Start node and move it to its first node(s).

    With ``start_pending`` the task waits, Pending, for an :class:`Activate` command.

    Seed data is checked against the pipeline's predefined fields: unknown keys and missing
    required values are rejected (raised as :class:`Rejected`) before anything exists.
    """
    errors = check_seed_data(pipeline, data)
    if errors:
        raise Rejected("seed data does not match the pipeline's predefined fields", errors)
    state = TaskState(
        task_key=task_key,
        pipeline_name=pipeline.name,
        pipeline_hash=pipeline.content_hash(),
        data=dict(data),
        created_at=ctx.now,
        updated_at=ctx.now,
        nodes={n.name: NodeState(name=n.name) for n in pipeline.nodes},
    )
    run = _Run(pipeline, state, ctx, actor=SYSTEM)
    run.emit(SYSTEM, None, f"task '{task_key}' created", events.Created(data=dict(data)))
    if not start_pending:
        run.begin()
    if start_paused and run.state.status != TaskStatus.FINISHED:
        run.pause(PIPELINE_ACTOR, "pipeline is paused")
    result = CommandResult(
        request_id=f"create:{task_key}",
        command="create",
        accepted=True,
        message="created",
        status=run.state.status,
    )
    return Outcome(run.state, result, run.events)


def apply(pipeline: Pipeline, state: TaskState, command: Command, ctx: Context) -> Outcome:
    """Apply one command. A rejection leaves the state untouched and explains why.

    A command whose ``request_id`` was seen before gets its first answer back, unchanged.
    """
    actor = actor_of(command)
    previous = state.responses.get(command.request_id)
    if previous is not None:
        if previous.command != command.type:
            return _rejection(
                state,
                command,
                f"request_id '{command.request_id}' was already used for a "
                f"'{previous.command}' command; send a new request_id",
            )
        # Answers recorded before actors were kept (None) are given back as they always were.
        if previous.actor is not None and previous.actor != actor:
            return _rejection(
                state,
                command,
                f"request_id '{command.request_id}' was already used by someone else; "
                "send a new request_id",
            )
        return Outcome(state, previous)
    run = _Run(pipeline, _working_copy(state), ctx, actor=actor)
    handler = _HANDLERS[type(command)]
    try:
        message, extra = handler(run, command)
    except Rejected as rejected:
        return _rejection(state, command, rejected.message, rejected.field_errors)
    result = CommandResult(
        request_id=command.request_id,
        command=command.type,
        accepted=True,
        message=message,
        status=run.state.status,
        seq=run.state.seq,
        actor=actor,
        **extra,
    )
    run.state.updated_at = ctx.now
    _remember(run.state, result)
    return Outcome(run.state, result, run.events)


def record_rejection(
    pipeline: Pipeline, state: TaskState, outcome: Outcome, command: Command, ctx: Context
) -> Outcome:
    """Keep a rejected fire-and-forget command (a signal) in the timeline and answer log.

    Updates are rejected before they reach history, so this is for signals only: their sender
    cannot be told, so the task records what it refused and why.
    """
    new = _working_copy(state)
    run = _Run(pipeline, new, ctx, actor=actor_of(command))
    run.emit(
        actor_of(command),
        getattr(command, "node", None),
        f"{command.type} rejected: {outcome.result.message}",
        events.Rejected(request_id=command.request_id, field_errors=outcome.result.field_errors),
    )
    # A request_id refused for belonging to an earlier command keeps that command's answer.
    if command.request_id not in new.responses:
        _remember(new, outcome.result)
    return Outcome(new, outcome.result, run.events)


def record_undecodable(
    pipeline: Pipeline,
    state: TaskState,
    result: CommandResult,
    ctx: Context,
    *,
    actor: str | None = None,
) -> Outcome:
    """Keep a signal whose payload could not be read as its command in the timeline.

    ``result`` names the command, the problems and the request_id when one could be read. Its
    answer is not remembered: the request never became a command, so the sender may resend
    the same request_id with a payload that fits.
    """
    new = _working_copy(state)
    who = actor or SYSTEM
    run = _Run(pipeline, new, ctx, actor=who)
    run.emit(
        who,
        None,
        f"{result.command} rejected: {result.message}",
        events.Rejected(
            request_id=result.request_id or None,
            field_errors=result.field_errors,
            problems=[p.model_dump() for p in result.problems],
        ),
    )
    return Outcome(new, result, run.events)


def actor_of(command: Command) -> str:
    for attr in ("contributor", "admin", "by"):
        value = getattr(command, attr, None)
        if isinstance(value, str):
            return value
    return SYSTEM


def _rejection(
    state: TaskState,
    command: Command,
    message: str,
    field_errors: Mapping[str, str] | None = None,
) -> Outcome:
    result = CommandResult(
        request_id=command.request_id,
        command=command.type,
        accepted=False,
        message=message,
        node=getattr(command, "node", None),
        field_errors=dict(field_errors or {}),
        status=state.status,
        actor=actor_of(command),
    )
    return Outcome(state, result)


def _guard_finished(handler: Callable[[_Run, Any], _Handled]) -> Callable[[_Run, Any], _Handled]:
    def guarded(run: _Run, cmd: Any) -> _Handled:
        if run.state.status == TaskStatus.FINISHED:
            raise Rejected("task is Finished; it accepts no more work")
        return handler(run, cmd)

    return guarded


def _guard_paused(
    handler: Callable[[_Run, Any], _Handled], what: str
) -> Callable[[_Run, Any], _Handled]:
    def guarded(run: _Run, cmd: Any) -> _Handled:
        _admin_not_paused(run, what)
        return handler(run, cmd)

    return guarded


_HANDLERS: dict[type, Callable[[_Run, Any], _Handled]] = {
    Claim: _claim,
    Release: _release,
    SaveDraft: _save_draft,
    Submit: _submit,
    Review: _review,
    Adjudicate: _adjudicate,
    Pause: _pause,
    Resume: _resume,
    Activate: _activate,
    ClaimTimeout: _guard_finished(_claim_timeout),
    LlmStarted: _guard_finished(_llm_started),
    LlmResult: _guard_finished(_llm_result),
    LlmFailure: _guard_finished(_llm_failure),
    Regenerate: _regenerate,
    LlmDraft: _guard_finished(_llm_draft),
    JudgeResult: _judge_result,
    EditSubmission: _edit_submission,
    ReleaseClaim: _guard_finished(_release_claim),
    Escalate: _guard_paused(_escalate, "escalate"),
    Deescalate: _guard_paused(_deescalate, "de-escalate"),
    ResolveQuarantine: _guard_paused(_resolve_quarantine, "resolve the quarantine"),
    Tag: _tag,
    Untag: _untag,
    RetryFailed: _guard_paused(_retry, "retry"),
}
