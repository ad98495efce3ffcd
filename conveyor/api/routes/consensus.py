"""Consensus Analytics — ``store/consensus_analytics/``, as ``starter.py analytics consensus``
and ``analytics dawid-skene`` use it. Readers (admins and viewers) read; storing a Dawid-Skene
run is for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from conveyor.api.auth import Admin, Reader
from conveyor.api.errors import ErrorResponse
from conveyor.api.routes.common import ERRORS, Deps, Filter, PipelineName, Timestamp, in_store
from conveyor.http_common import csv_download
from store.consensus_analytics import (
    DEFAULT_ITERATIONS,
    DEFAULT_MIN_SHARED,
    ConsensusAgreement,
    DawidSkeneReport,
    DawidSkeneRun,
    StoredDawidSkene,
    consensus_agreement,
    dawid_skene,
    dawid_skene_runs,
    run_dawid_skene,
    stored_dawid_skene,
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
    return csv_download(lambda out: write_csv(report, out), f"{name}-agreement.csv")


@router.get(
    "/{name}/dawid-skene",
    response_model=DawidSkeneReport,
    summary="Re-aggregate a consensus node's categorical field with Dawid-Skene",
    description="Over every answer of one consensus node's select, boolean, pairwise, rating "
    "or integer field: each item's estimated answer and its posterior probability beside its "
    "majority and its recorded final answer, and each contributor's confusion matrix. "
    "Worked out on request and not stored (`POST .../dawid-skene/runs` stores a run). "
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
    return csv_download(lambda out: write_dawid_skene_csv(report, out), f"{name}-dawid-skene.csv")


class DawidSkeneRequest(BaseModel):
    """What to re-aggregate and store: a node's field over the tasks a filter selects."""

    model_config = ConfigDict(extra="forbid")

    node: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the consensus node (may be left out when the pipeline has one)",
    )
    field: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the categorical field (may be left out when the node has one)",
    )
    iterations: int = Field(
        default=DEFAULT_ITERATIONS, ge=1, le=10_000, description="at most this many EM iterations"
    )
    filter: Filter = Field(
        default_factory=TaskFilter,
        description="which tasks count, as the Data Explorer filters them (default: every task)",
    )


@router.post(
    "/{name}/dawid-skene/runs",
    response_model=StoredDawidSkene,
    status_code=201,
    summary="Run Dawid-Skene over a consensus node's field and store the run (admins)",
    description="The same estimates as `GET .../dawid-skene`, stored as a numbered run with "
    "every item, so it can be listed, read back and exported later. The run sits beside the "
    "tasks: their recorded values are never changed. A field with no answers yet stores "
    "nothing and answers `no_answers` (422).",
    responses={
        422: {
            "model": ErrorResponse,
            "description": "no consensus node, no such field, or no answers yet",
        },
    },
)
async def store_dawid_skene_run(
    deps: Deps, user: Admin, name: PipelineName, request: DawidSkeneRequest
) -> StoredDawidSkene:
    criteria = request.filter if request.filter != TaskFilter() else None
    return await in_store(
        deps,
        lambda s: run_dawid_skene(
            s,
            name,
            node=request.node,
            field=request.field,
            criteria=criteria,
            iterations=request.iterations,
            by=user.name,
        ),
    )


@router.get(
    "/{name}/dawid-skene/runs",
    response_model=list[DawidSkeneRun],
    summary="The pipeline's stored Dawid-Skene runs, the newest first",
)
async def dawid_skene_runs_of(
    deps: Deps,
    _: Reader,
    name: PipelineName,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many runs")] = 50,
) -> list[DawidSkeneRun]:
    return await in_store(deps, lambda s: dawid_skene_runs(s, name, limit=limit))


RunRef = Annotated[
    str,
    Path(
        pattern=r"^(latest|[1-9][0-9]{0,9})$",
        description="the run's number, or `latest`",
    ),
]


@router.get(
    "/{name}/dawid-skene/runs/{run}",
    response_model=StoredDawidSkene,
    summary="A stored Dawid-Skene run read back (JSON or CSV)",
    description="`run` is a number from the listing or `latest`. No such run: `unknown_run` "
    "(404). `format=csv` answers the same CSV as `GET .../dawid-skene`.",
    responses={200: {"content": {"text/csv": {}}, "description": "the run (JSON or CSV)"}},
)
async def dawid_skene_run_of(
    deps: Deps,
    _: Reader,
    name: PipelineName,
    run: RunRef,
    only_differing: Annotated[
        bool, Query(description="list only the items whose estimate is not their majority")
    ] = False,
    format: Format = "json",
) -> StoredDawidSkene | Response:
    number = None if run == "latest" else int(run)
    kept = await in_store(
        deps, lambda s: stored_dawid_skene(s, name, number, only_differing=only_differing)
    )
    if format == "json":
        return kept
    return csv_download(
        lambda out: write_dawid_skene_csv(kept.report, out),
        f"{name}-dawid-skene-run-{kept.run.id}.csv",
    )
