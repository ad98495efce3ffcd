"""Contributor pages: the work queue (Available / Claimed / Submitted), the task form, the
review screen and the adjudicator's screen.

Every action goes through the same library the CLI uses: claims through the work queue's limit
check and the task's ``claim`` update, drafts, submits, releases and reviews as updates whose
answers (accepted, or why not, per field) are shown on the page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from temporalio.service import RPCError, RPCStatusCode

from conveyor.client import CommandRejected, NoWorkerResponded
from conveyor.commands import task_command
from conveyor.web.common import (
    PageError,
    PageRoute,
    deps,
    failure,
    forbidden,
    in_store,
    not_found,
    page_user,
    redirect,
    render,
    require_worker,
    wait_projected,
)
from conveyor.web.consensus import blind_view, corrections, node_table
from conveyor.web.fields import (
    context_blocks,
    editable,
    field_views,
    read_form,
    static_fields,
)
from conveyor.workqueue import (
    ClaimLimitReached,
    NoWorkAvailable,
    claim_node,
    next_work,
)
from store.explorer import pipeline_versions
from store.repositories import get_pipeline_version
from store.users import Role, User
from store.workqueue import (
    QueuePosition,
    SubmittedItem,
    WorkItem,
    claim_limit,
    claimable,
    held_count,
    my_claims,
    my_submitted,
)
from workflows.graph import NodeKind, NodeSpec, Pipeline
from workflows.messages import (
    ClaimInfo,
    Command,
    EvaluationRecord,
    NodeState,
    NodeStatus,
    TaskView,
    Verdict,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute)
PageUser = Annotated[User, Depends(page_user)]

QUEUE_PAGE = 25
TABS = ("available", "claimed", "submitted")


def _roles(user: User) -> list[str]:
    return list(user.contributor_roles)


@dataclass(frozen=True)
class Limit:
    pipeline: str
    held: int
    limit: int | None

    @property
    def reached(self) -> bool:
        return self.limit is not None and self.held >= self.limit

    @property
    def text(self) -> str:
        if self.limit is None:
            return f"{self.held} claimed"
        return f"{self.held} of {self.limit} claimed"


@dataclass(frozen=True)
class QueueRow:
    workflow_id: str
    task_key: str
    pipeline: str
    node: str
    node_title: str
    status: str
    since: datetime | None
    rework_reason: str | None = None
    kind: str = ""
    attempt: int | None = None


def _titles(session: Session, pipelines: set[str]) -> dict[tuple[str, str], str]:
    titles: dict[tuple[str, str], str] = {}
    for name in pipelines:
        versions = pipeline_versions(session, name)
        for _, definition in reversed(versions):  # the current version wins
            for spec in definition.nodes:
                titles[(name, spec.name)] = spec.title or spec.name
    return titles


def _key(workflow_id: str, pipeline: str) -> str:
    return workflow_id.removeprefix(pipeline + "/")


def _encode_after(item: WorkItem) -> str | None:
    if item.available_since is None:
        return None
    return f"{item.available_since.isoformat()}|{item.workflow_id}|{item.node}"


def _decode_after(text: str | None) -> QueuePosition | None:
    if not text:
        return None
    try:
        at, workflow_id, node = text.split("|", 2)
        return datetime.fromisoformat(at), workflow_id, node
    except ValueError:
        return None


def _queue(
    session: Session, user: User, tab: str, pipeline: str | None, after: str | None
) -> dict[str, Any]:
    roles = _roles(user)
    claims = my_claims(session, user.name)
    rows: list[QueueRow] = []
    next_after: str | None = None
    if tab == "available":
        items = claimable(
            session,
            user.name,
            roles,
            pipeline=pipeline,
            after=_decode_after(after),
            limit=QUEUE_PAGE + 1,
        )
        if len(items) > QUEUE_PAGE:
            items = items[:QUEUE_PAGE]
            next_after = _encode_after(items[-1])
        source: list[WorkItem] = items
    elif tab == "claimed":
        source = claims
    else:
        source = []
    submitted: list[SubmittedItem] = (
        my_submitted(session, user.name, limit=QUEUE_PAGE * 2) if tab == "submitted" else []
    )
    pipelines = {i.pipeline for i in source} | {i.pipeline for i in claims}
    pipelines |= {s.workflow_id.split("/", 1)[0] for s in submitted}
    titles = _titles(session, pipelines)
    for item in source:
        rows.append(
            QueueRow(
                workflow_id=item.workflow_id,
                task_key=_key(item.workflow_id, item.pipeline),
                pipeline=item.pipeline,
                node=item.node,
                node_title=titles.get((item.pipeline, item.node), item.node),
                # a place on a consensus item is the holder's claim, whatever the node's state
                status=NodeStatus.CLAIMED.value if tab == "claimed" else item.status,
                since=item.available_since,
                rework_reason=item.rework_reason,
            )
        )
    for sub in submitted:
        name = sub.workflow_id.split("/", 1)[0]
        rows.append(
            QueueRow(
                workflow_id=sub.workflow_id,
                task_key=_key(sub.workflow_id, name),
                pipeline=name,
                node=sub.node,
                node_title=titles.get((name, sub.node), sub.node),
                status="Submitted",
                since=sub.at,
                kind=sub.kind,
                attempt=sub.attempt,
            )
        )
    limits = {
        p: Limit(p, held_count(session, user.name, p), claim_limit(session, p, roles))
        for p in sorted(pipelines)
    }
    return {
        "rows": rows,
        "limits": limits,
        "claimed_count": len(claims),
        "next_after": next_after,
    }


@router.get("/work", response_class=HTMLResponse)
async def work_queue(
    request: Request,
    user: PageUser,
    tab: Annotated[str, Query()] = "available",
    pipeline: Annotated[str | None, Query()] = None,
    after: Annotated[str | None, Query()] = None,
) -> Response:
    require_worker(user)
    if tab not in TABS:
        tab = "available"
    data = await in_store(request, lambda s: _queue(s, user, tab, pipeline or None, after))
    return render(
        request,
        "work.html",
        {"tab": tab, "pipeline": pipeline or "", "after": after, **data},
        user=user,
        nav="work",
    )


def _form_url(workflow_id: str, node: str) -> str:
    return "/work/task?" + urlencode({"id": workflow_id, "node": node})


@router.post("/work/claim")
async def claim(request: Request, user: PageUser) -> Response:
    """Claim one node from the Available tab, within the contributor's claim limit."""
    require_worker(user)
    form = await request.form()
    workflow_id, node = str(form.get("id", "")), str(form.get("node", ""))
    back = "/work?tab=available"
    if not workflow_id or not node:
        return redirect(back, error="choose a task to claim")
    try:
        result = await claim_node(
            deps(request).conveyor,
            deps(request).sessions,
            user.name,
            _roles(user),
            workflow_id,
            node,
        )
    except ClaimLimitReached as err:
        return redirect(back, error=str(err))
    except Exception as err:
        page_error = failure(err)
        if page_error is None:
            raise
        return redirect(back, error=f"could not claim: {page_error.message}")
    return redirect(_form_url(workflow_id, node), notice=result.message)


