"""Handlers of the commands contributors send on a task: claim, release, save a draft, submit a
subtask and review one."""

from __future__ import annotations

from workflows import events
from workflows.engine.consensus import answer, drop_slot, held_slot, take_slot
from workflows.engine.queries import _claim_refusal, _status_refusal, claimable, inline_evaluations
from workflows.engine.run import Rejected, _Handled, _Run
from workflows.forms import validate_form
from workflows.graph import EvaluatorMode, LimitAction, NodeKind
from workflows.messages import (
    Claim,
    NodeStatus,
    Release,
    Review,
    ReviewRecord,
    SaveDraft,
    Submit,
    TaskStatus,
    Verdict,
)


def _claim(run: _Run, cmd: Claim) -> _Handled:
    state, pipeline = run.state, run.pipeline
    if cmd.node is not None:
        spec = run.spec(cmd.node)
        refusal = _claim_refusal(pipeline, state, spec, cmd.contributor, cmd.roles)
        if refusal:
            raise Rejected(refusal)
        target = spec.name
    else:
        options = claimable(pipeline, state, cmd.contributor, cmd.roles)
        if not options:
            refusal = _status_refusal(state, "claim")
            if refusal is None:
                waiting = [
                    _claim_refusal(pipeline, state, spec, cmd.contributor, cmd.roles)
                    for spec in pipeline.nodes
                    if spec.is_human
                    and state.nodes[spec.name].status
                    in (NodeStatus.AVAILABLE, NodeStatus.CLAIMED, NodeStatus.ESCALATED)
                ]
                why = "; ".join(r for r in waiting if r) or "no node is waiting for a person"
                refusal = f"nothing on this task is claimable by {cmd.contributor}: {why}"
            raise Rejected(refusal)
        target = options[0]
    if run.pipeline.node(target).consensus is not None:
        claim, place, of = take_slot(run, target, cmd.contributor)
        run.emit(
            cmd.contributor,
            target,
            f"{cmd.contributor} claimed {target} (place {place} of {of})",
            events.Claimed(
                expires_at=claim.expires_at.isoformat() if claim.expires_at else None,
                slot=place,
                of=of,
            ),
        )
        message = f"claimed {target} (place {place} of {of})"
        reason = run.node(target).rework_reason
        if reason:
            message += f" (new round: {reason})"
        return message, {"node": target, "token": claim.token}
    claim = run.grant_claim(target, cmd.contributor)
    node = run.node(target)
    run.emit(
        cmd.contributor,
        target,
        f"{cmd.contributor} claimed {target}",
        events.Claimed(expires_at=claim.expires_at.isoformat() if claim.expires_at else None),
    )
    message = f"claimed {target}"
    if node.rework_reason:
        message += f" (rework: {node.rework_reason})"
    return message, {"node": target, "token": claim.token}


def _release(run: _Run, cmd: Release) -> _Handled:
    if run.state.status == TaskStatus.FINISHED:
        raise Rejected("task is Finished; it accepts no more work")
    if run.spec(cmd.node).consensus is not None:
        held_slot(run, cmd.node, cmd.contributor, cmd.token)
        drop_slot(run, cmd.node, cmd.contributor)
        run.emit(
            cmd.contributor, cmd.node, f"{cmd.contributor} released {cmd.node}", events.Released()
        )
        return f"released {cmd.node}; the place is open again", {"node": cmd.node}
    run.held_claim(cmd.node, cmd.contributor, cmd.token)
    run.drop_claim(cmd.node)
    run.emit(cmd.contributor, cmd.node, f"{cmd.contributor} released {cmd.node}", events.Released())
    return f"released {cmd.node}; the draft is kept", {"node": cmd.node}


def _save_draft(run: _Run, cmd: SaveDraft) -> _Handled:
    if run.state.status == TaskStatus.FINISHED:
        raise Rejected("task is Finished; it accepts no more work")
    spec = run.spec(cmd.node)
    if spec.consensus is not None:
        slot = held_slot(run, cmd.node, cmd.contributor, cmd.token)
        checked = validate_form(spec.fields, cmd.values, partial=True)
        if not checked.ok:
            raise Rejected("the draft has invalid values", checked.errors)
        slot.draft = {**slot.draft, **checked.values}
        run.emit(
            cmd.contributor,
            cmd.node,
            f"{cmd.contributor} saved a draft",
            events.DraftSaved(values=checked.values),
        )
        return "draft saved", {"node": cmd.node, "evaluations": []}
    node = run.held_claim(cmd.node, cmd.contributor, cmd.token)
    checked = validate_form(spec.fields, cmd.values, partial=True)
    if not checked.ok:
        raise Rejected("the draft has invalid values", checked.errors)
    node.draft = {**node.draft, **checked.values}
    run.emit(
        cmd.contributor,
        cmd.node,
        f"{cmd.contributor} saved a draft",
        events.DraftSaved(values=checked.values),
    )
    inline = inline_evaluations(run.pipeline, run.state, cmd.node)
    return "draft saved", {"node": cmd.node, "evaluations": inline}


