"""The work queue: what a contributor may claim, their claims, their submissions, and the
commands on claimed work (claim, release, draft, submit, review, regenerate).

A caller always acts as themself: the contributor name is the user's name, and a
contributor's roles are the user's contributor roles (a request may narrow them, never widen
them). Admins may use the queue too (to try a pipeline by hand); they name the roles to act
with. Nobody sees another person's claims here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from conveyor.api.auth import Worker
from conveyor.api.errors import conflict, forbidden, not_found
from conveyor.api.routes.commands import WORK_ROUTES, add_command_routes
from conveyor.api.routes.common import (
    ERRORS,
    PIPELINE_NAME,
    Deps,
    RequestId,
    WorkflowId,
    in_store,
)
from conveyor.commands import request_id_or_new
from conveyor.workqueue import (
    ClaimLimitReached,
    NoWorkAvailable,
    claim_node,
    next_work,
)
from store.repositories import get_pipeline_version
from store.users import Role, User
from store.workqueue import WorkItem, claim_limit, claimable, held_count, my_claims, my_submitted
from workflows.graph import FieldSpec, NodeKind, NodeSpec, Pipeline
from workflows.messages import (
    ClaimInfo,
    CommandResult,
    NodeState,
    NodeStatus,
    ReviewRecord,
    TaskStatus,
)

router = APIRouter(tags=["work queue"], responses=ERRORS)

NodeName = Annotated[str, Field(min_length=1, max_length=200)]
Roles = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=100)]] | None,
    Field(
        max_length=100,
        description="contributors: a subset of their roles (default: all of them); admins: the "
        "roles to act with",
    ),
]
PipelineFilter = Annotated[str | None, Query(pattern=PIPELINE_NAME, max_length=100)]
RolesQuery = Annotated[
    list[str] | None,
    Query(
        max_length=100,
        description="repeatable; contributors: a subset of their roles (default: all); admins: "
        "the roles to act with",
    ),
]


def work_roles(user: User, requested: list[str] | None) -> list[str]:
    """The roles ``user`` works with: a contributor's own (or a subset), an admin's choice."""
    if user.role is Role.CONTRIBUTOR:
        held = list(user.contributor_roles)
        if requested is None:
            return held
        extra = sorted(set(requested) - set(held))
        if extra:
            raise forbidden(
                f"{user.name} does not hold the contributor role(s) {', '.join(extra)}; "
                f"theirs: {', '.join(held)}"
            )
        return list(dict.fromkeys(requested))
    return list(dict.fromkeys(requested or []))


def pipeline_of(workflow_id: str) -> str:
    """A task's pipeline, from its workflow id ``<pipeline>/<key>`` (names have no ``/``)."""
    pipeline, slash, key = workflow_id.partition("/")
    if not slash or not pipeline or not key:
        raise not_found(
            f"{workflow_id!r} is not a task's workflow id; they look like 'pipeline/key'",
            "task_not_found",
        )
    return pipeline


# --------------------------------------------------------------------------- models


class ClaimCount(BaseModel):
    """How many claims the caller holds in a pipeline, and the most they may hold."""

    pipeline: str
    held: int
    limit: int | None
    """None: no limit for the caller's roles."""
    at_limit: bool
    text: str
    """E.g. ``"2 of 5 claimed"``, or ``"2 claimed"`` without a limit."""


class QueueItem(BaseModel):
    workflow_id: str
    node: str
    pipeline: str
    status: NodeStatus
    since: datetime | None
    """Available: when it became available; a claim: when it was claimed."""
    rework_reason: str | None
    """Set when the work comes back after a failed review: the reviewer's reason."""


class QueueList(BaseModel):
    contributor: str
    roles: list[str]
    items: list[QueueItem]
    claims: list[ClaimCount]
    """Per pipeline of the items (and of the caller's claims)."""


class SubmittedEntry(BaseModel):
    workflow_id: str
    node: str
    attempt: int | None
    at: datetime


class SubmittedList(BaseModel):
    contributor: str
    items: list[SubmittedEntry]


class ClaimedWork(BaseModel):
    workflow_id: str
    node: str
    pipeline: str
    token: str
    """Present it to save a draft, submit, review, regenerate or release."""
    result: CommandResult
    claims: ClaimCount
    """The caller's claims in the pipeline after this one."""


class NextBody(BaseModel):
    pipeline: str | None = Field(default=None, pattern=PIPELINE_NAME, max_length=100)
    roles: Roles = None


class ClaimBody(BaseModel):
    request_id: RequestId = None
    node: NodeName
    roles: Roles = None


class WorkNode(BaseModel):
    """A node the caller holds, with what its form needs."""

    node: str
    kind: NodeKind | None
    title: str | None
    instructions: str | None
    status: NodeStatus
    token: str
    claimed_at: datetime
    expires_at: datetime | None
    fields: list[FieldSpec]
    draft: dict[str, Any]
    values: dict[str, Any]
    rework_reason: str | None
    last_review: ReviewRecord | None
    """A subtask: the latest review of its work (e.g. the failed one behind a rework); a review
    node: its own latest decision."""
    consensus: dict[str, Any] | None = None
    """A consensus node: ``{"needed", "round"}`` only — the answers stay blind. An adjudicate
    node: ``{"target", "answers": [{"by", "values", "at"}], "result": {merged values, per-field
    agreement and confidence}}``, everything the adjudicator weighs."""