@router.post("/work/next")
async def claim_next(request: Request, user: PageUser) -> Response:
    """Claim the oldest work this contributor may take (spread over tasks, limits kept)."""
    require_worker(user)
    form = await request.form()
    pipeline = str(form.get("pipeline", "")) or None
    try:
        claimed = await next_work(
            deps(request).conveyor,
            deps(request).sessions,
            user.name,
            _roles(user),
            pipeline=pipeline,
        )
    except NoWorkAvailable as err:
        return redirect("/work?tab=available", error=str(err))
    except NoWorkerResponded as err:
        return redirect("/work?tab=available", error=str(err))
    return redirect(
        _form_url(claimed.item.workflow_id, claimed.item.node), notice=claimed.result.message
    )


# --------------------------------------------------------------------------- the form


async def _task_view(request: Request, workflow_id: str) -> TaskView:
    try:
        return await deps(request).conveyor.task(workflow_id).state()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise not_found(f"no task {workflow_id!r}") from None
        raise


async def _pipeline_of(request: Request, view: TaskView) -> Pipeline:
    pipeline = await in_store(request, lambda s: get_pipeline_version(s, view.pipeline_hash))
    if pipeline is None:
        raise PageError(
            503,
            "Not ready yet",
            f"the store has not recorded version {view.pipeline_hash[:12]} of pipeline "
            f"{view.pipeline} yet; reload in a moment",
        )
    return pipeline


