"""Handlers of LLM work: an LLM node's generation (started, result, failure), the LLM draft of a
node that mixes input and LLM fields (regenerate, draft), and LLM judges' verdicts."""

from __future__ import annotations

from workflows import events
from workflows.engine.queries import _status_refusal
from workflows.engine.run import SYSTEM, Rejected, _Handled, _Run
from workflows.forms import validate_form
from workflows.messages import (
    LLM_ACTOR_PREFIX,
    JudgeResult,
    LlmDraft,
    LlmFailure,
    LlmResult,
    LlmStarted,
    NodeStatus,
    Regenerate,
    TaskStatus,
)


def _llm_started(run: _Run, cmd: LlmStarted) -> _Handled:
    spec = run.spec(cmd.node)
    node = run.node(cmd.node)
    if not spec.is_llm_node:
        raise Rejected(f"node '{cmd.node}' is not an LLM node")
    if run.state.status != TaskStatus.IN_PROGRESS:
        raise Rejected(f"task is {run.state.status}; LLM nodes wait")
    if node.status != NodeStatus.AVAILABLE:
        raise Rejected(f"node '{cmd.node}' is {node.status}, not Available")
    model = spec.llm_fields()[0].llm
    holder = LLM_ACTOR_PREFIX + (model.model if model else "unknown")
    run.grant_claim(cmd.node, holder, expires=False)
    node.llm_runs += 1
    run.emit(holder, cmd.node, f"{holder} is generating {cmd.node}", events.LlmStarted())
    return f"generating {cmd.node}", {"node": cmd.node}


def _llm_result(run: _Run, cmd: LlmResult) -> _Handled:
    spec = run.spec(cmd.node)
    node = run.node(cmd.node)
    if node.status != NodeStatus.CLAIMED or node.claim is None:
        raise Rejected(f"node '{cmd.node}' is {node.status}; no generation is running")
    if not node.claim.holder.startswith(LLM_ACTOR_PREFIX):
        raise Rejected(f"node '{cmd.node}' is claimed by a person, not an LLM")
    if run.state.status == TaskStatus.PAUSED:
        raise Rejected("task is Paused; the LLM result is applied after it resumes")
    checked = validate_form(spec.fields, cmd.values)
    if not checked.ok:
        raise Rejected("the LLM output does not fit the node's fields", checked.errors)
    holder = node.claim.holder
    run.emit(
        holder,
        cmd.node,
        f"{holder} generated {cmd.node}",
        events.LlmGenerated(values=checked.values, model=cmd.model),
    )
    run.hand_in(cmd.node, checked.values, holder)
    return f"generated {cmd.node}", {"node": cmd.node}


def _llm_failure(run: _Run, cmd: LlmFailure) -> _Handled:
    run.spec(cmd.node)
    node = run.node(cmd.node)
    if node.status != NodeStatus.CLAIMED or node.claim is None:
        raise Rejected(f"node '{cmd.node}' is {node.status}; no generation is running")
    if not node.claim.holder.startswith(LLM_ACTOR_PREFIX):
        raise Rejected(f"node '{cmd.node}' is claimed by a person, not an LLM")
    holder = node.claim.holder
    node.error = cmd.reason
    run.drop_claim(cmd.node)
    run.emit(holder, cmd.node, f"{holder} failed on {cmd.node}: {cmd.reason}", events.LlmFailed())
    if run.state.status == TaskStatus.PAUSED:
        run.state.status_before_pause = TaskStatus.FAILED
        run.state.status_before_hold = TaskStatus.IN_PROGRESS
        run.state.hold_reason = f"LLM node '{cmd.node}' failed: {cmd.reason}"
    else:
        run.hold(TaskStatus.FAILED, SYSTEM, f"LLM node '{cmd.node}' failed: {cmd.reason}")
    return f"{cmd.node} failed", {"node": cmd.node}


def _regenerate(run: _Run, cmd: Regenerate) -> _Handled:
    refusal = _status_refusal(run.state, "regenerate")
    if refusal:
        raise Rejected(refusal)
    spec = run.spec(cmd.node)
    if not spec.llm_fields() or spec.is_llm_node:
        raise Rejected(
            f"node '{cmd.node}' has no LLM draft to regenerate (only nodes that mix input and "
            "llm fields have one)"
        )
    node = run.held_claim(cmd.node, cmd.contributor, cmd.token)
    if node.llm_draft_wanted > node.llm_draft_runs:
        return f"a new draft of {cmd.node} is already being generated", {"node": cmd.node}
    node.llm_draft_wanted += 1
    run.emit(
        cmd.contributor,
        cmd.node,
        f"{cmd.contributor} asked for a new LLM draft of {cmd.node}",
        events.RegenerateRequested(run=node.llm_draft_wanted),
    )
    return f"generating a new draft of {cmd.node}", {"node": cmd.node}


def _llm_draft(run: _Run, cmd: LlmDraft) -> _Handled:
    spec = run.spec(cmd.node)
    node = run.node(cmd.node)
    if cmd.run != node.llm_draft_wanted or cmd.run <= node.llm_draft_runs:
        raise Rejected(f"draft run {cmd.run} of '{cmd.node}' is superseded")
    if node.status not in (NodeStatus.AVAILABLE, NodeStatus.CLAIMED):
        raise Rejected(f"node '{cmd.node}' is {node.status}; the draft is no longer needed")
    node.llm_draft_runs = cmd.run
    if cmd.error is not None:
        run.emit(
            LLM_ACTOR_PREFIX + (cmd.model or "unknown"),
            cmd.node,
            f"the LLM draft of {cmd.node} failed: {cmd.error}; fill the fields or regenerate",
            events.LlmDraftFailed(run=cmd.run, error=cmd.error),
        )
        return f"draft of {cmd.node} failed", {"node": cmd.node}
    names = {f.name for f in spec.llm_fields()}
    checked = validate_form(
        spec.fields, {k: v for k, v in cmd.values.items() if k in names}, partial=True
    )
    if not checked.ok:
        raise Rejected("the LLM draft does not fit the node's fields", checked.errors)
    node.draft = {**node.draft, **checked.values}
    run.emit(
        LLM_ACTOR_PREFIX + (cmd.model or "unknown"),
        cmd.node,
        f"{LLM_ACTOR_PREFIX}{cmd.model or 'unknown'} drafted {', '.join(checked.values)} "
        f"of {cmd.node}",
        events.LlmDrafted(run=cmd.run, values=checked.values, model=cmd.model),
    )
    return f"drafted {cmd.node}", {"node": cmd.node}


def _judge_result(run: _Run, cmd: JudgeResult) -> _Handled:
    run.spec(cmd.node)
    node = run.node(cmd.node)
    name = cmd.record.criterion
    if cmd.run != node.judge_run or name not in node.judges_pending:
        raise Rejected(f"judge '{name}' of '{cmd.node}' is not waited for (run {cmd.run})")
    node.judges_pending = [n for n in node.judges_pending if n != name]
    run.record_evaluation(cmd.record)
    return f"recorded {name} on {cmd.node}", {"node": cmd.node}
