"""Handlers of the commands that move the whole task: pause and resume (with its pipeline),
activate (a Pending task), and the claim timeout the workflow's timer sends."""

from __future__ import annotations

from datetime import timedelta

from workflows import events
from workflows.engine.consensus import drop_slot, slot_by_token
from workflows.engine.run import SYSTEM, Rejected, _Handled, _Run
from workflows.messages import Activate, ClaimInfo, ClaimTimeout, Pause, Resume, TaskStatus


def _pause(run: _Run, cmd: Pause) -> _Handled:
    if run.state.status == TaskStatus.FINISHED:
        raise Rejected("task is Finished; there is nothing to pause")
    if run.state.status == TaskStatus.PAUSED:
        return "task is already Paused", {}
    run.pause(cmd.by, cmd.reason)
    return "paused", {}


def _resume(run: _Run, cmd: Resume) -> _Handled:
    state = run.state
    if state.status != TaskStatus.PAUSED:
        return f"task is {state.status}, not Paused; nothing to resume", {}
    if cmd.only_paused_by is not None and state.paused_by != cmd.only_paused_by:
        return (
            f"task was paused by {state.paused_by}, not {cmd.only_paused_by}; it stays Paused",
            {},
        )

    def thawed(claim: ClaimInfo) -> ClaimInfo:
        if claim.remaining_seconds is None:
            return claim
        return claim.model_copy(
            update={
                "expires_at": run.ctx.now + timedelta(seconds=claim.remaining_seconds),
                "remaining_seconds": None,
            }
        )

    for node in state.nodes.values():
        if node.claim is not None:
            node.claim = thawed(node.claim)
        for slot in node.consensus.slots if node.consensus else []:
            slot.claim = thawed(slot.claim)
    back = state.status_before_pause or TaskStatus.IN_PROGRESS
    state.status_before_pause = None
    state.paused_by = None
    run.set_task(back, cmd.by, "resumed")
    return "resumed", {}


def _activate(run: _Run, cmd: Activate) -> _Handled:
    if run.state.status == TaskStatus.PAUSED:
        if run.state.status_before_pause == TaskStatus.PENDING:
            raise Rejected("task is Paused; resume it before you activate it")
        return "task is already active", {}
    if run.state.status != TaskStatus.PENDING:
        return f"task is already active ({run.state.status})", {}
    run.begin()
    return "activated", {}


def _claim_timeout(run: _Run, cmd: ClaimTimeout) -> _Handled:
    run.spec(cmd.node)
    node = run.node(cmd.node)
    slot = slot_by_token(node, cmd.token)
    claim = slot.claim if slot is not None else node.claim
    if claim is None or claim.token != cmd.token:
        raise Rejected("that claim is no longer live")
    if claim.expires_at is None or claim.expires_at > run.ctx.now:
        raise Rejected("that claim has not expired")
    holder = claim.holder
    if slot is not None:
        drop_slot(run, cmd.node, holder)
    else:
        run.drop_claim(cmd.node)
    run.emit(
        SYSTEM,
        cmd.node,
        f"{holder}'s claim on {cmd.node} timed out and was released; the draft is kept",
        events.ClaimTimedOut(holder=holder),
    )
    return f"released {cmd.node} after the claim timeout", {"node": cmd.node}
