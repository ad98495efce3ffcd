"""Consensus nodes in the engine: slots (each person's place on an item, with its own claim and
draft), exactly ``needed`` answers, the merge when the last one arrives, adaptive overlap, what a
disagreement does, a new round after a failed review, and the adjudicate command.

How a consensus node maps onto the nine node states: Available while a place is open (some may
already be claimed or answered), Claimed while every open place is claimed and answers are
still missing, Submitted once merged when a review follows, Finished once merged (agreed, or
handed to its adjudicate node), Escalated / Quarantined when it could not agree and its
``on_disagreement`` says so.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from workflows import events
from workflows.consensus import merge
from workflows.engine.run import SYSTEM, Rejected, _Handled, _Run
from workflows.forms import validate_form
from workflows.graph import Disagreement, NodeKind, ServeOrder
from workflows.messages import (
    Adjudicate,
    Answer,
    ClaimInfo,
    NodeState,
    NodeStatus,
    Slot,
    TaskStatus,
)


def take_slot(run: _Run, name: str, holder: str) -> tuple[ClaimInfo, int, int]:
    """Give ``holder`` a place on consensus node ``name``: the claim, its place number, of how
    many."""
    node = run.node(name)
    item = node.consensus
    assert item is not None
    timeout = timedelta(seconds=run.pipeline.claim_timeout_seconds)
    claim = ClaimInfo(
        holder=holder,
        token=run.ctx.token,
        claimed_at=run.ctx.now,
        expires_at=run.ctx.now + timeout,
    )
    item.slots.append(Slot(claim=claim, draft=dict(node.draft)))
    place = len(item.answers) + len(item.slots)
    spec = run.pipeline.node(name)
    assert spec.consensus is not None
    run.restate(name)
    if spec.consensus.serve == ServeOrder.SPREAD:
        node.available_since = run.ctx.now  # to the back of the queue
    return claim, place, item.needed


def held_slot(run: _Run, name: str, contributor: str, token: str) -> Slot:
    """``contributor``'s place on consensus node ``name``, if its claim is live under
    ``token``."""
    node = run.node(name)
    item = node.consensus
    slot = item.slot_of(contributor) if item is not None else None
    if slot is None:
        answered = item is not None and contributor in {a.by for a in item.answers}
        if answered:
            raise Rejected(
                f"you already answered '{name}'; each person answers a consensus item once"
            )
        raise Rejected(
            f"you hold no place on '{name}' (it is {node.status}); the claim may have been "
            "released or timed out: claim it again"
        )
    if slot.claim.token != token:
        raise Rejected(
            f"stale claim token for '{name}': that claim was released or timed out and you "
            "claimed again; use the token of your current claim"
        )
    return slot


def drop_slot(run: _Run, name: str, holder: str) -> None:
    """Give ``holder``'s place back: it opens for someone else (their draft goes with them)."""
    item = run.node(name).consensus
    assert item is not None
    item.slots = [s for s in item.slots if s.claim.holder != holder]
    run.restate(name)


def slot_by_token(node: NodeState, token: str) -> Slot | None:
    item = node.consensus
    if item is None:
        return None
    return next((s for s in item.slots if s.claim.token == token), None)


def answer(run: _Run, name: str, contributor: str, values: dict[str, Any]) -> tuple[int, int]:
    """Record ``contributor``'s answer; merge when it is the last one needed. Returns the
    answer's number and how many were needed."""
    node = run.node(name)
    item = node.consensus
    assert item is not None
    item.slots = [s for s in item.slots if s.claim.holder != contributor]
    item.answers.append(Answer(by=contributor, values=values, at=run.ctx.now, round=item.round))
    number, needed = len(item.answers), item.needed
    if len(item.answers) >= item.needed:
        settle(run, name)
    else:
        run.restate(name)
    return number, needed