def _submit(run: _Run, cmd: Submit) -> _Handled:
    refusal = _status_refusal(run.state, "submit")
    if refusal:
        raise Rejected(refusal)
    spec = run.spec(cmd.node)
    if spec.kind == NodeKind.ADJUDICATE:
        raise Rejected(f"node '{cmd.node}' is an adjudicate node; use adjudicate to settle it")
    if spec.kind != NodeKind.SUBTASK:
        raise Rejected(f"node '{cmd.node}' is a {spec.kind} node; use review to decide it")
    if spec.consensus is not None:
        held_slot(run, cmd.node, cmd.contributor, cmd.token)
        checked = validate_form(spec.fields, cmd.values)
        if not checked.ok:
            raise Rejected(f"the form of '{cmd.node}' has invalid values", checked.errors)
        item = run.node(cmd.node).consensus
        assert item is not None
        number, needed = len(item.answers) + 1, item.needed
        run.emit(
            cmd.contributor,
            cmd.node,
            f"{cmd.contributor} answered {cmd.node} (answer {number} of {needed})",
            events.Submitted(values=checked.values, answer=number, of=needed, round=item.round),
        )
        answer(run, cmd.node, cmd.contributor, checked.values)
        return f"answered {cmd.node} ({number} of {needed})", {"node": cmd.node, "evaluations": []}
    node = run.held_claim(cmd.node, cmd.contributor, cmd.token)
    # LLM fields arrive as a draft: the contributor may edit them or leave them as generated.
    generated = {
        f.name: node.draft[f.name]
        for f in spec.llm_fields()
        if f.name not in cmd.values and node.draft.get(f.name) is not None
    }
    checked = validate_form(spec.fields, {**generated, **cmd.values})
    if not checked.ok:
        raise Rejected(f"the form of '{cmd.node}' has invalid values", checked.errors)
    run.emit(
        cmd.contributor,
        cmd.node,
        f"{cmd.contributor} submitted {cmd.node}",
        events.Submitted(values=checked.values, attempt=run.node(cmd.node).attempts + 1),
    )
    run.hand_in(cmd.node, checked.values, cmd.contributor)
    inline = [r for r in run.recorded if r.mode == EvaluatorMode.INLINE]
    return f"submitted {cmd.node}", {"node": cmd.node, "evaluations": inline}


def _review(run: _Run, cmd: Review) -> _Handled:
    refusal = _status_refusal(run.state, "review")
    if refusal:
        raise Rejected(refusal)
    spec = run.spec(cmd.node)
    if spec.kind != NodeKind.REVIEW:
        raise Rejected(f"node '{cmd.node}' is a {spec.kind} node, not a review; use submit")
    node = run.held_claim(cmd.node, cmd.contributor, cmd.token)
    errors: dict[str, str] = {}
    reason = (cmd.reason or "").strip() or None
    if cmd.verdict == Verdict.FAIL and reason is None:
        errors["reason"] = "required when failing a review: tell the contributor what to fix"
    checked = validate_form(spec.fields, cmd.values)
    errors.update(checked.errors)
    if errors:
        raise Rejected(f"the review of '{cmd.node}' is incomplete", errors)
    escalated = node.claim is not None and node.claim.returns_to == NodeStatus.ESCALATED
    node.claim = None
    node.values = checked.values
    node.last_review = ReviewRecord(
        reviewer=cmd.contributor,
        verdict=cmd.verdict,
        reason=reason,
        values=checked.values,
        at=run.ctx.now,
    )
    target = run.pipeline.reviewed_node(spec)
    run.emit(
        cmd.contributor,
        cmd.node,
        f"{cmd.contributor} {'passed' if cmd.verdict == Verdict.PASS else 'failed'} {target}"
        + (f": {reason}" if reason else ""),
        events.Reviewed(verdict=cmd.verdict.value, reason=reason, values=checked.values),
    )
    run.evaluate(cmd.node, cmd.contributor)
    if escalated:
        run.unhold(cmd.contributor, "escalation review decided")
    if cmd.verdict == Verdict.PASS:
        node.passes += 1
        run.set_node(cmd.node, NodeStatus.FINISHED)
        run.set_node(target, NodeStatus.FINISHED)
        run.after_finished(target)
        run.after_finished(cmd.node)
        return f"passed {target}", {"node": cmd.node}
    node.failures += 1
    node.total_failures += 1
    if escalated:
        node.failures = 0
    elif node.failures > spec.max_rereviews:
        limit = f"{target} failed review {node.failures} times (max_rereviews {spec.max_rereviews})"
        if spec.on_limit == LimitAction.ESCALATE:
            run.set_node(cmd.node, NodeStatus.ESCALATED)
            run.hold(TaskStatus.ESCALATED, cmd.contributor, limit)
        else:
            run.set_node(cmd.node, NodeStatus.QUARANTINED)
            run.hold(TaskStatus.QUARANTINED, cmd.contributor, limit)
        return f"failed {target}; {limit}", {"node": cmd.node}
    run.send_to_rework(spec, reason)
    return f"failed {target}; sent back for rework", {"node": cmd.node}
