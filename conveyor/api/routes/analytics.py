"""LLM Analytics and Evaluation Analytics — ``store/analytics.py``, as ``starter.py analytics``
uses it. Readers only (admins and viewers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from conveyor.api.auth import Reader
from conveyor.api.errors import invalid
from conveyor.api.routes.common import ERRORS, PIPELINE_NAME, Deps, Timestamp, in_store
from store.analytics import (
    DEFAULT_DISAGREEMENT_LIMIT,
    DEFAULT_FAILING_LIMIT,
    DEFAULT_LLM_GROUPS,
    DEFAULT_TOLERANCE,
    LLM_GROUP_KEYS,
    AgreementStats,
    CriterionStats,
    LlmStats,
    Purpose,
    agreement,
    evaluation_analytics,
    llm_analytics,
)
from workflows.messages import EvaluationKind

router = APIRouter(prefix="/analytics", tags=["analytics"], responses=ERRORS)

Pipeline = Annotated[str, Query(pattern=PIPELINE_NAME, max_length=100)]
Name = Annotated[str | None, Query(min_length=1, max_length=200)]


@router.get(
    "/llm",
    response_model=list[LlmStats],
    summary="LLM calls per group: tokens, cost, latency, retries and errors",
)
async def llm(
    deps: Deps,
    _: Reader,
    pipeline: Annotated[
        str | None, Query(pattern=PIPELINE_NAME, max_length=100, description="default: all")
    ] = None,
    since: Annotated[Timestamp | None, Query(description="attempts from (inclusive)")] = None,
    until: Annotated[Timestamp | None, Query(description="attempts before (exclusive)")] = None,
    purpose: Purpose = Purpose.ALL,
    group_by: Annotated[
        str,
        Query(
            max_length=100,
            description=f"comma-separated, any of {','.join(LLM_GROUP_KEYS)}; empty for one total",
        ),
    ] = ",".join(DEFAULT_LLM_GROUPS),
) -> list[LlmStats]:
    keys = tuple(k.strip() for k in group_by.split(",") if k.strip())
    unknown = [k for k in keys if k not in LLM_GROUP_KEYS]
    if unknown:
        raise invalid(
            f"cannot group by {', '.join(unknown)}: use any of {','.join(LLM_GROUP_KEYS)}"
        )
    return await in_store(
        deps,
        lambda s: llm_analytics(
            s, pipeline, since=since, until=until, purpose=purpose, group_by=keys
        ),
    )


@router.get(
    "/eval",
    response_model=list[CriterionStats],
    summary="Evaluation results per criterion, node and kind: pass rates, scores, failures",
)
async def evaluations(
    deps: Deps,
    _: Reader,
    pipeline: Pipeline,
    criterion: Name = None,
    node: Name = None,
    kind: EvaluationKind | None = None,
    criterion_version: Name = None,
    bins: Annotated[int, Query(ge=1, le=100, description="score histogram bins")] = 10,
    limit: Annotated[
        int, Query(ge=0, le=1000, description="failing results listed per criterion")
    ] = DEFAULT_FAILING_LIMIT,
) -> list[CriterionStats]:
    return await in_store(
        deps,
        lambda s: evaluation_analytics(
            s,
            pipeline,
            criterion=criterion,
            node=node,
            kind=kind,
            criterion_version=criterion_version,
            bins=bins,
            limit=limit,
        ),
    )


@router.get(
    "/agreement",
    response_model=list[AgreementStats],
    summary="How far LLM judges agree with human ratings, per criterion",
)
async def judge_agreement(
    deps: Deps,
    _: Reader,
    pipeline: Pipeline,
    criterion: Name = None,
    tolerance: Annotated[
        float,
        Query(ge=0, le=1e9, allow_inf_nan=False, description="scores further apart disagree"),
    ] = DEFAULT_TOLERANCE,
    limit: Annotated[
        int, Query(ge=0, le=1000, description="disagreeing tasks listed per criterion")
    ] = DEFAULT_DISAGREEMENT_LIMIT,
) -> list[AgreementStats]:
    return await in_store(
        deps,
        lambda s: agreement(s, pipeline, criterion, tolerance=tolerance, limit=limit),
    )
