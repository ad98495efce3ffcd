"""The Data Explorer in the browser: pipelines, their tasks (Task Metadata, Task Data,
Evaluation Analytics, LLM Analytics), a task's Nodes and Timeline, admin operations and bulk
actions on a selection.

Pages read ``store/explorer.py`` and ``store/analytics.py`` (keyset pages: never all rows) and
act through the client library and ``conveyor.bulk``, as the CLI does.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, cast
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.datastructures import FormData

from conveyor.bulk import (
    EXPORT_FORMATS,
    EXPORT_SHAPES,
    ExportShape,
    NoConsensusNodes,
    Selection,
    check_shape,
    delete_tasks,
    export,
)
from conveyor.commands import task_command
from conveyor.connect import CliError
from conveyor.web import charts
from conveyor.web.agreement import agreement_data, has_consensus, kappa_color
from conveyor.web.common import (
    PageError,
    PageRoute,
    deps,
    failure,
    in_store,
    not_found,
    page_user,
    pipeline_url,
    redirect,
    render,
    require_admin,
    require_reader,
    task_url,
    wait_projected,
)
from conveyor.web.consensus import answer_table
from conveyor.web.fields import field_views, read_form
from store.analytics import (
    UnknownPipeline,
    agreement,
    evaluation_analytics,
    llm_analytics,
)
from store.explorer import (
    DEFAULT_PAGE_SIZE,
    InvalidCursor,
    Sort,
    TaskFilter,
    TaskNotFound,
    count_tasks,
    header_counts,
    page,
    pipeline_versions,
    task_detail,
)
from store.repositories import list_pipelines
from store.users import User
from workflows import expr
from workflows.graph import FieldSource, NodeKind, Pipeline
from workflows.messages import (
    NodeStatus,
    QuarantineAction,
    TaskStatus,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute)
PageUser = Annotated[User, Depends(page_user)]

TABS = {
    "metadata": "Task Metadata",
    "data": "Task Data",
    "eval": "Evaluation Analytics",
    "agreement": "Agreement",
    "llm": "LLM Analytics",
}
PAGE_SIZES = (25, 50, 100, 200)
SORTS = {
    "created_at": "Created",
    "updated_at": "Updated",
    "finished_at": "Finished",
    "status": "Status",
    "task_key": "Task key",
}
MAX_DERIVED = 5

TASK_OPS = {
    "pause": "pause",
    "resume": "resume",
    "escalate": "escalate",
    "deescalate": "deescalate",
    "tag": "tag",
    "untag": "untag",
    "release": "release_claim",
    "resolve": "resolve_quarantine",
    "retry": "retry",
    "edit": "edit_submission",
}
"""The admin operations of a task's page: the form's ``op`` → the command of
:data:`workflows.messages.TASK_COMMANDS` it sends (the admin is the sender)."""

NOT_OFFERED = {
    "activate": "tasks become available when their pipeline is activated; an operator "
    "activates a single Pending task with the CLI or the HTTP API",
}
"""Task commands the web app deliberately has no form for, and why. With the contributor's
forms (``contributor.FORM_ACTIONS``) and :data:`TASK_OPS`, every command is accounted for
(``tests/test_command_registry.py``)."""


# --------------------------------------------------------------------------- pipelines


@router.get("/explorer", response_class=HTMLResponse)
async def pipelines(request: Request, user: PageUser) -> Response:
    require_reader(user)

    def load(session: Session) -> list[Any]:
        return [(p, header_counts(session, p.name)) for p in list_pipelines(session)]

    rows = await in_store(request, load)
    return render(request, "explorer_index.html", {"rows": rows}, user=user, nav="explorer")


# --------------------------------------------------------------------------- one pipeline


@dataclass(frozen=True)
class Derived:
    name: str
    source: str
    parsed: expr.Expr | None
    error: str | None


def _derived(texts: list[str]) -> list[Derived]:
    """``name = expression`` columns, computed over each row's values."""
    out: list[Derived] = []
    for text in [t for t in texts if t.strip()][:MAX_DERIVED]:  # the form sends blank ones
        name, eq, source = text.partition("=")
        name, source = name.strip(), source.strip()
        if not eq or not name or not source:
            out.append(Derived(text, "", None, "write a derived column as: name = expression"))
            continue
        try:
            out.append(Derived(name, source, expr.parse(source), None))
        except expr.ExprError as err:
            out.append(Derived(name, source, None, str(err)))
    return out


