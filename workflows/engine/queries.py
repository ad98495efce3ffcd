"""Questions about a pipeline and a task's state that change nothing: seed data checks, claim
limits, the task's view and data, what is claimable or waiting for the workflow (LLM nodes,
LLM drafts, judges), inline evaluations, claim deadlines, and why the task's state refuses a
claim or a contributor's command."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from workflows.evaluators import evaluate_programmatic
from workflows.forms import validate_form
from workflows.graph import EvaluatorKind, EvaluatorMode, FieldSource, NodeKind, NodeSpec, Pipeline
from workflows.messages import (
    EvaluationRecord,
    NodeState,
    NodeStatus,
    TaskState,
    TaskStatus,
    TaskView,
    consensus_figures,
    merge_task_data,
)

# Task states in which contributors may still do work on claims they already hold.
_WORKING = {TaskStatus.IN_PROGRESS, TaskStatus.ESCALATED, TaskStatus.QUARANTINED}


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
    data = merge_task_data(state.data, ((n.name, n.values) for n in state.nodes.values()))
    for node in state.nodes.values():
        if node.consensus is not None and node.consensus.result is not None:
            data.update(consensus_figures(node.name, node.consensus.result.model_dump(mode="json")))
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
        c.expires_at for n in state.nodes.values() for c in n.claims() if c.expires_at is not None
    ]
    return min(deadlines) if deadlines else None


def expired_claims(state: TaskState, now: datetime) -> list[tuple[str, str]]:
    """``(node, token)`` of every claim whose timeout has passed."""
    return [
        (n.name, c.token)
        for n in state.nodes.values()
        for c in n.claims()
        if c.expires_at is not None and c.expires_at <= now
    ]


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
        if spec.consensus is not None:
            refusal = _slot_refusal(spec, node, contributor)
            if refusal:
                return refusal
        elif node.status == NodeStatus.CLAIMED:
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
    if spec.kind == NodeKind.ADJUDICATE:
        target = pipeline.adjudicated_node(spec)
        if contributor in _answered(state.nodes[target]):
            return (
                f"you answered '{target}', so you may not adjudicate it in '{spec.name}' "
                "(an adjudicator is not one of the annotators)"
            )
    if spec.kind == NodeKind.REVIEW and pipeline.node(pipeline.reviewed_node(spec)).consensus:
        target = pipeline.reviewed_node(spec)
        if contributor in _answered(state.nodes[target]):
            return (
                f"you answered '{target}', so you may not review it in '{spec.name}' "
                "(a reviewer of a consensus node is not one of its annotators)"
            )
    if spec.kind == NodeKind.REVIEW and spec.prevent_self_review:
        reviewed = state.nodes[pipeline.reviewed_node(spec)]
        if reviewed.submitted_by == contributor:
            return (
                f"you submitted '{reviewed.name}', so you may not review it in "
                f"'{spec.name}' (self-review is prevented)"
            )
    return None


def _answered(node: NodeState) -> set[str]:
    """Everyone who answered consensus node ``node`` (every round; nobody for other nodes)."""
    return node.consensus.answered() if node.consensus is not None else set()


def _slot_refusal(spec: NodeSpec, node: NodeState, contributor: str) -> str | None:
    """Why ``contributor`` may not take a place on consensus node ``spec`` now, or None."""
    item = node.consensus
    if item is None or node.status not in (NodeStatus.AVAILABLE, NodeStatus.CLAIMED):
        return f"node '{spec.name}' is {node.status}, not Available"
    if item.slot_of(contributor) is not None:
        return f"you already hold a place on '{spec.name}'; submit or release it"
    if contributor in _answered(node):
        return (
            f"you already answered '{spec.name}' on this task; each person answers a consensus "
            "item once"
        )
    if item.open_slots() == 0:
        return (
            f"every place on '{spec.name}' is taken ({len(item.answers)} answered, "
            f"{len(item.slots)} claimed, {item.needed} needed); it takes no more answers"
        )
    return None


def consensus_people(
    pipeline: Pipeline, nodes: Mapping[str, NodeState]
) -> dict[str, dict[str, str]]:
    """Per node, who may not claim it for consensus reasons and why: on a consensus node,
    everyone holding or having given an answer (``claimed`` / ``answered``); on a review or
    adjudicate node of one, its annotators (``blocked``). The store keeps these so the work queue
    never offers a person an item they already answered."""
    found: dict[str, dict[str, str]] = {}
    for spec in pipeline.nodes:
        node = nodes.get(spec.name)
        if node is None:
            continue
        if spec.consensus is not None and node.consensus is not None:
            people = {a: "answered" for a in _answered(node)}
            people.update({s.claim.holder: "claimed" for s in node.consensus.slots})
            if people:
                found[spec.name] = people
        target: str | None = None
        if spec.kind == NodeKind.ADJUDICATE:
            target = pipeline.adjudicated_node(spec)
        elif spec.kind == NodeKind.REVIEW:
            target = pipeline.reviewed_node(spec)
            if pipeline.node(target).consensus is None:
                target = None
        if target is not None and target in nodes:
            blocked = _answered(nodes[target])
            if blocked:
                found[spec.name] = {p: "blocked" for p in blocked}
    return found


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


def waits_only_for_people(pipeline: Pipeline, state: TaskState) -> bool:
    """The task, as it stands, needs nothing but a person's claim: no model call to run, no
    claim timer, In Progress. Such a task may wait without a workflow (lazy start)."""
    return (
        state.status == TaskStatus.IN_PROGRESS
        and not llm_nodes_ready(pipeline, state)
        and not llm_drafts_ready(pipeline, state)
        and not judges_ready(state)
        and next_claim_deadline(state) is None
        and any(node.status == NodeStatus.AVAILABLE for node in state.nodes.values())
    )


def start_ignores_data(pipeline: Pipeline) -> bool:
    """Whether what :func:`~workflows.engine.start_task` does cannot depend on the seed data
    beyond carrying it: no gate (its route reads the data) and no prefilled field (a draft
    copied from it). Then new tasks differ only in key and data (lazy start shares one task's
    rows among many)."""
    if any(node.kind == NodeKind.GATE for node in pipeline.nodes):
        return False
    return not any(field.prefill for node in pipeline.nodes for field in node.fields)
