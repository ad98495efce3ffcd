"""The Data Explorer's Agreement tab: how far a consensus pipeline's annotators agree, and its
Dawid-Skene runs.

The figures are ``store/consensus_analytics``' (the same as ``analytics consensus`` and
``GET /pipelines/{name}/agreement``): per counted field Krippendorff's alpha and percent
agreement, per contributor their agreement with the final answers, and per field a matrix of
Cohen's kappa between contributors who share enough items. Beside them, the stored Dawid-Skene
runs: an admin starts one from the tab (it is stored, as with ``analytics dawid-skene``), and
a run shows each contributor's estimated accuracy and the items whose estimate is not their
majority, side by side. Both download as CSV.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from conveyor.http_common import csv_download
from conveyor.web import charts
from conveyor.web.common import (
    PageError,
    PageRoute,
    in_store,
    not_found,
    page_user,
    pipeline_url,
    redirect,
    require_admin,
    require_reader,
)
from store.consensus_analytics import (
    CATEGORICAL_TYPES,
    DEFAULT_ITERATIONS,
    ConsensusAgreement,
    NoAnswers,
    NodeAgreement,
    NotCategorical,
    NotConsensus,
    QualityExtraMissing,
    StoredDawidSkene,
    UnknownRun,
    consensus_agreement,
    counted_fields,
    dawid_skene_runs,
    run_dawid_skene,
    stored_dawid_skene,
    write_csv,
    write_dawid_skene_csv,
)
from store.explorer import pipeline_versions
from workflows.errors import UnknownPipeline
from workflows.graph import Pipeline

router = APIRouter(include_in_schema=False, route_class=PageRoute)

ITEMS_SHOWN = 50
"""Differing items listed on the tab (the CSV has every item)."""


@dataclass(frozen=True)
class Matrix:
    """Cohen's kappa (or, for interval fields, percent agreement) between each pair of a node's
    contributors on one field; None where a pair shares too few items."""

    field: str
    measure: str
    people: list[str]
    cells: dict[tuple[str, str], tuple[float | None, int]]
    """(a, b) -> (figure, shared items), both orders."""


def has_consensus(versions: list[tuple[str, Pipeline]]) -> bool:
    return any(n.consensus is not None for _, p in versions for n in p.nodes)


def categorical_fields(versions: list[tuple[str, Pipeline]]) -> list[str]:
    """``node.field`` of every field Dawid-Skene can take: the categorical counted fields of
    the consensus nodes of any stored version (as :func:`dawid_skene` resolves them)."""
    parsed = [p for _, p in versions]
    nodes = sorted({n.name for p in parsed for n in p.nodes if n.consensus is not None})
    return [
        f"{node}.{counted.spec.name}"
        for node in nodes
        for counted in counted_fields(parsed, node)
        if counted.spec.type in CATEGORICAL_TYPES
    ]


def matrices(node: NodeAgreement) -> list[Matrix]:
    """One matrix per field some pair has a figure for (kappa is undefined when both gave one
    and the same value throughout)."""
    people = sorted({p.a for p in node.pairs} | {p.b for p in node.pairs})
    out = []
    for compared in node.fields:
        if compared.level is None:
            continue
        field, interval = compared.field, compared.level.value == "interval"
        cells: dict[tuple[str, str], tuple[float | None, int]] = {}
        for pair in node.pairs:
            found = next((f for f in pair.fields if f.field == field and f.items), None)
            if found is None:
                continue
            figure = found.percent_agreement if interval else found.kappa
            cells[(pair.a, pair.b)] = cells[(pair.b, pair.a)] = (figure, found.items)
        if any(figure is not None for figure, _ in cells.values()):
            measure = "percent agreement" if interval else "Cohen's kappa"
            out.append(Matrix(field, measure, people, cells))
    return out


def agreement_data(session: Session, name: str, run: int | None) -> dict[str, Any]:
    """What the Agreement tab shows."""
    versions = pipeline_versions(session, name)
    report: ConsensusAgreement | None
    try:
        report = consensus_agreement(session, name)
    except (NotConsensus, UnknownPipeline):
        report = None
    runs = dawid_skene_runs(session, name, limit=20) if report else []
    shown: StoredDawidSkene | None = None
    run_error = None
    if runs:
        try:
            shown = stored_dawid_skene(session, name, run, only_differing=True)
        except UnknownRun as err:
            run_error = str(err)
    return {
        "consensus": report,
        "matrices": {n.node: matrices(n) for n in report.nodes} if report else {},
        "ds_runs": runs,
        "ds_shown": shown,
        "ds_error": run_error,
        "ds_fields": categorical_fields(versions),
        "ds_items_shown": ITEMS_SHOWN,
        "ds_iterations": DEFAULT_ITERATIONS,
        "ds_available": importlib.util.find_spec("crowdkit") is not None,
        "meter": charts.meter,
    }


def kappa_color(value: float | None, share: bool = False) -> str:
    """A cell's background: red below 0, white at 0, green towards 1 (a ``share``, 0..1, is
    drawn as 2 * share - 1: white at one half)."""
    if value is None:
        return "transparent"
    v = max(-1.0, min(1.0, 2 * value - 1 if share else value))
    if v >= 0:
        return f"rgba(46, 160, 67, {0.12 + 0.5 * v:.2f})"
    return f"rgba(218, 54, 51, {0.12 + 0.5 * -v:.2f})"


@router.get("/explorer/pipelines/{name}/agreement.csv", response_model=None)
async def agreement_csv(request: Request, name: str) -> Response:
    require_reader(await page_user(request))
    try:
        report = await in_store(request, lambda s: consensus_agreement(s, name))
    except (NotConsensus, UnknownPipeline) as err:
        raise not_found(str(err)) from None
    return csv_download(lambda out: write_csv(report, out), f"{name}-agreement.csv")


@router.get("/explorer/pipelines/{name}/dawid-skene/{run}.csv", response_model=None)
async def dawid_skene_csv(request: Request, name: str, run: str) -> Response:
    require_reader(await page_user(request))
    if not run.isdigit() or not 0 < int(run) < 10**10:
        raise PageError(400, "Bad run", f"{run!r} is not a run number: see the Agreement tab")
    try:
        kept = await in_store(request, lambda s: stored_dawid_skene(s, name, int(run)))
    except (UnknownRun, UnknownPipeline) as err:
        raise not_found(str(err)) from None
    return csv_download(
        lambda out: write_dawid_skene_csv(kept.report, out),
        f"{name}-dawid-skene-run-{kept.run.id}.csv",
    )


@router.post("/explorer/pipelines/{name}/dawid-skene", response_model=None)
async def start_dawid_skene(request: Request, name: str) -> Response:
    """Run Dawid-Skene over the chosen ``node.field`` and store the run (admins)."""
    user = await page_user(request)
    require_admin(user)
    form = await request.form()
    back = pipeline_url(name, tab="agreement")
    node, dot, field = str(form.get("field", "")).partition(".")
    if not dot or not node or not field:
        return redirect(back, error="choose the field to re-aggregate (NODE.FIELD)")
    text = str(form.get("iterations") or DEFAULT_ITERATIONS)
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        return redirect(back, error=f"iterations {text!r}: give a whole number from 1 to 10000")

    try:
        kept = await in_store(
            request,
            lambda s: run_dawid_skene(
                s, name, node=node, field=field, iterations=int(text), by=user.name
            ),
        )
    except (UnknownPipeline, NotConsensus, NotCategorical, NoAnswers, QualityExtraMissing) as err:
        return redirect(back, error=str(err))
    number = kept.run.id
    return redirect(
        pipeline_url(name, tab="agreement", run=number),
        notice=f"Dawid-Skene over {node}.{field}: stored as run {number}",
    )