class WorkView(BaseModel):
    """One task as the person holding a claim on it sees it."""

    workflow_id: str
    pipeline: str
    status: TaskStatus
    data: dict[str, Any]
    """The seed data."""
    upstream: dict[str, dict[str, Any]]
    """Submitted values of the task's nodes, by node (context for the form or the review)."""
    claims: list[WorkNode]


# --------------------------------------------------------------------------- helpers


def _counts(session: Session, who: str, roles: list[str], pipelines: set[str]) -> list[ClaimCount]:
    return [_count(session, who, roles, p) for p in sorted(pipelines)]


def _count(session: Session, who: str, roles: list[str], pipeline: str) -> ClaimCount:
    held = held_count(session, who, pipeline)
    limit = claim_limit(session, pipeline, roles)
    text = f"{held} of {limit} claimed" if limit is not None else f"{held} claimed"
    return ClaimCount(
        pipeline=pipeline,
        held=held,
        limit=limit,
        at_limit=limit is not None and held >= limit,
        text=text,
    )


def _item(item: WorkItem) -> QueueItem:
    return QueueItem(
        workflow_id=item.workflow_id,
        node=item.node,
        pipeline=item.pipeline,
        status=NodeStatus(item.status),
        since=item.available_since,
        rework_reason=item.rework_reason,
    )


# --------------------------------------------------------------------------- reading