def _row_data(row: Any) -> dict[str, Any]:
    """What a derived column's expression sees: ``node.field`` and bare field names, the
    task's status, key and tags."""
    data: dict[str, Any] = {}
    for key, value in (row.values or {}).items():
        data[key] = value
        _, dot, bare = key.partition(".")
        if dot and not key.startswith("eval.") and bare not in data:
            data[bare] = value
    data.update(status=row.status.value, task_key=row.task_key, tags=row.tags)
    return data


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise PageError(400, "Bad filter", f"{text!r} is not a date such as 2026-01-31") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _share(text: str | None) -> float | None:
    """An agreement bound as typed: ``0.6``, or a percentage (``60`` or ``60%``)."""
    if not text:
        return None
    value = text.strip().removesuffix("%")
    try:
        number = float(value)
    except ValueError:
        raise PageError(
            400, "Bad filter", f"agreement below {text!r}: give a share such as 0.6 or 60%"
        ) from None
    return number / 100 if number > 1 or text.strip().endswith("%") else number


def filter_from(params: Any) -> TaskFilter:
    """The task filter in a page's query parameters (``status`` may repeat)."""

    def one(name: str) -> str | None:
        value = params.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        return value or None

    statuses = params.getlist("status") if hasattr(params, "getlist") else params.get("status", [])
    try:
        node_status = one("node_status")
        return TaskFilter(
            status=[TaskStatus(s) for s in statuses if s],
            agreement_below=_share(one("agreement_below")),
            node=one("node"),
            node_status=NodeStatus(node_status) if node_status else None,
            assignee=one("assignee"),
            tag=one("tag"),
            text=one("text"),
            created_from=_date(one("created_from")),
            created_to=_date(one("created_to")),
        )
    except ValueError as err:
        raise PageError(400, "Bad filter", str(err)) from None


def _has_filter(criteria: TaskFilter) -> bool:
    return criteria != TaskFilter()


def _analytics_tabs(versions: list[tuple[str, Pipeline]]) -> tuple[bool, bool]:
    """(has evaluation fields, has LLM fields) in any stored version."""
    has_eval = has_llm = False
    for _, definition in versions:
        for spec in definition.nodes:
            if spec.evaluators or any(f.evaluates for f in spec.fields):
                has_eval = True
            if spec.llm_fields() or any(e.judge for e in spec.evaluators):
                has_llm = True
    return has_eval, has_llm


@router.get("/explorer/pipelines/{name}", response_class=HTMLResponse)
async def pipeline_page(
    request: Request,
    user: PageUser,
    name: str,
    tab: Annotated[str, Query()] = "metadata",
    sort: Annotated[str, Query()] = "-created_at",
    after: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = DEFAULT_PAGE_SIZE,
    page_no: Annotated[int, Query(alias="page", ge=1)] = 1,
    run: Annotated[int | None, Query(ge=1, lt=10**10)] = None,
) -> Response:
    require_reader(user)
    if tab not in TABS:
        tab = "metadata"
    criteria = filter_from(request.query_params)
    try:
        order = Sort.parse(sort)
    except ValueError as err:
        raise PageError(400, "Bad sort", str(err)) from None
    derived = _derived(request.query_params.getlist("derive"))

    def load(session: Session) -> dict[str, Any]:
        versions = pipeline_versions(session, name)
        counts = header_counts(session, name)
        if not versions and counts.total == 0:
            raise not_found(f"no pipeline named {name!r} in the store")
        has_eval, has_llm = _analytics_tabs(versions)
        out: dict[str, Any] = {
            "versions": versions,
            "counts": counts,
            "has_eval": has_eval,
            "has_llm": has_llm,
            "has_consensus": has_consensus(versions),
        }
        if tab in ("metadata", "data"):
            try:
                out["page"] = page(
                    session,
                    name,
                    criteria,
                    order,
                    limit=limit,
                    after=after,
                    with_data=tab == "data",
                )
            except InvalidCursor as err:
                raise PageError(400, "Bad page", str(err)) from None
            out["matching"] = (
                count_tasks(session, name, criteria) if _has_filter(criteria) else None
            )
        elif tab == "eval":
            out.update(_eval_data(session, name))
        elif tab == "agreement":
            out.update(agreement_data(session, name, run))
        else:
            out.update(_llm_data(session, name))
        return out

    data = await in_store(request, load)
    current = data["versions"][0][1] if data["versions"] else None
    rows_derived: dict[str, dict[str, Any]] = {}
    if "page" in data and derived:
        for row in data["page"].rows:
            values = _row_data(row)
            rows_derived[row.workflow_id] = {
                d.name: expr.evaluate(d.parsed, values) for d in derived if d.parsed is not None
            }
    evaluators = (
        [f"{n.name}.{e.name}" for n in current.nodes for e in n.evaluators] if current else []
    )
    return render(
        request,
        "explorer.html",
        {
            "name": name,
            "tab": tab,
            "tabs": TABS,
            "criteria": criteria,
            "sort": str(order),
            "sorts": SORTS,
            "limit": limit,
            "page_sizes": PAGE_SIZES,
            "page_no": page_no,
            "after": after,
            "derived": derived,
            "rows_derived": rows_derived,
            "statuses": list(TaskStatus),
            "node_statuses": list(NodeStatus),
            "current": current,
            "evaluators": evaluators,
            "formats": EXPORT_FORMATS,
            "filter_query": _filter_query(request),
            "pipeline_url": pipeline_url,
            "task_url": task_url,
            "kappa_color": kappa_color,
            **data,
        },
        user=user,
        nav="explorer",
    )


