"""The pure task state machine: ``(state, command) -> (new state, result, events)``.

Every rule of a task's lifecycle lives here and nowhere else: claims and roles, forms, reviews
and rework routing, re-review limits, gates and joins, pause and resume, LLM results, admin
operations. The module imports no Temporal and does no I/O; the workflow (``task.py``) is a thin
shell that feeds it commands and performs what the resulting state asks for (run an LLM, arm a
claim timer, upsert search attributes).

Inputs that would need randomness or a clock (claim tokens, "now") come in through
:class:`Context`, so the same inputs always give the same outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from workflows import events, expr
from workflows.evaluators import evaluate_human, evaluate_programmatic
from workflows.forms import validate_form
from workflows.graph import (
    EvaluatorKind,
    EvaluatorMode,
    FieldSource,
    LimitAction,
    NodeKind,
    NodeSpec,
    Pipeline,
    RejectionRouting,
)
from workflows.messages import (
    LLM_ACTOR_PREFIX,
    Activate,
    Claim,
    ClaimInfo,
    ClaimTimeout,
    Command,
    CommandResult,
    Deescalate,
    EditSubmission,
    Escalate,
    EvaluationRecord,
    JudgeResult,
    LlmDraft,
    LlmFailure,
    LlmResult,
    LlmStarted,
    NodeState,
    NodeStatus,
    Pause,
    QuarantineAction,
    Regenerate,
    Release,
    ReleaseClaim,
    ResolveQuarantine,
    Resume,
    RetryFailed,
    Review,
    ReviewRecord,
    SaveDraft,
    Submit,
    Tag,
    TaskState,
    TaskStatus,
    TaskView,
    TimelineEvent,
    Untag,
    Verdict,
)

# Derived columns the store computes too: they live with the contract; these names stay.
from workflows.messages import assignees as assignees
from workflows.messages import current_nodes as current_nodes

TIMELINE_KEPT = 200
"""How many recent timeline events the workflow state keeps (the store keeps all of them)."""
RESPONSES_KEPT = 1000
"""How many recent request ids are remembered for idempotent repeats."""
PIPELINE_ACTOR = "pipeline"
"""Who pauses and resumes tasks when their whole pipeline is paused or resumed."""
SYSTEM = "system"

# Task states in which contributors may still do work on claims they already hold.
_WORKING = {TaskStatus.IN_PROGRESS, TaskStatus.ESCALATED, TaskStatus.QUARANTINED}


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


# --------------------------------------------------------------------------- public API


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


def check_seed_data(pipeline: Pipeline, data: Mapping[str, Any]) -> dict[str, str]:
    """Per-key errors for a task's seed data (empty when it is fine)."""
    fields = pipeline.dataset_fields()
    known = {f.name for f in fields}
    errors = {
        key: f"unknown seed field '{key}'; this pipeline's dataset fields are: "
        + (", ".join(sorted(known)) or "(none)")
        for key in data
        if key not in known
    }
    present = {f.name: data[f.name] for f in fields if f.name in data}
    # Predefined fields are read-only in forms; validate them as if they were inputs.
    as_inputs = [f.model_copy(update={"source": FieldSource.INPUT}) for f in fields]
    result = validate_form(as_inputs, present)
    errors.update(result.errors)
    return errors


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


def claim_limit(pipeline: Pipeline, roles: Iterable[str]) -> int | None:
    """The most claims a person with ``roles`` may hold in ``pipeline`` at once (None: no
    limit). With several limited roles, the most generous applies."""
    applicable = [pipeline.claim_limits[r] for r in roles if r in pipeline.claim_limits]
    return max(applicable) if applicable else None


def task_view(state: TaskState, workflow_id: str, *, timeline: bool = True) -> TaskView:
    """The task as callers see it (the ``state`` query; projection snapshots)."""
    return TaskView(
        workflow_id=workflow_id,
        task_key=state.task_key,
        pipeline=state.pipeline_name,
        pipeline_hash=state.pipeline_hash,
        status=state.status,
        nodes=list(state.nodes.values()),
        data=state.data,
        tags=state.tags,
        created_at=state.created_at,
        updated_at=state.updated_at,
        finished_at=state.finished_at,
        hold_reason=state.hold_reason,
        seq=state.seq,
        timeline=state.timeline if timeline else [],
    )


def task_data(state: TaskState) -> dict[str, Any]:
    """Seed data plus every node's values, by field name and as ``node.field``."""
    data: dict[str, Any] = dict(state.data)
    for node in state.nodes.values():
        for key, value in node.values.items():
            data[key] = value
            data[f"{node.name}.{key}"] = value
    return data


