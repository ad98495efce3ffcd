"""Consensus Analytics — ``store/consensus_analytics/``, as ``starter.py analytics consensus``
and ``analytics dawid-skene`` use it. Readers only (admins and viewers)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal, TextIO

from fastapi import APIRouter, Query
from fastapi.responses import Response

from conveyor.api.auth import Reader
from conveyor.api.errors import ErrorResponse
from conveyor.api.routes.common import ERRORS, Deps, PipelineName, Timestamp, in_store
from store.consensus_analytics import (
    DEFAULT_ITERATIONS,
    DEFAULT_MIN_SHARED,
    ConsensusAgreement,
    DawidSkeneReport,
    consensus_agreement,
    dawid_skene,
    write_csv,
    write_dawid_skene_csv,
)
from store.explorer import TaskFilter
from workflows.messages import TaskStatus

router = APIRouter(prefix="/pipelines", tags=["analytics"], responses=ERRORS)

Name = Annotated[str | None, Query(min_length=1, max_length=200)]
Statuses = Annotated[list[TaskStatus] | None, Query(description="count only tasks in these states")]
Tag = Annotated[Name, Query(description="count only tasks with this tag")]
CreatedFrom = Annotated[Timestamp | None, Query(description="tasks created from")]
CreatedTo = Annotated[Timestamp | None, Query(description="tasks created before (exclusive)")]
Format = Literal["json", "csv"]


def _criteria(
    status: list[TaskStatus] | None,
    tag: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
) -> TaskFilter | None:
    if not (status or tag is not None or created_from is not None or created_to is not None):
        return None
    return TaskFilter(
        status=status or [], tag=tag, created_from=created_from, created_to=created_to
    )


def _csv(write: Callable[[TextIO], None], filename: str) -> Response:
    out = io.StringIO()
    write(out)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/{name}/agreement",
    response_model=ConsensusAgreement,
    summary="How far the annotators of consensus nodes agree: alpha, percent agreement, "
    "per contributor and per pair (kappa)",
    description="Per consensus node and counted field: Krippendorff's alpha (nominal, "
    "ordinal or interval by field type), percent agreement, items and answers; per "
    "contributor, their agreement with the final answers; per pair of contributors sharing "
    "`min_shared` items or more, percent agreement and Cohen's kappa. `format=csv` answers "
    "one CSV table (a `table` column says which rows are which). A pipeline without a "
    "consensus node, or a `node` that is not one, is refused with `not_consensus` (422).",
    responses={
        200: {"content": {"text/csv": {}}, "description": "the figures (JSON or CSV)"},
        422: {"model": ErrorResponse, "description": "no consensus node, or not one"},
    },
)
async def consensus_agreement_of(
    deps: Deps,
    _: Reader,
    name: PipelineName,
    node: Annotated[Name, Query(description="one consensus node (default: every one)")] = None,
    min_shared: Annotated[
        int, Query(ge=1, le=1_000_000, description="pairs sharing at least this many items")
    ] = DEFAULT_MIN_SHARED,
    status: Statuses = None,
    tag: Tag = None,
    created_from: CreatedFrom = None,
    created_to: CreatedTo = None,
    format: Format = "json",
) -> ConsensusAgreement | Response:
    criteria = _criteria(status, tag, created_from, created_to)
    report = await in_store(
        deps,
        lambda s: consensus_agreement(s, name, node=node, criteria=criteria, min_shared=min_shared),
    )
    if format == "json":
        return report
    return _csv(lambda out: write_csv(report, out), f"{name}-agreement.csv")


@router.get(
    "/{name}/dawid-skene",
    response_model=DawidSkeneReport,
    summary="Re-aggregate a consensus node's categorical field with Dawid-Skene",
    description="Over every answer of one consensus node's select, boolean, pairwise, rating "
    "or integer field: each item's estimated answer and its posterior probability beside its "
    "majority and its recorded final answer, and each contributor's confusion matrix. "
    "Read-only: recorded values are never changed. `node` and `field` may be left out when "
    "there is only one that fits (else `not_categorical`, 422). Needs the server installed "
    "with the `quality` extra (else `quality_extra_missing`, 503).",
    responses={
        200: {"content": {"text/csv": {}}, "description": "the estimates (JSON or CSV)"},
        422: {"model": ErrorResponse, "description": "no consensus node, or no such field"},
    },
)
async def dawid_skene_of(
    deps: Deps,
    _: Reader,
    name: PipelineName,
    node: Annotated[Name, Query(description="the consensus node")] = None,
    field: Annotated[Name, Query(description="the categorical field")] = None,
    iterations: Annotated[
        int, Query(ge=1, le=10_000, description="at most this many EM iterations")
    ] = DEFAULT_ITERATIONS,
    only_differing: Annotated[
        bool, Query(description="list only the items whose estimate is not their majority")
    ] = False,
    status: Statuses = None,
    tag: Tag = None,
    created_from: CreatedFrom = None,
    created_to: CreatedTo = None,
    format: Format = "json",
) -> DawidSkeneReport | Response:
    criteria = _criteria(status, tag, created_from, created_to)
    report = await in_store(
        deps,
        lambda s: dawid_skene(
            s,
            name,
            node=node,
            field=field,
            criteria=criteria,
            iterations=iterations,
            only_differing=only_differing,
        ),
    )
    if format == "json":
        return report
    return _csv(lambda out: write_dawid_skene_csv(report, out), f"{name}-dawid-skene.csv")