def _filter_query(request: Request) -> str:
    """The page's filter parameters only (for "every task matching the filter")."""
    keep = {"status", "node", "node_status", "assignee", "tag", "text", "agreement_below"}
    keep |= {"created_from", "created_to"}
    return urlencode([(k, v) for k, v in request.query_params.multi_items() if k in keep])


def _eval_data(session: Session, name: str) -> dict[str, Any]:
    try:
        stats = evaluation_analytics(session, name, limit=5)
        pairs = agreement(session, name, limit=10)
    except UnknownPipeline:
        stats, pairs = [], []
    charts_by_key = {}
    for s in stats:
        if s.labels:
            chart = charts.hbars(
                [charts.Bar(k, (v,), f"{v:,}") for k, v in s.labels.items()],
                width=360,
                label_width=90,
            )
        else:
            chart = charts.columns(
                [(_bin_label(b.low, b.high), b.count) for b in s.histogram], width=360
            )
        charts_by_key[(s.criterion, s.node, s.kind.value)] = chart
    return {
        "eval_stats": stats,
        "eval_charts": charts_by_key,
        "agreement": pairs,
        "meter": charts.meter,
    }


def _bin_label(low: float, high: float) -> str:
    if high - low == 1 and float(low + 0.5).is_integer():
        return f"{low + 0.5:g}"
    return f"{low:.2g}\u2013{high:.2g}"


def _llm_data(session: Session, name: str) -> dict[str, Any]:
    try:
        groups = llm_analytics(session, name, group_by=("model", "node", "purpose"))
        totals = llm_analytics(session, name, group_by=())
    except UnknownPipeline:
        groups, totals = [], []

    def label(s: Any) -> str:
        return f"{s.model.rsplit('/', 1)[-1]} · {s.node} · {s.purpose}"

    tokens = charts.hbars(
        [
            charts.Bar(label(s), (s.prompt_tokens, s.completion_tokens), f"{s.total_tokens:,}")
            for s in groups
        ],
        series=("prompt tokens", "completion tokens"),
    )
    latency = charts.hbars(
        [
            charts.Bar(
                label(s),
                (s.latency_p50_ms or 0, max((s.latency_p95_ms or 0) - (s.latency_p50_ms or 0), 0)),
                f"p50 {s.latency_p50_ms or 0:,.0f} · p95 {s.latency_p95_ms or 0:,.0f} ms",
            )
            for s in groups
        ],
        series=("p50", "p95"),
        colors=(charts.PALETTE[0], charts.PALETTE[1]),
    )
    calls = charts.hbars(
        [
            charts.Bar(
                label(s),
                (s.calls - s.failed_calls, s.retries, s.failed_calls),
                f"{s.calls:,} calls, {s.error_rate * 100:.0f}% errors",
            )
            for s in groups
        ],
        series=("succeeded", "retries", "failed"),
        colors=(charts.PALETTE[3], charts.PALETTE[2], charts.PALETTE[4]),
    )
    priced = [s for s in groups if s.cost_usd is not None]
    cost = charts.hbars(
        [charts.Bar(label(s), (s.cost_usd or 0,), f"${s.cost_usd or 0:,.4f}") for s in priced]
    )
    return {
        "llm_groups": groups,
        "llm_total": totals[0] if totals else None,
        "chart_tokens": tokens,
        "chart_latency": latency,
        "chart_calls": calls,
        "chart_cost": cost,
    }


# --------------------------------------------------------------------------- task detail


