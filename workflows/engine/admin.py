"""Handlers of admin operations: edit a submission, release someone's claim, escalate and
de-escalate, resolve a quarantine, tag and untag, retry a failed task."""

from __future__ import annotations

from workflows import events
from workflows.engine.consensus import drop_slot, finish
from workflows.engine.run import Rejected, _Handled, _Run
from workflows.forms import validate_form
from workflows.graph import NodeKind
from workflows.messages import (
    LLM_ACTOR_PREFIX,
    Deescalate,
    EditSubmission,
    Escalate,
    NodeStatus,
    QuarantineAction,
    ReleaseClaim,
    ResolveQuarantine,
    RetryFailed,
    Tag,
    TaskStatus,
    Untag,
)


def _admin_not_paused(run: _Run, what: str) -> None:
    if run.state.status == TaskStatus.PAUSED:
        raise Rejected(f"task is Paused; resume it before you {what}")


def _edit_submission(run: _Run, cmd: EditSubmission) -> _Handled:
    spec = run.spec(cmd.node)
    node = run.node(cmd.node)
    has_submission = node.attempts > 0 or node.last_review is not None
    if spec.kind not in (NodeKind.SUBTASK, NodeKind.REVIEW) or not has_submission:
        raise Rejected(f"node '{cmd.node}' has no submission to edit")
    merged = {**node.values, **cmd.values}
    checked = validate_form(spec.fields, merged)
    if not checked.ok:
        raise Rejected(f"the edited values of '{cmd.node}' are invalid", checked.errors)
    before = dict(node.values)
    node.values = checked.values
    run.emit(
        cmd.admin,
        cmd.node,
        f"{cmd.admin} edited the submission of {cmd.node}"
        + (f": {cmd.reason}" if cmd.reason else ""),
        events.SubmissionEdited(before=before, after=checked.values, reason=cmd.reason),
    )
    return f"edited {cmd.node}", {"node": cmd.node}


def _release_claim(run: _Run, cmd: ReleaseClaim) -> _Handled:
    spec = run.spec(cmd.node)
    node = run.node(cmd.node)
    if spec.consensus is not None and node.consensus is not None:
        holders = [s.claim.holder for s in node.consensus.slots]
        if not holders:
            raise Rejected(f"node '{cmd.node}' has no live claim (it is {node.status})")
        if cmd.holder is None and len(holders) > 1:
            raise Rejected(
                f"{len(holders)} people hold places on '{cmd.node}' ({', '.join(holders)}); "
                "say whose claim to release (holder)"
            )
        holder = cmd.holder or holders[0]
        if holder not in holders:
            raise Rejected(
                f"{holder} holds no place on '{cmd.node}'; its holders: {', '.join(holders)}"
            )
        drop_slot(run, cmd.node, holder)
        run.emit(
            cmd.admin,
            cmd.node,
            f"{cmd.admin} released {holder}'s claim on {cmd.node}"
            + (f": {cmd.reason}" if cmd.reason else ""),
            events.ClaimReleasedByAdmin(holder=holder, reason=cmd.reason),
        )
        return f"released {holder}'s claim on {cmd.node}", {"node": cmd.node}
    if node.claim is None:
        raise Rejected(f"node '{cmd.node}' has no live claim (it is {node.status})")
    if node.claim.holder.startswith(LLM_ACTOR_PREFIX):
        raise Rejected(f"an LLM is generating '{cmd.node}'; its claim cannot be released")
    holder = node.claim.holder
    run.drop_claim(cmd.node)
    run.emit(
        cmd.admin,
        cmd.node,
        f"{cmd.admin} released {holder}'s claim on {cmd.node}"
        + (f": {cmd.reason}" if cmd.reason else ""),
        events.ClaimReleasedByAdmin(holder=holder, reason=cmd.reason),
    )
    return f"released {holder}'s claim on {cmd.node}", {"node": cmd.node}


def _escalate(run: _Run, cmd: Escalate) -> _Handled:
    if run.state.status != TaskStatus.IN_PROGRESS:
        raise Rejected(f"only an In Progress task can be escalated; this one is {run.state.status}")
    run.hold(TaskStatus.ESCALATED, cmd.admin, cmd.reason)
    run.emit(cmd.admin, None, f"{cmd.admin} escalated the task: {cmd.reason}", events.Escalated())
    return "escalated", {}