@dataclass(frozen=True)
class Held:
    """The node a contributor opened, and their claim on it (a place, on a consensus node)."""

    state: NodeState
    claim: ClaimInfo
    draft: dict[str, Any]
    """Their own draft: the slot's on a consensus node, else the node's."""


def _held(view: TaskView, node: str, user: User) -> Held:
    found = next((n for n in view.nodes if n.name == node), None)
    if found is None:
        raise not_found(f"task {view.workflow_id} has no node {node!r}")
    if found.consensus is not None:
        slot = found.consensus.slot_of(user.name)
        if slot is None:
            raise forbidden(
                f"you hold no place on {node} of {view.workflow_id}; claim it from the work "
                "queue first"
            )
        return Held(found, slot.claim, dict(slot.draft))
    if found.claim is None or found.claim.holder != user.name:
        holder = "nobody" if found.claim is None else "someone else"
        raise forbidden(
            f"you do not hold a claim on {node} of {view.workflow_id} ({holder} does); "
            "claim it from the work queue first"
        )
    return Held(found, found.claim, dict(found.draft))


def _adjudicated(pipeline: Pipeline, spec: NodeSpec) -> NodeSpec | None:
    """The consensus node an adjudicate node settles (None for other nodes)."""
    if spec.kind != NodeKind.ADJUDICATE:
        return None
    return pipeline.node(pipeline.adjudicated_node(spec))


def _start_values(pipeline: Pipeline, spec: NodeSpec, view: TaskView, held: Held) -> dict[str, Any]:
    """What a form shows before anything is typed: a review starts blank (the last review's
    values would prejudge this one); an adjudication from the merged answer; a place on a
    consensus item from the person's own draft only; a subtask from its draft over what was last
    submitted (rework starts from the submission)."""
    if spec.kind == NodeKind.REVIEW or held.state.consensus is not None:
        return dict(held.draft)
    target = _adjudicated(pipeline, spec)
    if target is not None:
        item = next((n.consensus for n in view.nodes if n.name == target.name), None)
        return dict(item.result.values) if item is not None and item.result else {}
    return {**held.state.values, **held.draft}