@router.get("/explorer/task", response_class=HTMLResponse)
async def task_page(
    request: Request,
    user: PageUser,
    id: Annotated[str, Query()],
    view: Annotated[str, Query()] = "nodes",
) -> Response:
    require_reader(user)

    def load(session: Session) -> Any:
        try:
            return task_detail(session, id)
        except TaskNotFound as err:
            raise not_found(str(err)) from None

    detail = await in_store(request, load)
    edits = {
        n.name: field_views(n.fields, n.values)
        for n in detail.nodes
        if n.kind == NodeKind.SUBTASK and n.values and n.fields
    }
    seed_fields = {
        f.name: f.title
        for n in detail.nodes
        for f in n.fields
        if f.source == FieldSource.PREDEFINED
    }
    answers = {
        n.name: answer_table(
            n.fields,
            n.consensus.answers,
            n.consensus.result,
            counted=n.consensus.counted,
            threshold=n.consensus.threshold,
        )
        for n in detail.nodes
        if n.consensus is not None
    }
    return render(
        request,
        "task_detail.html",
        {
            "task": detail,
            "view": "timeline" if view == "timeline" else "nodes",
            "edits": edits,
            "answers": answers,
            "seed_fields": seed_fields,
            "task_url": task_url,
            "pipeline_url": pipeline_url,
            "quarantine_actions": list(QuarantineAction),
        },
        user=user,
        nav="explorer",
    )


def _tags(text: str) -> list[str]:
    return [t.strip() for t in text.replace(",", " ").split() if t.strip()]


@router.post("/explorer/task/action")
async def task_action(request: Request, user: PageUser) -> Response:
    """An admin operation on one task, through the task's workflow (audited in its timeline)."""
    require_admin(user)
    form = await request.form()
    workflow_id = str(form.get("id", ""))
    op = str(form.get("op", ""))
    reason = str(form.get("reason", "")).strip() or None
    node = str(form.get("node", ""))
    back = task_url(workflow_id, str(form.get("view", "")) or None)
    name = TASK_OPS.get(op)
    if name is None:
        return redirect(back, error=f"unknown operation {op!r}")
    fields: dict[str, Any]
    if op == "resume":
        fields = {}
    elif op in ("tag", "untag"):
        tags = _tags(str(form.get("tags", "")))
        if not tags:
            return redirect(back, error="give at least one tag")
        fields = {"tags": tags}
    elif op == "release":
        fields = {"node": node, "reason": reason, "holder": str(form.get("holder", "")) or None}
    elif op == "resolve":
        try:
            action = QuarantineAction(str(form.get("action", "")))
        except ValueError:
            return redirect(back, error="choose rework, finish or fail")
        fields = {"action": action, "reason": reason}
    elif op == "edit":
        values = await _edited_values(request, workflow_id, node, form)
        fields = {"node": node, "values": values, "reason": reason}
    elif op == "escalate" and reason is None:
        return redirect(back, error="escalating needs a reason")
    else:  # pause, escalate, deescalate, retry
        fields = {"reason": reason}
    command = task_command(name, actor=user.name, **fields)
    try:
        result = await deps(request).conveyor.task(workflow_id).send(command)
    except Exception as err:
        page_error = failure(err)
        if page_error is None:
            raise
        return redirect(back, error=page_error.message)
    await wait_projected(request, workflow_id, result.seq)
    return redirect(back, notice=result.message)


async def _edited_values(
    request: Request, workflow_id: str, node: str, form: FormData
) -> dict[str, Any]:
    def load(session: Session) -> Any:
        try:
            return task_detail(session, workflow_id)
        except TaskNotFound as err:
            raise not_found(str(err)) from None

    detail = await in_store(request, load)
    found = next((n for n in detail.nodes if n.name == node), None)
    if found is None:
        raise not_found(f"task {workflow_id} has no node {node!r}")
    return read_form(found.fields, form)


# --------------------------------------------------------------------------- bulk actions


def _selection(name: str, form: FormData) -> tuple[TaskFilter, str]:
    """The tasks a bulk action applies to: the ticked rows, or every task matching the
    page's filter; and a description of it."""
    if form.get("scope") == "filter":
        params = parse_qs(str(form.get("filter_query", "")))
        criteria = filter_from(_Params(params))
        return criteria, "every task matching the filter"
    ids = [str(i) for i in form.getlist("ids") if str(i)]
    if not ids:
        raise PageError(400, "Nothing selected", "tick at least one task first")
    return TaskFilter(workflow_ids=ids), f"{len(ids)} selected task(s)"


class _Params(dict[str, list[str]]):
    def getlist(self, key: str) -> list[str]:
        return list(self.get(key, []))