def settle(run: _Run, name: str) -> None:
    """Every needed answer is in: merge them, then agree, ask one more person (adaptive
    overlap), or act on the disagreement."""
    spec = run.pipeline.node(name)
    consensus = spec.consensus
    assert consensus is not None
    node = run.node(name)
    item = node.consensus
    assert item is not None
    result = merge(spec, item.answers)
    item.result = result
    if not result.agreed and item.needed < consensus.most:
        item.needed += 1
        run.consensus_step(name, "more", f"asking one more person ({item.needed} answers)")
        run.restate(name)
        return
    node.values = dict(result.values)
    node.submitted_by = None
    node.submitted_at = run.ctx.now
    node.attempts += 1
    node.claim = None
    node.error = None
    node.rework_reason = node.rework_only = node.rework_exclude = None
    run.evaluate(name, SYSTEM)
    outcome = "agreed" if result.agreed else consensus.on_disagreement.value
    run.consensus_step(name, outcome, _describe(outcome, result.agreement, consensus.threshold))
    if not result.agreed and consensus.on_disagreement == Disagreement.ESCALATE:
        run.set_node(name, NodeStatus.ESCALATED)
        run.hold(TaskStatus.ESCALATED, SYSTEM, f"'{name}' did not reach agreement")
        return
    if not result.agreed and consensus.on_disagreement == Disagreement.QUARANTINE:
        run.set_node(name, NodeStatus.QUARANTINED)
        run.hold(TaskStatus.QUARANTINED, SYSTEM, f"'{name}' did not reach agreement")
        return
    finish(run, name)


def finish(run: _Run, name: str) -> None:
    """The merged answer moves on: Submitted when a review follows, else Finished."""
    spec = run.pipeline.node(name)
    reviewed = any(
        run.pipeline.node(s).kind == NodeKind.REVIEW
        and run.pipeline.reviewed_node(run.pipeline.node(s)) == name
        for s in spec.successors()
    )
    run.set_node(name, NodeStatus.SUBMITTED if reviewed else NodeStatus.FINISHED)
    run.after_finished(name)


def _describe(outcome: str, agreement: float | None, threshold: float) -> str:
    figure = "n/a" if agreement is None else f"{agreement:.2f}"
    if outcome == "agreed":
        return f"agreed (agreement {figure}, threshold {threshold:.2f})"
    return f"no agreement (agreement {figure}, threshold {threshold:.2f}): {outcome}"


def _adjudicate(run: _Run, cmd: Adjudicate) -> _Handled:
    spec = run.spec(cmd.node)
    if spec.kind != NodeKind.ADJUDICATE:
        raise Rejected(
            f"node '{cmd.node}' is a {spec.kind} node, not an adjudicate node; use "
            + ("review" if spec.kind == NodeKind.REVIEW else "submit")
        )
    if run.state.status not in (TaskStatus.IN_PROGRESS,):
        raise Rejected(f"task is {run.state.status}; you may adjudicate once it is In Progress")
    run.held_claim(cmd.node, cmd.contributor, cmd.token)
    target = run.pipeline.adjudicated_node(spec)
    target_spec = run.pipeline.node(target)
    target_node = run.node(target)
    item = target_node.consensus
    assert item is not None and item.result is not None
    errors: dict[str, str] = {}
    reason = (cmd.reason or "").strip() or None
    if reason is None:
        errors["reason"] = "required: say why this is the final answer"
    base: dict[str, Any] = {}
    if cmd.pick is not None:
        picked = next((a for a in item.answers if a.by == cmd.pick), None)
        if picked is None:
            who = ", ".join(a.by for a in item.answers)
            errors["pick"] = f"{cmd.pick} did not answer '{target}'; pick one of: {who}"
        else:
            base = dict(picked.values)
    if cmd.pick is None and not cmd.values:
        errors["values"] = "pick an annotator's answer or write the final answer (or both)"
    checked = validate_form(target_spec.fields, {**base, **cmd.values})
    if not errors and not checked.ok:
        errors.update(checked.errors)
    if errors:
        raise Rejected(f"the adjudication of '{target}' is incomplete", errors)
    before = dict(target_node.values)
    target_node.values = checked.values
    item.result = item.result.model_copy(
        update={
            "values": checked.values,
            "adjudicated_by": cmd.contributor,
            "adjudication_reason": reason,
            "picked": cmd.pick,
        }
    )
    node = run.node(cmd.node)
    node.claim = None
    node.values = checked.values
    node.submitted_by = cmd.contributor
    node.submitted_at = run.ctx.now
    node.attempts += 1
    run.emit(
        cmd.contributor,
        cmd.node,
        f"{cmd.contributor} settled {target}"
        + (f" with {cmd.pick}'s answer" if cmd.pick else "")
        + f": {reason}",
        events.Adjudicated(
            target=target, picked=cmd.pick, values=checked.values, before=before, reason=reason
        ),
    )
    run.set_node(cmd.node, NodeStatus.FINISHED)
    run.after_finished(cmd.node)
    return f"settled {target}", {"node": cmd.node}