def _form_context(
    pipeline: Pipeline,
    spec: NodeSpec,
    view: TaskView,
    held: Held,
    values: dict[str, Any],
    errors: dict[str, str],
) -> dict[str, Any]:
    """What task_form.html and review.html need. Every open consensus item is blind here: not
    even the template gets another person's answer."""
    places = held.state.consensus.needed if held.state.consensus is not None else None
    view = blind_view(view)
    state = next(n for n in view.nodes if n.name == held.state.name)
    node_values = {n.name: n.values for n in view.nodes}
    reviewed: NodeSpec | None = None
    reviewed_state: NodeState | None = None
    skip: list[str] = []
    if spec.kind == NodeKind.REVIEW:
        reviewed = pipeline.node(pipeline.reviewed_node(spec))
        reviewed_state = next((n for n in view.nodes if n.name == reviewed.name), None)
        skip = [reviewed.name]
    target = _adjudicated(pipeline, spec)
    target_state = next((n for n in view.nodes if n.name == target.name), None) if target else None
    context = context_blocks(pipeline, target or spec, view.data, node_values, skip=skip)
    reviewed_items: list[Any] = []
    if reviewed is not None and reviewed_state is not None:
        context = context_blocks(pipeline, reviewed, view.data, node_values) + [
            b for b in context if b.node is not None and b.node != reviewed.name
        ]
        # De-duplicate: the reviewed node's own context already holds the upstream nodes.
        seen: set[str | None] = set()
        unique = []
        for block in context:
            if block.node in seen:
                continue
            seen.add(block.node)
            unique.append(block)
        context = unique
        reviewed_items = [
            (f, f.title, reviewed_state.values.get(f.name))
            for f in editable(reviewed.fields)
            if f.name in reviewed_state.values
        ]
    form_fields = target.input_fields() if target is not None else spec.fields
    return {
        "view": view,
        "pipeline": pipeline,
        "spec": spec,
        "state": state,
        "claim": held.claim,
        "places": places,
        "fields": field_views(form_fields, values, errors),
        "static": static_fields(spec),
        "context": context,
        "reviewed": reviewed,
        "reviewed_state": reviewed_state,
        "reviewed_items": reviewed_items,
        "target": target,
        "table": node_table(target, target_state) if target and target_state else None,
        # A review of a consensus node: the answers behind the merged one (the node is no
        # longer open, so this shows nothing blind).
        "reviewed_table": (
            node_table(reviewed, reviewed_state) if reviewed and reviewed_state else None
        ),
        "errors": errors,
        "mixed": bool(spec.llm_fields()) and bool(spec.input_fields()),
    }


def _template(spec: NodeSpec) -> str:
    return "review.html" if spec.kind == NodeKind.REVIEW else "task_form.html"


@router.get("/work/task", response_class=HTMLResponse)
async def task_form(
    request: Request,
    user: PageUser,
    id: Annotated[str, Query()],
    node: Annotated[str, Query()],
) -> Response:
    """The form of a claimed subtask (a place on a consensus item: blind), the review screen of
    a claimed review, or the adjudicator's screen of a claimed adjudication."""
    require_worker(user)
    view = await _task_view(request, id)
    held = _held(view, node, user)
    pipeline = await _pipeline_of(request, view)
    spec = pipeline.node(node)
    values = _start_values(pipeline, spec, view, held)
    ctx = _form_context(pipeline, spec, view, held, values, {})
    return render(request, _template(spec), ctx, user=user, nav="work")


def _evaluation_text(evaluations: list[EvaluationRecord]) -> str:
    parts = []
    for e in evaluations:
        verdict = "passed" if e.passed else "failed" if e.passed is not None else "scored"
        parts.append(f"{e.criterion}: {verdict}")
    return "; ".join(parts)


FORM_ACTIONS = {
    "release": "release",
    "regenerate": "regenerate",
    "save": "save_draft",
    "submit": "submit",
    "pass": "review",
    "fail": "review",
    "adjudicate": "adjudicate",
}
"""The buttons of the task, review and adjudication forms: the form's ``action`` → the command
of :data:`workflows.messages.TASK_COMMANDS` it sends (the contributor is the sender)."""

CLAIM_FORMS = {"/work/claim": "claim", "/work/next": "claim"}
"""The work queue's forms that claim (through ``conveyor.workqueue``, which keeps claim limits)."""


def _command_for(action: str, kind: NodeKind) -> str:
    """The command a form's ``action`` sends: on a review node every button but release and
    regenerate decides the review, on an adjudicate node settles it; on a subtask anything but
    save (Enter in a field) submits."""
    name = FORM_ACTIONS.get(action)
    if name in ("release", "regenerate"):
        return name
    if kind == NodeKind.REVIEW:
        return "review"
    if kind == NodeKind.ADJUDICATE:
        return "adjudicate"
    return "save_draft" if name == "save_draft" else "submit"