@router.post("/explorer/pipelines/{name}/bulk", response_model=None)
async def bulk(request: Request, user: PageUser, name: str) -> Response:
    """Export (download), evaluate or delete the selection."""
    require_reader(user)
    form = await request.form()
    action = str(form.get("action", ""))
    criteria, described = _selection(name, form)
    back = pipeline_url(name) + (
        "?" + str(form.get("back_query")) if form.get("back_query") else ""
    )
    if action == "export":
        fmt = str(form.get("format", "csv"))
        if fmt not in EXPORT_FORMATS:
            return redirect(back, error=f"unknown format {fmt!r}")
        text = str(form.get("shape", "wide"))
        if text not in EXPORT_SHAPES:
            return redirect(back, error=f"unknown shape {text!r}: wide or long")
        shape = cast(ExportShape, text)
        try:
            await in_store(request, lambda s: check_shape(s, name, shape))
        except NoConsensusNodes as err:
            return redirect(back, error=str(err))
        return await _export(request, name, criteria, fmt, shape)
    require_admin(user)
    if action == "evaluate":
        return await _evaluate(request, name, criteria, form, back, described)
    if action == "delete":
        return await _delete(request, user, name, criteria, form, back, described)
    return redirect(back, error=f"unknown action {action!r}")


async def _export(
    request: Request, name: str, criteria: TaskFilter, fmt: str, shape: ExportShape
) -> Response:
    sessions = deps(request).sessions
    handle, path = tempfile.mkstemp(prefix="conveyor-export-", suffix=f".{fmt}")
    os.close(handle)

    def write() -> None:
        with open(path, "wb") as stream:
            export(sessions, name, criteria, fmt, stream, shape=shape)  # type: ignore[arg-type]

    try:
        await asyncio.to_thread(write)
    except Exception:
        os.unlink(path)
        raise
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + ("-long" if shape == "long" else "")
    media = {
        "csv": "text/csv",
        "json": "application/json",
        "jsonl": "application/x-ndjson",
        "zip": "application/zip",
    }[fmt]
    return FileResponse(
        path,
        media_type=media,
        filename=f"{name}-{stamp}.{fmt}",
        background=BackgroundTask(os.unlink, path),
    )


async def _evaluate(
    request: Request,
    name: str,
    criteria: TaskFilter,
    form: FormData,
    back: str,
    described: str,
) -> Response:
    from conveyor.bulk_evaluation import current_pipeline, evaluators_by_name, start_bulk_evaluation
    from workflows.bulk_evaluate_messages import BulkEvaluateInput, bulk_evaluate_workflow_id

    refs = [str(r) for r in form.getlist("evaluators") if str(r)]
    if not refs:
        return redirect(back, error="choose at least one evaluator to run")
    versions = await in_store(request, lambda s: pipeline_versions(s, name))
    try:
        pipeline = current_pipeline(versions, name)
        evaluators = evaluators_by_name(pipeline, refs)
    except CliError as err:
        return redirect(back, error=str(err))
    conveyor = deps(request).conveyor
    workflow_id = bulk_evaluate_workflow_id(name, datetime.now(UTC)) + "-" + uuid.uuid4().hex[:6]
    request_input = BulkEvaluateInput(
        pipeline=name,
        filter=criteria.model_dump(mode="json", exclude_defaults=True),
        evaluators=evaluators,
    )
    await start_bulk_evaluation(conveyor.client, conveyor.task_queue, request_input, workflow_id)
    return redirect(
        back,
        notice=f"evaluating {described} with {', '.join(refs)}: bulk evaluation {workflow_id} "
        "(results appear in Task Data and Evaluation Analytics as they come)",
    )


async def _delete(
    request: Request,
    user: User,
    name: str,
    criteria: TaskFilter,
    form: FormData,
    back: str,
    described: str,
) -> Response:
    selection = Selection(pipeline=name, filter=criteria)
    if form.get("confirm") != "yes":
        if criteria.is_explicit_only():
            count = len(criteria.workflow_ids or [])
        else:
            count = await in_store(request, lambda s: count_tasks(s, name, criteria))
        return render(
            request,
            "confirm_delete.html",
            {
                "name": name,
                "count": count,
                "described": described,
                "ids": (criteria.workflow_ids or [])[:20],
                "form_items": [(k, str(v)) for k, v in form.multi_items() if k != "confirm"],
                "back": back,
            },
            user=user,
            nav="explorer",
        )
    report = await delete_tasks(
        deps(request).conveyor, deps(request).sessions, selection, confirm=True
    )
    problems = f", {len(report.errors)} error(s)" if report.errors else ""
    message = f"deleted {report.deleted}, already gone {report.already_gone}{problems}"
    if report.errors:
        return redirect(back, error=message + f": {report.errors[0].reason}")
    return redirect(back, notice=message)
