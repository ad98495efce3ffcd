"""One command's application: the :class:`Context` it runs in, its :class:`Outcome`, the
:class:`Rejected` refusal, and ``_Run``, the working copy of the task every handler changes it
through (events, node and task status, claims, flow, evaluations, rework, pause and holds).
Also what a task remembers (:data:`TIMELINE_KEPT`, :data:`RESPONSES_KEPT`) and the bookkeeping
behind it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from workflows import events, expr
from workflows.engine.queries import task_data
from workflows.evaluators import evaluate_human, evaluate_programmatic
from workflows.graph import (
    EvaluatorKind,
    NodeKind,
    NodeSpec,
    Pipeline,
    RejectionRouting,
    ServeOrder,
)
from workflows.messages import (
    ClaimInfo,
    CommandResult,
    ConsensusState,
    EvaluationRecord,
    NodeState,
    NodeStatus,
    TaskState,
    TaskStatus,
    TimelineEvent,
)

TIMELINE_KEPT = 200
"""How many recent timeline events the workflow state keeps (the store keeps all of them)."""
RESPONSES_KEPT = 1000
"""How many recent request ids are remembered for idempotent repeats."""
PIPELINE_ACTOR = "pipeline"
"""Who pauses and resumes tasks when their whole pipeline is paused or resumed."""
SYSTEM = "system"


@dataclass(frozen=True)
class Context:
    """What a transition may need from the outside world, supplied by the caller."""

    now: datetime
    token: str = "pending-token"
    """A fresh, unique claim token, used if the command creates a claim."""


@dataclass
class Outcome:
    state: TaskState
    result: CommandResult
    events: list[TimelineEvent] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.result.accepted


class Rejected(Exception):
    """A command that makes no sense in the task's current state. Nothing changes."""

    def __init__(self, message: str, field_errors: Mapping[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.field_errors = dict(field_errors or {})


def _working_copy(state: TaskState) -> TaskState:
    """A copy a transition may mutate without touching ``state``.

    Only the mutable parts are copied deeply (the nodes); the timeline and the answer log hold
    frozen models, so copying their containers is enough. This keeps a command's cost
    independent of how many events and request ids the task remembers.
    """
    return state.model_copy(
        update={
            "nodes": {name: node.model_copy(deep=True) for name, node in state.nodes.items()},
            "tags": list(state.tags),
            "timeline": list(state.timeline),
            "responses": dict(state.responses),
        }
    )


def _remember(state: TaskState, result: CommandResult) -> None:
    state.responses[result.request_id] = result
    while len(state.responses) > RESPONSES_KEPT:
        state.responses.pop(next(iter(state.responses)))


class _Run:
    """One command's application: the mutable working copy plus the events it produced."""

    def __init__(self, pipeline: Pipeline, state: TaskState, ctx: Context, actor: str):
        self.pipeline = pipeline
        self.state = state
        self.ctx = ctx
        self.actor = actor
        self.events: list[TimelineEvent] = []
        self.recorded: list[EvaluationRecord] = []
        """Evaluations recorded by this command."""

    # -- bookkeeping

    def emit(self, actor: str, node: str | None, message: str, data: events.EventData) -> None:
        """Record one timeline event; its kind is that of ``data``'s model."""
        self.state.seq += 1
        event = TimelineEvent(
            seq=self.state.seq,
            at=self.ctx.now,
            kind=data.KIND.value,
            actor=actor,
            node=node,
            message=message,
            data=data.to_data(),
        )
        self.events.append(event)
        self.state.timeline.append(event)
        if len(self.state.timeline) > TIMELINE_KEPT:
            del self.state.timeline[: len(self.state.timeline) - TIMELINE_KEPT]

    def node(self, name: str) -> NodeState:
        return self.state.nodes[name]

    def spec(self, name: str) -> NodeSpec:
        try:
            return self.pipeline.node(name)
        except KeyError:
            known = ", ".join(n.name for n in self.pipeline.nodes)
            raise Rejected(f"unknown node '{name}'; this pipeline's nodes are: {known}") from None

    def set_node(self, name: str, status: NodeStatus, message: str | None = None) -> None:
        node = self.node(name)
        if node.status == status:
            return
        before = node.status
        node.status = status
        if status == NodeStatus.AVAILABLE:
            node.available_since = self.ctx.now
        self.emit(
            self.actor,
            name,
            message or f"{name}: {before} -> {status}",
            events.NodeStatusChanged(from_=before.value, to=status.value),
        )

    def set_task(self, status: TaskStatus, actor: str, message: str) -> None:
        before = self.state.status
        if before == status:
            return
        self.state.status = status
        if status == TaskStatus.FINISHED:
            self.state.finished_at = self.ctx.now
        self.emit(
            actor,
            None,
            f"task {before} -> {status}: {message}",
            events.TaskStatusChanged(from_=before.value, to=status.value),
        )

    # -- claims

    def grant_claim(self, name: str, holder: str, *, expires: bool = True) -> ClaimInfo:
        node = self.node(name)
        returns_to = node.status
        timeout = timedelta(seconds=self.pipeline.claim_timeout_seconds)
        node.claim = ClaimInfo(
            holder=holder,
            token=self.ctx.token,
            claimed_at=self.ctx.now,
            expires_at=self.ctx.now + timeout if expires else None,
            returns_to=returns_to,
        )
        self.set_node(name, NodeStatus.CLAIMED, f"{name} claimed by {holder}")
        return node.claim

    def drop_claim(self, name: str) -> None:
        node = self.node(name)
        assert node.claim is not None
        returns_to = node.claim.returns_to
        node.claim = None
        self.set_node(name, returns_to)

    def held_claim(self, name: str, contributor: str, token: str) -> NodeState:
        """The node, if ``contributor`` holds its live claim under ``token``."""
        self.spec(name)
        node = self.node(name)
        if node.claim is None:
            raise Rejected(
                f"you hold no claim on '{name}' (it is {node.status}); "
                "the claim may have been released or timed out: claim it again"
            )
        if node.claim.holder != contributor:
            raise Rejected(f"node '{name}' is claimed by {node.claim.holder}, not by {contributor}")
        if node.claim.token != token:
            raise Rejected(
                f"stale claim token for '{name}': that claim was released or timed out and "
                "the node was claimed again; use the token of your current claim"
            )
        return node

    # -- flow

    def pred_ready(self, pred: str, name: str) -> bool:
        """Whether the edge ``pred -> name`` has delivered its work."""
        status = self.node(pred).status
        if status == NodeStatus.FINISHED:
            return True
        spec = self.pipeline.node(name)
        return (
            spec.kind == NodeKind.REVIEW
            and status == NodeStatus.SUBMITTED
            and self.pipeline.reviewed_node(spec) == pred
        )

    def edge_dead(self, pred: str, name: str) -> bool:
        """Whether ``pred -> name`` can never deliver (N/A source, or a gate's untaken branch)."""
        node = self.node(pred)
        if node.status == NodeStatus.NA:
            return True
        spec = self.pipeline.node(pred)
        return (
            spec.kind == NodeKind.GATE
            and node.status == NodeStatus.FINISHED
            and node.values.get("route") != name
        )

    def reconsider(self, name: str) -> None:
        """Move a waiting node on if its live predecessors allow it (joins, gates, N/A)."""
        node = self.node(name)
        if node.status not in (NodeStatus.PENDING, NodeStatus.DEFERRED):
            return
        live = [p for p in self.pipeline.predecessors(name) if not self.edge_dead(p, name)]
        if not live:
            self.set_node(
                name, NodeStatus.NA, f"{name}: N/A (only reachable through untaken routes)"
            )
            for succ in self.pipeline.node(name).successors():
                self.reconsider(succ)
            return
        ready = [p for p in live if self.pred_ready(p, name)]
        if len(ready) == len(live):
            self.enter(name)
        elif ready:
            waiting = ", ".join(p for p in live if p not in ready)
            self.set_node(name, NodeStatus.DEFERRED, f"{name}: Deferred, waiting for {waiting}")

    def enter(self, name: str) -> None:
        spec = self.pipeline.node(name)
        node = self.node(name)
        if spec.kind == NodeKind.END:
            self.set_node(name, NodeStatus.FINISHED)
            self.set_task(TaskStatus.FINISHED, self.actor, "reached the end node")
        elif spec.kind == NodeKind.ADJUDICATE:
            self.enter_adjudication(name)
        elif spec.kind == NodeKind.GATE:
            data = task_data(self.state)
            route = spec.default
            for branch in spec.branches:
                if expr.truthy(branch.when, data):
                    route = branch.to
                    break
            node.values = {"route": route}
            self.set_node(name, NodeStatus.FINISHED, f"{name}: gate routed to {route}")
            self.after_finished(name)
        else:
            mixed = spec.kind == NodeKind.SUBTASK and spec.llm_fields() and not spec.is_llm_node
            if mixed and node.llm_draft_wanted == 0:
                node.llm_draft_wanted = 1
            if spec.kind == NodeKind.SUBTASK and not node.draft:
                data = task_data(self.state)
                node.draft = {
                    f.name: data[f.prefill]
                    for f in spec.input_fields()
                    if f.prefill is not None and data.get(f.prefill) is not None
                }
            if spec.consensus is not None:
                self.open_item(name)
            else:
                self.set_node(name, NodeStatus.AVAILABLE)

    def after_finished(self, name: str) -> None:
        for succ in self.pipeline.node(name).successors():
            self.reconsider(succ)

    def hand_in(self, name: str, values: dict[str, Any], by: str) -> None:
        """A subtask's work arrived (a person's form or an LLM's output)."""
        node = self.node(name)
        node.values = values
        node.draft = {}
        node.submitted_by = by
        node.submitted_at = self.ctx.now
        node.attempts += 1
        node.claim = None
        node.rework_reason = node.rework_only = node.rework_exclude = None
        node.error = None
        spec = self.pipeline.node(name)
        reviewed = any(
            self.pipeline.node(s).kind == NodeKind.REVIEW
            and self.pipeline.reviewed_node(self.pipeline.node(s)) == name
            for s in spec.successors()
        )
        self.set_node(name, NodeStatus.SUBMITTED if reviewed else NodeStatus.FINISHED)
        self.evaluate(name, by)
        self.after_finished(name)

    def evaluate(self, name: str, by: str) -> None:
        """Run ``name``'s evaluators on its new submission and record human ratings in it.

        Programmatic evaluators and human ratings are recorded at once; LLM judges are queued
        for the workflow (:func:`judges_ready`) and recorded when their verdict arrives.
        """
        spec = self.pipeline.node(name)
        node = self.node(name)
        node.judge_run += 1
        node.judges_pending = [e.name for e in spec.evaluators if e.kind == EvaluatorKind.LLM_JUDGE]
        evaluators = [e for e in spec.evaluators if e.kind != EvaluatorKind.LLM_JUDGE]
        if not evaluators and not any(f.evaluates for f in spec.fields):
            return
        data = task_data(self.state)
        for evaluator in evaluators:
            self.record_evaluation(evaluate_programmatic(evaluator, name, data))
        for f in spec.fields:
            if f.evaluates:
                record = evaluate_human(f, name, node.values.get(f.name), by)
                if record is not None:
                    self.record_evaluation(record)

    def record_evaluation(self, record: EvaluationRecord) -> None:
        verdict = (
            "error"
            if record.error
            else "passed"
            if record.passed
            else "failed"
            if record.passed is False
            else f"scored {record.score if record.score is not None else record.label}"
        )
        record = record.model_copy(update={"at": self.ctx.now, "seq": self.state.seq + 1})
        self.node(record.node).evaluations[f"{record.criterion}:{record.version}"] = record
        self.recorded.append(record)
        self.emit(
            record.actor or SYSTEM,
            record.node,
            f"{record.criterion} on {record.node}: {verdict}"
            + (f" ({record.error})" if record.error else ""),
            events.Evaluated(record=record),
        )

    def send_to_rework(self, review: NodeSpec, reason: str | None) -> None:
        target_name = self.pipeline.reviewed_node(review)
        target = self.node(target_name)
        target_spec = self.pipeline.node(target_name)
        if target_spec.consensus is not None:
            review_node = self.node(review.name)
            review_node.claim = None
            self.set_node(review.name, NodeStatus.PENDING)
            self.new_round(target_name, reason)
            return
        original = target.submitted_by
        target.rework_reason = reason
        target.rework_only = target.rework_exclude = None
        if target_spec.is_human and original is not None:
            if review.rejection_routing == RejectionRouting.SAME_PERSON:
                target.rework_only = original
            elif review.rejection_routing == RejectionRouting.POOL_EXCLUDE:
                target.rework_exclude = original
        target.draft = dict(target.values)
        review_node = self.node(review.name)
        review_node.claim = None
        self.set_node(review.name, NodeStatus.PENDING)
        self.set_node(target_name, NodeStatus.AVAILABLE, f"{target_name}: back to rework")

    # -- consensus (the handlers are in ``consensus``)

    def open_item(self, name: str) -> None:
        """A consensus node is reached: its first round opens with ``annotators`` places."""
        spec = self.pipeline.node(name)
        assert spec.consensus is not None
        node = self.node(name)
        if node.consensus is None:
            node.consensus = ConsensusState(
                needed=spec.consensus.annotators, opened_at=self.ctx.now
            )
        self.restate(name)

    def restate(self, name: str) -> None:
        """Set a consensus node's state from its places: Available while one is open, Claimed while
        every missing answer is claimed. Under ``finish_first`` the node keeps its first place in
        the work queue."""
        node = self.node(name)
        item = node.consensus
        assert item is not None
        status = NodeStatus.AVAILABLE if item.open_slots() > 0 else NodeStatus.CLAIMED
        self.set_node(name, status)
        spec = self.pipeline.node(name)
        assert spec.consensus is not None
        if status == NodeStatus.AVAILABLE and spec.consensus.serve == ServeOrder.FINISH_FIRST:
            node.available_since = item.opened_at or node.available_since

    def consensus_step(self, name: str, outcome: str, message: str) -> None:
        item = self.node(name).consensus
        assert item is not None
        result = item.result
        self.emit(
            SYSTEM,
            name,
            f"{name}: {message}",
            events.ConsensusStep(
                outcome=outcome,
                agreement=result.agreement if result else None,
                confidence=result.confidence if result else None,
                answers=len(item.answers),
                needed=item.needed,
                values=dict(result.values) if result else {},
                fields={k: v.model_dump(mode="json") for k, v in result.fields.items()}
                if result
                else {},
            ),
        )

    def new_round(self, name: str, reason: str | None) -> None:
        """A failed review (or a quarantine sent to rework): the item is answered again by people
        who have not answered it yet."""
        spec = self.pipeline.node(name)
        assert spec.consensus is not None
        node = self.node(name)
        item = node.consensus
        assert item is not None
        item.earlier.extend(item.answers)
        item.answers = []
        item.slots = []
        item.result = None
        item.round += 1
        item.needed = spec.consensus.annotators
        item.opened_at = self.ctx.now
        node.rework_reason = reason
        self.consensus_step(name, "new_round", f"round {item.round} opens for new people")
        self.set_node(name, NodeStatus.AVAILABLE, f"{name}: back for a new round")

    def enter_adjudication(self, name: str) -> None:
        """An adjudicate node is reached: it opens when its item did not agree, else it is done."""
        target = self.pipeline.adjudicated_node(self.pipeline.node(name))
        item = self.node(target).consensus
        if item is not None and item.result is not None and not item.result.agreed:
            self.set_node(name, NodeStatus.AVAILABLE, f"{name}: '{target}' needs adjudication")
            return
        self.set_node(name, NodeStatus.FINISHED, f"{name}: '{target}' agreed; nothing to settle")
        self.after_finished(name)

    def begin(self) -> None:
        """Leave Pending: finish the start node and open the first node(s)."""
        self.set_task(TaskStatus.IN_PROGRESS, self.actor, "work can start")
        start = self.pipeline.start()
        self.set_node(start.name, NodeStatus.FINISHED)
        self.after_finished(start.name)

    def pause(self, actor: str, reason: str | None) -> None:
        self.state.status_before_pause = self.state.status
        self.state.paused_by = actor

        def frozen(claim: ClaimInfo) -> ClaimInfo:
            if claim.expires_at is None:
                return claim
            remaining = max(0.0, (claim.expires_at - self.ctx.now).total_seconds())
            return claim.model_copy(update={"expires_at": None, "remaining_seconds": remaining})

        for node in self.state.nodes.values():
            if node.claim is not None:
                node.claim = frozen(node.claim)
            for slot in node.consensus.slots if node.consensus else []:
                slot.claim = frozen(slot.claim)
        self.set_task(TaskStatus.PAUSED, actor, reason or "paused")

    def hold(self, status: TaskStatus, actor: str, reason: str) -> None:
        if self.state.status != status:  # already held this way: keep where it returns to
            self.state.status_before_hold = self.state.status
        self.state.hold_reason = reason
        self.set_task(status, actor, reason)

    def unhold(self, actor: str, message: str) -> None:
        back = self.state.status_before_hold or TaskStatus.IN_PROGRESS
        self.state.status_before_hold = None
        self.state.hold_reason = None
        self.set_task(back, actor, message)


_Handled = tuple[str, dict[str, Any]]
