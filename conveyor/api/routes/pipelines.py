"""Pipelines: list, show, validate, apply, and the lifecycle (activate, pause, resume, complete,
archive) — the same client calls as ``starter.py pipeline …``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from conveyor.api.auth import Admin, Reader
from conveyor.api.errors import ApiError, conflict
from conveyor.api.routes.common import ERRORS, Deps, PipelineName, in_store
from conveyor.pipelines import parse_text
from store.repositories import list_pipelines
from store.schemas import PipelineInfo
from workflows.graph import Pipeline, PipelineInvalid, Problem
from workflows.graph_checks import validate_pipeline
from workflows.pipeline_messages import (
    PipelineCommandResult,
    PipelineStatus,
    PipelineView,
)

router = APIRouter(prefix="/pipelines", tags=["pipelines"], responses=ERRORS)

MAX_DEFINITION_BYTES = 2 * 1024 * 1024

_DEFINITION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "the pipeline definition: a JSON object, or the text of a YAML (or JSON) "
        "file as in `examples/`",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


class PipelineAction(StrEnum):
    ACTIVATE = "activate"
    PAUSE = "pause"
    RESUME = "resume"
    COMPLETE = "complete"
    ARCHIVE = "archive"


_TARGETS = {
    PipelineAction.ACTIVATE: PipelineStatus.ACTIVE,
    PipelineAction.PAUSE: PipelineStatus.PAUSED,
    PipelineAction.RESUME: PipelineStatus.ACTIVE,
    PipelineAction.COMPLETE: PipelineStatus.COMPLETED,
    PipelineAction.ARCHIVE: PipelineStatus.ARCHIVED,
}


class StatusChange(BaseModel):
    reason: str | None = Field(default=None, max_length=2000)


class ApplyResult(BaseModel):
    pipeline: str
    applied: PipelineCommandResult
    """The apply's answer: the version, and whether it is new."""
    activated: PipelineCommandResult | None = None
    """With ``activate=true`` on a Draft pipeline: the activation's answer."""


class ValidationReport(BaseModel):
    valid: bool
    name: str | None = None
    version: str | None = None
    """The definition's content hash: the version it would be applied as."""
    nodes: int = 0
    human_nodes: int = 0
    llm_nodes: int = 0
    problems: list[Problem] = Field(default_factory=list)
    """Every problem found, each naming the node (and field) and the fix."""


def _invalid_body(message: str) -> PipelineInvalid:
    return PipelineInvalid([Problem(where="body", message=message)])


async def _definition_text(request: Request) -> tuple[str, bool]:
    """The request body as text, and whether it is JSON (a JSON content type) or YAML.

    Raises:
        PipelineInvalid: the body is empty or not UTF-8.
        ApiError: 413, the body is too large.
    """
    body = await request.body()
    if len(body) > MAX_DEFINITION_BYTES:
        limit = f"{MAX_DEFINITION_BYTES:,}"
        raise ApiError(413, "too_large", f"a definition may be at most {limit} bytes")
    if not body.strip():
        raise _invalid_body("the body is empty; send the definition (JSON or YAML)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid_body("the body is not UTF-8 text") from None
    return text, "json" in request.headers.get("content-type", "").lower()


def _validated(text: str, json_only: bool) -> Pipeline:
    """Parse and validate a definition: CPU work, run in a worker thread (see _definition)."""
    return validate_pipeline(parse_text(text, json_only=json_only, where="body"))


async def _definition(request: Request) -> Pipeline:
    """The request's definition, validated.

    Parsing and validation run in a worker thread, so a large or contrived definition keeps
    only its own request waiting, never the event loop every other request shares.

    Raises:
        PipelineInvalid: with every problem found.
    """
    text, json_only = await _definition_text(request)
    return await run_in_threadpool(_validated, text, json_only)


def _report(pipeline: Pipeline) -> ValidationReport:
    return ValidationReport(
        valid=True,
        name=pipeline.name,
        version=pipeline.content_hash(),
        nodes=len(pipeline.nodes),
        human_nodes=sum(1 for n in pipeline.nodes if n.is_human),
        llm_nodes=sum(1 for n in pipeline.nodes if n.is_llm_node),
    )


@router.get("", response_model=list[PipelineInfo], summary="Every applied pipeline and its status")
async def list_all(deps: Deps, _: Reader) -> list[PipelineInfo]:
    return await in_store(deps, list_pipelines)


@router.post(
    "/validate",
    response_model=ValidationReport,
    openapi_extra=_DEFINITION_BODY,
    summary="Check a definition, listing every problem (nothing is stored)",
)
async def validate(request: Request, _: Reader) -> ValidationReport:
    try:
        pipeline = await _definition(request)
    except PipelineInvalid as err:
        return ValidationReport(valid=False, problems=err.problems)
    return await run_in_threadpool(_report, pipeline)


@router.post(
    "",
    response_model=ApplyResult,
    openapi_extra=_DEFINITION_BODY,
    summary="Apply a definition (a new version only when its content changed)",
)
async def apply(
    request: Request,
    deps: Deps,
    user: Admin,
    activate: Annotated[bool, Query(description="activate it if it is Draft")] = False,
) -> ApplyResult:
    pipeline = await _definition(request)
    conveyor = deps.conveyor
    applied = await conveyor.apply_pipeline(pipeline, by=user.name)
    activated = None
    if activate and applied.status == PipelineStatus.DRAFT:
        activated = await conveyor.set_pipeline_status(
            pipeline.name, PipelineStatus.ACTIVE, by=user.name
        )
    return ApplyResult(pipeline=pipeline.name, applied=applied, activated=activated)


@router.get(
    "/{name}",
    response_model=PipelineView,
    summary="A pipeline's status, versions, fan-out progress and recent events",
)
async def show(name: PipelineName, deps: Deps, _: Reader) -> PipelineView:
    return await deps.conveyor.describe_pipeline(name)


def _change_route(action: PipelineAction) -> Any:
    async def change_status(
        name: PipelineName,
        deps: Deps,
        user: Admin,
        body: Annotated[StatusChange | None, Body()] = None,
    ) -> PipelineCommandResult:
        conveyor = deps.conveyor
        if action is PipelineAction.RESUME:
            view = await conveyor.describe_pipeline(name)
            if view.status != PipelineStatus.PAUSED:
                raise conflict(
                    f"pipeline {name!r} is {view.status}, not Paused", "pipeline_rejected"
                )
        reason = body.reason if body is not None else None
        return await conveyor.set_pipeline_status(
            name, _TARGETS[action], by=user.name, reason=reason
        )

    return change_status


# One route per action: a `/{name}/{action}` pattern would also catch `/{name}/tasks`.
for _action, _summary in (
    (PipelineAction.ACTIVATE, "Make a Draft (or Completed) pipeline Active"),
    (PipelineAction.PAUSE, "Pause the pipeline and every running task of it"),
    (PipelineAction.RESUME, "Resume a Paused pipeline; its tasks carry on"),
    (PipelineAction.COMPLETE, "Take no new tasks; completion chains fire when done"),
    (PipelineAction.ARCHIVE, "Archive a Draft or Completed pipeline (final)"),
):
    router.add_api_route(
        f"/{{name}}/{_action.value}",
        _change_route(_action),
        methods=["POST"],
        response_model=PipelineCommandResult,
        name=f"pipeline_{_action.value}",
        summary=_summary,
    )