@router.post("/work/task")
async def task_action(request: Request, user: PageUser) -> Response:
    """Save a draft, submit, release, ask for a new LLM suggestion, decide a review, or settle
    a consensus item."""
    require_worker(user)
    form = await request.form()
    workflow_id, node = str(form.get("id", "")), str(form.get("node", ""))
    token, action = str(form.get("token", "")), str(form.get("action", ""))
    view = await _task_view(request, workflow_id)
    held = _held(view, node, user)
    pipeline = await _pipeline_of(request, view)
    spec = pipeline.node(node)
    target = _adjudicated(pipeline, spec)
    task = deps(request).conveyor.task(workflow_id)
    here = _form_url(workflow_id, node)
    name = _command_for(action, spec.kind)
    places = held.state.consensus is not None
    values: dict[str, Any] = {}

    def command(**fields: Any) -> Command:
        return task_command(name, actor=user.name, node=node, token=token, **fields)

    try:
        if name == "release":
            result = await task.send(command())
            await wait_projected(request, workflow_id, result.seq)
            kept = "someone else may take it" if places else "your draft is kept"
            return redirect("/work?tab=claimed", notice=f"released {node}; {kept}")
        if name == "regenerate":
            await task.send(command())
            return redirect(here, notice="asked the model for a new suggestion; reload shortly")
        if name == "review":
            values = read_form(spec.fields, form)
            verdict = Verdict.FAIL if action == "fail" else Verdict.PASS
            reason = str(form.get("reason", "")).strip() or None
            result = await task.send(command(verdict=verdict, reason=reason, values=values))
            await wait_projected(request, workflow_id, result.seq)
            return redirect(
                "/work?tab=submitted",
                notice=f"review {verdict.value}ed: {view.workflow_id} ({node})",
            )
        if name == "adjudicate" and target is not None:
            return await _adjudicate(request, view, target, form, command)
        if name == "save_draft":
            values = read_form(spec.fields, form, draft=True)
            result = await task.send(command(values=values))
            extra = _evaluation_text(result.evaluations)
            return redirect(here, notice="draft saved" + (f" — {extra}" if extra else ""))
        values = read_form(spec.fields, form)
        result = await task.send(command(values=values))
        extra = _evaluation_text(result.evaluations)
        await wait_projected(request, workflow_id, result.seq)
        return redirect(
            "/work?tab=submitted",
            notice=f"submitted {node} of {workflow_id}" + (f" — {extra}" if extra else ""),
        )
    except CommandRejected as err:
        errors = dict(err.result.field_errors)
        if target is not None:
            shown = read_form(target.input_fields(), form)
        else:
            before = _start_values(pipeline, spec, view, held)
            shown = {**before, **read_form(spec.fields, form, draft=True)}
        ctx = _form_context(pipeline, spec, view, held, shown, errors)
        ctx["rejection"] = err.result.message
        ctx["reason_text"] = str(form.get("reason", ""))
        ctx["pick"] = str(form.get("pick", ""))
        return render(request, _template(spec), ctx, user=user, nav="work", status=422)
    except NoWorkerResponded as err:
        return redirect(here, error=str(err))


async def _adjudicate(
    request: Request,
    view: TaskView,
    target: NodeSpec,
    form: FormData,
    command: Callable[..., Command],
) -> Response:
    """Settle ``target``'s item: the picked annotator's answer with the form's corrections over
    it (the form starts from the merged answer and the page fills it with a picked answer)."""
    pick = str(form.get("pick", "")).strip() or None
    item = next((n.consensus for n in view.nodes if n.name == target.name), None)
    picked = next((a for a in item.answers if a.by == pick), None) if item else None
    values = corrections(read_form(target.input_fields(), form), picked)
    reason = str(form.get("reason", "")).strip() or None
    result = (
        await deps(request)
        .conveyor.task(view.workflow_id)
        .send(command(pick=pick, values=values, reason=reason))
    )
    await wait_projected(request, view.workflow_id, result.seq)
    taken = f" with {pick}'s answer" if pick else ""
    return redirect(
        "/work?tab=submitted", notice=f"settled {target.name} of {view.workflow_id}{taken}"
    )


def role_home(user: User) -> str:
    """Where a user lands after signing in."""
    return "/work" if user.role is Role.CONTRIBUTOR else "/explorer"