def claimable(
    pipeline: Pipeline, state: TaskState, contributor: str, roles: list[str]
) -> list[str]:
    """The nodes of this task that ``contributor`` could claim right now."""
    return [
        spec.name
        for spec in pipeline.nodes
        if _claim_refusal(pipeline, state, spec, contributor, roles) is None
    ]


def self_review_blocked(pipeline: Pipeline, nodes: Mapping[str, NodeState]) -> dict[str, str]:
    """Review nodes mapped to the contributor who may not review them (their submitter)."""
    blocked: dict[str, str] = {}
    for spec in pipeline.nodes:
        if spec.kind == NodeKind.REVIEW and spec.prevent_self_review:
            submitter = nodes[pipeline.reviewed_node(spec)].submitted_by
            if submitter is not None:
                blocked[spec.name] = submitter
    return blocked


def llm_nodes_ready(pipeline: Pipeline, state: TaskState) -> list[str]:
    """LLM nodes waiting for the workflow to start a generation."""
    if state.status != TaskStatus.IN_PROGRESS:
        return []
    return [
        spec.name
        for spec in pipeline.nodes
        if spec.is_llm_node
        and state.nodes[spec.name].status == NodeStatus.AVAILABLE
        and state.nodes[spec.name].error is None
    ]


def llm_drafts_ready(pipeline: Pipeline, state: TaskState) -> list[tuple[str, int]]:
    """Mixed input + LLM nodes whose LLM draft is wanted: ``(node, run)`` pairs to generate."""
    if state.status != TaskStatus.IN_PROGRESS:
        return []
    ready: list[tuple[str, int]] = []
    for spec in pipeline.nodes:
        node = state.nodes[spec.name]
        if (
            node.llm_draft_wanted > node.llm_draft_runs
            and node.status in (NodeStatus.AVAILABLE, NodeStatus.CLAIMED)
            and spec.llm_fields()
        ):
            ready.append((spec.name, node.llm_draft_wanted))
    return ready


def judges_ready(state: TaskState) -> list[tuple[str, str, int]]:
    """LLM judges to run: ``(node, evaluator name, submission run)`` triples."""
    return [
        (node.name, name, node.judge_run)
        for node in state.nodes.values()
        for name in node.judges_pending
    ]


def inline_evaluations(pipeline: Pipeline, state: TaskState, name: str) -> list[EvaluationRecord]:
    """The verdicts of ``name``'s inline evaluators on its current draft (or values)."""
    spec = pipeline.node(name)
    inline = [
        e
        for e in spec.evaluators
        if e.mode == EvaluatorMode.INLINE and e.kind != EvaluatorKind.LLM_JUDGE
    ]
    if not inline:
        return []
    node = state.nodes[name]
    data = task_data(state)
    data.update(node.draft)
    return [evaluate_programmatic(e, name, data) for e in inline]


def next_claim_deadline(state: TaskState) -> datetime | None:
    """When the earliest live claim expires (None while nothing can expire)."""
    deadlines = [
        n.claim.expires_at
        for n in state.nodes.values()
        if n.claim is not None and n.claim.expires_at is not None
    ]
    return min(deadlines) if deadlines else None


def expired_claims(state: TaskState, now: datetime) -> list[tuple[str, str]]:
    """``(node, token)`` of every claim whose timeout has passed."""
    return [
        (n.name, n.claim.token)
        for n in state.nodes.values()
        if n.claim is not None and n.claim.expires_at is not None and n.claim.expires_at <= now
    ]


# --------------------------------------------------------------------------- internals


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