def _deescalate(run: _Run, cmd: Deescalate) -> _Handled:
    if run.state.status != TaskStatus.ESCALATED:
        raise Rejected(f"task is {run.state.status}, not Escalated; nothing to de-escalate")
    for spec in run.pipeline.nodes:
        node = run.node(spec.name)
        escalated_claim = node.claim is not None and node.claim.returns_to == NodeStatus.ESCALATED
        if spec.consensus is not None and node.status == NodeStatus.ESCALATED:
            continue  # goes on with its merged answer, after the task is back in progress
        if node.status == NodeStatus.ESCALATED or escalated_claim:
            # Back to the ordinary reviewer pool, with a fresh re-review allowance.
            node.claim = None
            node.failures = 0
            run.set_node(spec.name, NodeStatus.AVAILABLE)
    run.unhold(cmd.admin, "de-escalated")
    run.emit(
        cmd.admin,
        None,
        f"{cmd.admin} de-escalated the task" + (f": {cmd.reason}" if cmd.reason else ""),
        events.Deescalated(),
    )
    for spec in run.pipeline.nodes:
        if spec.consensus is not None and run.node(spec.name).status == NodeStatus.ESCALATED:
            finish(run, spec.name)
    return "de-escalated", {}


def _resolve_quarantine(run: _Run, cmd: ResolveQuarantine) -> _Handled:
    if run.state.status != TaskStatus.QUARANTINED:
        raise Rejected(f"task is {run.state.status}, not Quarantined; nothing to resolve")
    held = [s for s in run.pipeline.nodes if run.node(s.name).status == NodeStatus.QUARANTINED]
    note = f": {cmd.reason}" if cmd.reason else ""
    run.emit(
        cmd.admin,
        None,
        f"{cmd.admin} resolved the quarantine with '{cmd.action.value}'{note}",
        events.QuarantineResolved(action=cmd.action.value, reason=cmd.reason),
    )
    if cmd.action == QuarantineAction.FAIL:
        run.hold(TaskStatus.FAILED, cmd.admin, cmd.reason or "failed by an admin from quarantine")
        return "task failed", {}
    run.unhold(cmd.admin, f"quarantine resolved ({cmd.action.value})")
    for spec in held:
        node = run.node(spec.name)
        node.failures = 0
        if spec.consensus is not None:
            if cmd.action == QuarantineAction.REWORK:
                run.new_round(spec.name, cmd.reason)
            else:
                finish(run, spec.name)
            continue
        if cmd.action == QuarantineAction.REWORK:
            reason = node.last_review.reason if node.last_review else None
            run.send_to_rework(spec, reason)
        else:
            target = run.pipeline.reviewed_node(spec)
            run.set_node(spec.name, NodeStatus.FINISHED)
            run.set_node(target, NodeStatus.FINISHED)
            run.after_finished(target)
            run.after_finished(spec.name)
    return f"quarantine resolved: {cmd.action.value}", {}


def _tag(run: _Run, cmd: Tag) -> _Handled:
    new = list(dict.fromkeys(t.strip() for t in cmd.tags if t.strip()))
    new = [t for t in new if t not in run.state.tags]
    if not new:
        return "already tagged", {}
    run.state.tags.extend(new)
    run.emit(cmd.by, None, f"{cmd.by} tagged {', '.join(new)}", events.Tagged(tags=new))
    return f"tagged {', '.join(new)}", {}


def _untag(run: _Run, cmd: Untag) -> _Handled:
    gone = [t for t in dict.fromkeys(t.strip() for t in cmd.tags) if t in run.state.tags]
    if not gone:
        raise Rejected(
            f"none of these tags are on the task: {', '.join(cmd.tags)}; "
            f"its tags are: {', '.join(run.state.tags) or '(none)'}"
        )
    run.state.tags = [t for t in run.state.tags if t not in gone]
    run.emit(cmd.by, None, f"{cmd.by} removed tags {', '.join(gone)}", events.Untagged(tags=gone))
    return f"removed {', '.join(gone)}", {}


def _retry(run: _Run, cmd: RetryFailed) -> _Handled:
    if run.state.status != TaskStatus.FAILED:
        raise Rejected(f"task is {run.state.status}, not Failed; nothing to retry")
    for node in run.state.nodes.values():
        node.error = None
    run.unhold(cmd.admin, "retried")
    run.emit(
        cmd.admin,
        None,
        f"{cmd.admin} retried the task" + (f": {cmd.reason}" if cmd.reason else ""),
        events.Retried(),
    )
    return "retried", {}