@router.get(
    "/queue/available",
    response_model=QueueList,
    summary="Work the caller may claim now, oldest first, with their claim counts",
)
async def available(
    deps: Deps,
    user: Worker,
    pipeline: PipelineFilter = None,
    roles: RolesQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> QueueList:
    acting = work_roles(user, roles)

    def read(session: Session) -> QueueList:
        items = claimable(session, user.name, acting, pipeline=pipeline, limit=limit)
        mine = my_claims(session, user.name)
        pipelines = {i.pipeline for i in items} | {c.pipeline for c in mine}
        if pipeline:
            pipelines.add(pipeline)
        return QueueList(
            contributor=user.name,
            roles=acting,
            items=[_item(i) for i in items],
            claims=_counts(session, user.name, acting, pipelines),
        )

    return await in_store(deps, read)


@router.get(
    "/queue/claims",
    response_model=QueueList,
    summary="The caller's live claims, with their claim counts",
)
async def claims(deps: Deps, user: Worker, roles: RolesQuery = None) -> QueueList:
    acting = work_roles(user, roles)

    def read(session: Session) -> QueueList:
        mine = my_claims(session, user.name)
        return QueueList(
            contributor=user.name,
            roles=acting,
            items=[_item(i) for i in mine],
            claims=_counts(session, user.name, acting, {c.pipeline for c in mine}),
        )

    return await in_store(deps, read)


@router.get(
    "/queue/submitted",
    response_model=SubmittedList,
    summary="What the caller handed in, newest first",
)
async def submitted(
    deps: Deps, user: Worker, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> SubmittedList:
    items = await in_store(deps, lambda s: my_submitted(s, user.name, limit=limit))
    return SubmittedList(
        contributor=user.name,
        items=[
            SubmittedEntry(workflow_id=i.workflow_id, node=i.node, attempt=i.attempt, at=i.at)
            for i in items
        ],
    )


@router.get(
    "/queue/claims/{workflow_id:path}",
    response_model=WorkView,
    summary="A task the caller holds a claim on: the claimed nodes' forms and their context",
)
async def work_view(workflow_id: WorkflowId, deps: Deps, user: Worker) -> WorkView:
    pipeline_of(workflow_id)
    view = await deps.conveyor.task(workflow_id).state()
    held = [n for n in view.nodes if _held_claim(n, user.name) is not None]
    if not held:
        if any(n.claims() for n in view.nodes):
            # Someone else's: whose, and on which node, stays private.
            raise forbidden(
                f"the claims on {workflow_id} are someone else's; {user.name} sees only their own"
            )
        raise not_found(f"{user.name} holds no claim on {workflow_id}", "no_claim")
    definition = await in_store(deps, lambda s: get_pipeline_version(s, view.pipeline_hash))
    specs = definition.node_map() if definition is not None else {}
    states = {n.name: n for n in view.nodes}
    nodes = []
    blind = {n.name for n in held if n.consensus is not None}
    for node in held:
        claim = _held_claim(node, user.name)
        assert claim is not None
        spec = specs.get(node.name)
        reviews = [node.last_review] if node.last_review else []
        if definition is not None and spec is not None and spec.kind is NodeKind.SUBTASK:
            for other in definition.nodes:
                if other.kind is NodeKind.REVIEW and definition.reviewed_node(other) == node.name:
                    found = states.get(other.name)
                    if found is not None and found.last_review is not None:
                        reviews.append(found.last_review)
        nodes.append(
            WorkNode(
                node=node.name,
                kind=spec.kind if spec else None,
                title=spec.title if spec else None,
                instructions=spec.instructions if spec else None,
                status=node.status,
                token=claim.token,
                claimed_at=claim.claimed_at,
                expires_at=claim.expires_at,
                fields=list(spec.fields) if spec else [],
                draft=_draft(node, user.name),
                values={} if node.name in blind else node.values,
                rework_reason=node.rework_reason,
                last_review=max(reviews, key=lambda r: r.at) if reviews else None,
                consensus=_consensus_context(definition, spec, node, states),
            )
        )
    return WorkView(
        workflow_id=view.workflow_id,
        pipeline=view.pipeline,
        status=view.status,
        data=view.data,
        upstream={n.name: n.values for n in view.nodes if n.values and n.name not in blind},
        claims=nodes,
    )


def _held_claim(node: NodeState, who: str) -> ClaimInfo | None:
    """``who``'s live claim on ``node``: the node's claim, or their place on a consensus item."""
    return next((c for c in node.claims() if c.holder == who), None)


def _draft(node: NodeState, who: str) -> dict[str, Any]:
    """``who``'s draft: on a consensus node their place's own, never anyone else's."""
    if node.consensus is not None:
        slot = node.consensus.slot_of(who)
        return dict(slot.draft) if slot is not None else {}
    return node.draft


def _consensus_context(
    definition: Pipeline | None,
    spec: NodeSpec | None,
    node: NodeState,
    states: dict[str, NodeState],
) -> dict[str, Any] | None:
    """What a held consensus or adjudicate node shows its holder (see ``WorkNode.consensus``)."""
    if node.consensus is not None:
        return {"needed": node.consensus.needed, "round": node.consensus.round}
    if definition is None or spec is None or spec.kind is not NodeKind.ADJUDICATE:
        return None
    target = definition.adjudicated_node(spec)
    item = states[target].consensus if target in states else None
    if item is None:
        return None
    return {
        "target": target,
        "answers": [a.model_dump(mode="json", exclude={"round"}) for a in item.answers],
        "result": item.result.model_dump(mode="json") if item.result else None,
        "fields": [f.model_dump(mode="json") for f in definition.node(target).input_fields()],
    }


# --------------------------------------------------------------------------- claiming


def _limit_error(count: ClaimCount, who: str) -> Exception:
    return conflict(
        f"{who} holds {count.text} in {count.pipeline}: the claim limit; submit or release "
        "one first",
        "claim_limit",
        count.model_dump(mode="json"),
    )


@router.post(
    "/queue/next",
    response_model=ClaimedWork,
    summary="Claim the next piece of work (409 claim_limit at the limit, 404 no_work)",
)
async def claim_next(body: NextBody, deps: Deps, user: Worker) -> ClaimedWork:
    acting = work_roles(user, body.roles)
    try:
        claimed = await next_work(
            deps.conveyor, deps.sessions, user.name, acting, pipeline=body.pipeline
        )
    except NoWorkAvailable:
        # Nothing claimable, or everything claimable is in pipelines where the caller is at
        # the limit: the second deserves its own answer.
        def limits(session: Session) -> list[ClaimCount]:
            items = claimable(session, user.name, acting, pipeline=body.pipeline, limit=200)
            return _counts(session, user.name, acting, {i.pipeline for i in items})

        found = await in_store(deps, limits)
        if found and all(c.at_limit for c in found):
            raise _limit_error(found[0], user.name) from None
        raise
    count = await in_store(deps, lambda s: _count(s, user.name, acting, claimed.item.pipeline))
    return ClaimedWork(
        workflow_id=claimed.item.workflow_id,
        node=claimed.item.node,
        pipeline=claimed.item.pipeline,
        token=claimed.token,
        result=claimed.result,
        claims=count,
    )


@router.post(
    "/tasks/{workflow_id:path}/claim",
    response_model=ClaimedWork,
    summary="Claim a node of a task (409 claim_limit at the limit)",
)
async def claim(workflow_id: WorkflowId, body: ClaimBody, deps: Deps, user: Worker) -> ClaimedWork:
    acting = work_roles(user, body.roles)
    pipeline = pipeline_of(workflow_id)
    try:
        result = await claim_node(
            deps.conveyor,
            deps.sessions,
            user.name,
            acting,
            workflow_id,
            body.node,
            request_id=request_id_or_new(body.request_id),
        )
    except ClaimLimitReached:
        count = await in_store(deps, lambda s: _count(s, user.name, acting, pipeline))
        raise _limit_error(count, user.name) from None
    count = await in_store(deps, lambda s: _count(s, user.name, acting, pipeline))
    assert result.token is not None
    return ClaimedWork(
        workflow_id=workflow_id,
        node=result.node or body.node,
        pipeline=pipeline,
        token=result.token,
        result=result,
        claims=count,
    )


# --------------------------------------------------------------------------- claimed work
# release, draft, submit, review, regenerate: from the one table of command routes.

add_command_routes(router, WORK_ROUTES, Worker, check=pipeline_of)