def _claim_refusal(
    pipeline: Pipeline, state: TaskState, spec: NodeSpec, contributor: str, roles: list[str]
) -> str | None:
    """Why ``contributor`` may not claim ``spec`` now, or None if they may."""
    node = state.nodes[spec.name]
    if not spec.is_human:
        if spec.is_llm_node:
            return f"node '{spec.name}' is generated by an LLM; it cannot be claimed"
        return (
            f"node '{spec.name}' is a {spec.kind} node; only subtask and review nodes are claimed"
        )
    escalated_review = (
        state.status == TaskStatus.ESCALATED
        and node.status == NodeStatus.ESCALATED
        and spec.escalation_role is not None
    )
    if escalated_review:
        assert spec.escalation_role is not None
        if spec.escalation_role not in roles:
            return (
                f"node '{spec.name}' is Escalated; only the escalation role "
                f"'{spec.escalation_role}' may claim it"
            )
    else:
        refusal = _status_refusal(state, "claim")
        if refusal:
            return refusal
        if node.status == NodeStatus.CLAIMED:
            holder = node.claim.holder if node.claim else "someone"
            if holder == contributor:
                return f"you already hold the claim on '{spec.name}'"
            return f"node '{spec.name}' is already Claimed by {holder}"
        if node.status != NodeStatus.AVAILABLE:
            return f"node '{spec.name}' is {node.status}, not Available"
        if spec.roles and not set(spec.roles) & set(roles):
            return (
                f"claiming '{spec.name}' needs one of the roles {', '.join(spec.roles)}; "
                f"{contributor} has {', '.join(roles) or 'no roles'}"
            )
    if node.rework_only is not None and node.rework_only != contributor:
        return (
            f"the rework of '{spec.name}' is reserved for {node.rework_only}, who made the "
            "original submission (rejection routing same_person)"
        )
    if node.rework_exclude is not None and node.rework_exclude == contributor:
        return (
            f"you made the original submission of '{spec.name}'; rejection routing "
            "pool_exclude gives the rework to someone else"
        )
    if spec.kind == NodeKind.REVIEW and spec.prevent_self_review:
        reviewed = state.nodes[pipeline.reviewed_node(spec)]
        if reviewed.submitted_by == contributor:
            return (
                f"you submitted '{reviewed.name}', so you may not review it in "
                f"'{spec.name}' (self-review is prevented)"
            )
    return None


def _status_refusal(state: TaskState, action: str) -> str | None:
    status = state.status
    if status == TaskStatus.IN_PROGRESS:
        return None
    if status == TaskStatus.FINISHED:
        return "task is Finished; it accepts no more work"
    if status == TaskStatus.PAUSED:
        if action == "claim":
            return "task is Paused (its pipeline is paused); no new claims until it is resumed"
        return (
            f"task is Paused (its pipeline is paused); you may {action} after it resumes "
            "(your claim is kept and its timeout is frozen)"
        )
    reason = f" ({state.hold_reason})" if state.hold_reason else ""
    if action == "claim":
        return f"task is {status}{reason}; no new claims until an admin resolves it"
    if status not in _WORKING:
        return f"task is {status}{reason}; you may {action} once it is In Progress"
    return None


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

    def begin(self) -> None:
        """Leave Pending: finish the start node and open the first node(s)."""
        self.set_task(TaskStatus.IN_PROGRESS, self.actor, "work can start")
        start = self.pipeline.start()
        self.set_node(start.name, NodeStatus.FINISHED)
        self.after_finished(start.name)

    def pause(self, actor: str, reason: str | None) -> None:
        self.state.status_before_pause = self.state.status
        self.state.paused_by = actor
        for node in self.state.nodes.values():
            claim = node.claim
            if claim is not None and claim.expires_at is not None:
                remaining = max(0.0, (claim.expires_at - self.ctx.now).total_seconds())
                node.claim = claim.model_copy(
                    update={"expires_at": None, "remaining_seconds": remaining}
                )
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


# --------------------------------------------------------------------------- handlers

_Handled = tuple[str, dict[str, Any]]


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
    run.held_claim(cmd.node, cmd.contributor, cmd.token)
    run.drop_claim(cmd.node)
    run.emit(cmd.contributor, cmd.node, f"{cmd.contributor} released {cmd.node}", events.Released())
    return f"released {cmd.node}; the draft is kept", {"node": cmd.node}


def _save_draft(run: _Run, cmd: SaveDraft) -> _Handled:
    if run.state.status == TaskStatus.FINISHED:
        raise Rejected("task is Finished; it accepts no more work")
    node = run.held_claim(cmd.node, cmd.contributor, cmd.token)
    spec = run.spec(cmd.node)
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
    if spec.kind != NodeKind.SUBTASK:
        raise Rejected(f"node '{cmd.node}' is a {spec.kind} node; use review to decide it")
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
    for node in state.nodes.values():
        claim = node.claim
        if claim is not None and claim.remaining_seconds is not None:
            node.claim = claim.model_copy(
                update={
                    "expires_at": run.ctx.now + timedelta(seconds=claim.remaining_seconds),
                    "remaining_seconds": None,
                }
            )
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
    claim = node.claim
    if claim is None or claim.token != cmd.token:
        raise Rejected("that claim is no longer live")
    if claim.expires_at is None or claim.expires_at > run.ctx.now:
        raise Rejected("that claim has not expired")
    holder = claim.holder
    run.drop_claim(cmd.node)
    run.emit(
        SYSTEM,
        cmd.node,
        f"{holder}'s claim on {cmd.node} timed out and was released; the draft is kept",
        events.ClaimTimedOut(holder=holder),
    )
    return f"released {cmd.node} after the claim timeout", {"node": cmd.node}


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


# -- admin


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
    run.spec(cmd.node)
    node = run.node(cmd.node)
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
