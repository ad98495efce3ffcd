"""Bulk actions: export (an asynchronous job), evaluate, delete — the same library calls as
``starter.py export``, ``evaluate …`` and ``delete``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, ValidationError, model_validator
from sqlalchemy.orm import Session
from temporalio.client import WorkflowHandle

from conveyor.api.auth import Admin, Reader
from conveyor.api.errors import ApiError, conflict, invalid, not_found
from conveyor.api.exports import MEDIA_TYPES, ExportJob, ExportJobs, ExportJobView, ExportState
from conveyor.api.routes.common import ERRORS, PIPELINE_NAME, Deps, Filter, in_store
from conveyor.bulk import (
    ConfirmationRequired,
    ExportFormat,
    ExportShape,
    Selection,
    check_shape,
    delete_tasks,
)
from conveyor.bulk_evaluation import (
    check_evaluators,
    current_progress,
    evaluators_by_name,
    start_bulk_evaluation,
)
from conveyor.connect import CliError
from conveyor.http_common import deps_of
from store.explorer import TaskFilter, pipeline_versions
from store.repositories import get_pipeline
from store.users import Role, User
from workflows.bulk_evaluate import BulkEvaluateWorkflow
from workflows.bulk_evaluate_messages import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_CONCURRENCY,
    MAX_CHUNK_SIZE,
    MAX_CONCURRENCY,
    BulkEvaluateInput,
    BulkEvaluateProgress,
    NodeEvaluator,
    bulk_evaluate_workflow_id,
)
from workflows.graph import Pipeline
from workflows.options import BULK_EVALUATE_WORKFLOW

router = APIRouter(prefix="/bulk", tags=["bulk"], responses=ERRORS)

PipelineField = Annotated[str, Field(pattern=PIPELINE_NAME, max_length=100)]
JobId = Annotated[str, Path(min_length=1, max_length=100)]
EvaluationId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=1000,
        description="the id `POST /bulk/evaluations` returned (it may contain '/')",
    ),
]


def _jobs(request: Request) -> ExportJobs:
    """The process's export jobs, with those an earlier process recorded read in."""
    jobs: ExportJobs = request.app.state.export_jobs
    jobs.read_records(deps_of(request).data_dir / "exports")
    return jobs


def _job(request: Request, job_id: str, user: User) -> ExportJob:
    """The job, if the caller may see it: their own, or any for an admin."""
    job = _jobs(request).get(job_id)
    if job is None or (job.owner != user.name and user.role is not Role.ADMIN):
        raise not_found(f"no export job {job_id!r} (deleted, or never yours)", "no_job")
    return job


def _view(request: Request, job: ExportJob) -> ExportJobView:
    return job.view(str(request.url_for("download_export", job_id=job.id).path))


async def _known_pipeline(deps: Any, name: str) -> None:
    def known(session: Session) -> bool:
        return get_pipeline(session, name) is not None or bool(pipeline_versions(session, name))

    if not await in_store(deps, known):
        raise not_found(f"no pipeline named {name!r} in the store", "unknown_pipeline")


# --------------------------------------------------------------------------- export


class ExportRequest(BaseModel):
    pipeline: PipelineField
    format: ExportFormat = "csv"
    shape: ExportShape = Field(
        default="wide",
        description="wide: one row per task, consensus nodes adding their columns; long: one "
        "row per answer of a consensus node (422 no_consensus_nodes for a pipeline without one)",
    )
    filter: Filter = Field(
        default_factory=TaskFilter, description="the Data Explorer's filter (or workflow_ids)"
    )


@router.post(
    "/exports",
    response_model=ExportJobView,
    status_code=202,
    summary="Start an export job (CSV, JSON, JSON Lines or ZIP); poll it, then download",
)
async def start_export(
    body: ExportRequest, request: Request, deps: Deps, user: Reader
) -> ExportJobView:
    await _known_pipeline(deps, body.pipeline)
    await in_store(deps, lambda session: check_shape(session, body.pipeline, body.shape))
    job = _jobs(request).start(
        deps.sessions,
        deps.data_dir / "exports",
        user.name,
        body.pipeline,
        body.format,
        body.filter,
        body.shape,
    )
    return _view(request, job)


@router.get(
    "/exports",
    response_model=list[ExportJobView],
    summary="Export jobs: the caller's (an admin's: everyone's), newest first",
)
async def list_exports(request: Request, user: Reader) -> list[ExportJobView]:
    return [
        _view(request, j)
        for j in _jobs(request).all()
        if j.owner == user.name or user.role is Role.ADMIN
    ]


@router.get("/exports/{job_id}", response_model=ExportJobView, summary="An export job's progress")
async def export_status(job_id: JobId, request: Request, user: Reader) -> ExportJobView:
    return _view(request, _job(request, job_id, user))


@router.get(
    "/exports/{job_id}/download",
    response_class=FileResponse,
    responses={
        200: {
            "description": "the exported file",
            "content": {t.split(";")[0]: {} for t in MEDIA_TYPES.values()},
        }
    },
    summary="Download a finished export (409 while it runs)",
)
async def download_export(job_id: JobId, request: Request, user: Reader) -> FileResponse:
    job = _job(request, job_id, user)
    if job.state is not ExportState.DONE:
        detail = f": {job.error}" if job.error else ""
        raise conflict(f"export {job_id} is {job.state.value}, not done{detail}", "not_ready")
    if not job.path.exists():
        raise not_found(f"the file of export {job_id} is gone", "no_job")
    return FileResponse(job.path, media_type=MEDIA_TYPES[job.format], filename=job.filename)


@router.delete(
    "/exports/{job_id}",
    status_code=204,
    response_class=Response,
    summary="Cancel a running export, or delete a finished one and its file",
)
async def delete_export(job_id: JobId, request: Request, user: Reader) -> Response:
    _jobs(request).delete(_job(request, job_id, user))
    return Response(status_code=204)


# --------------------------------------------------------------------------- evaluate


class EvaluationRequest(BaseModel):
    pipeline: PipelineField
    evaluators: list[Annotated[str, Field(min_length=1, max_length=400)]] | None = Field(
        default=None,
        max_length=100,
        description="NODE.NAME of evaluators in the pipeline's current version",
    )
    entries: list[NodeEvaluator] | None = Field(
        default=None,
        max_length=100,
        description="evaluators given in full: {node, evaluator: {...}} (as in an evaluator file)",
    )
    filter: Filter = Field(default_factory=TaskFilter)
    chunk_size: int = Field(default=DEFAULT_CHUNK_SIZE, ge=1, le=MAX_CHUNK_SIZE)
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=MAX_CONCURRENCY)
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=400,
        description="workflow id (default bulk-evaluate/<pipeline>/<time>); reuse it to resume",
    )

    @model_validator(mode="after")
    def _one_source(self) -> EvaluationRequest:
        if bool(self.evaluators) == bool(self.entries):
            raise ValueError("give either evaluators (NODE.NAME references) or entries, not both")
        return self


class EvaluationStarted(BaseModel):
    id: str
    pipeline: str
    evaluators: list[str]
    """``node.criterion@version`` of each evaluator."""


class EvaluationStatus(BaseModel):
    id: str
    progress: BulkEvaluateProgress


def _evaluators(pipeline: Pipeline, body: EvaluationRequest) -> list[NodeEvaluator]:
    if body.evaluators:
        try:
            return evaluators_by_name(pipeline, body.evaluators)
        except CliError as err:  # its hint names the CLI's option; say the API's
            raise invalid(str(err).replace("with --file instead", "in full as entries")) from None
    entries = list(body.entries or [])
    keys = [e.key for e in entries]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise invalid(f"the same evaluator is listed twice: {', '.join(repeated)}")
    check_evaluators(pipeline, entries)
    return entries


async def _evaluation(deps: Any, evaluation_id: str) -> WorkflowHandle[Any, BulkEvaluateProgress]:
    handle = deps.conveyor.client.get_workflow_handle_for(BulkEvaluateWorkflow.run, evaluation_id)
    description = await handle.describe()  # NOT_FOUND answers 404
    if description.workflow_type != BULK_EVALUATE_WORKFLOW:
        raise not_found(f"{evaluation_id!r} is not a bulk evaluation", "not_found")
    return handle


@router.post(
    "/evaluations",
    response_model=EvaluationStarted,
    status_code=202,
    summary="Start (or resume, with the same id) a bulk evaluation",
)
async def start_evaluation(body: EvaluationRequest, deps: Deps, _: Admin) -> EvaluationStarted:
    versions = await in_store(deps, lambda s: pipeline_versions(s, body.pipeline))
    if not versions:
        raise not_found(f"pipeline {body.pipeline!r} is not in the store", "unknown_pipeline")
    evaluators = _evaluators(versions[0][1], body)
    request = BulkEvaluateInput(
        pipeline=body.pipeline,
        filter=body.filter.model_dump(mode="json", exclude_defaults=True),
        evaluators=evaluators,
        chunk_size=body.chunk_size,
        concurrency=body.concurrency,
    )
    workflow_id = body.id or bulk_evaluate_workflow_id(body.pipeline, datetime.now(UTC))
    conveyor = deps.conveyor
    await start_bulk_evaluation(conveyor.client, conveyor.task_queue, request, workflow_id)
    return EvaluationStarted(
        id=workflow_id, pipeline=body.pipeline, evaluators=[e.key for e in evaluators]
    )


@router.get(
    "/evaluations/{evaluation_id:path}",
    response_model=EvaluationStatus,
    summary="A bulk evaluation's progress (or its final counters)",
)
async def evaluation_status(evaluation_id: EvaluationId, deps: Deps, _: Reader) -> EvaluationStatus:
    handle = await _evaluation(deps, evaluation_id)
    return EvaluationStatus(id=evaluation_id, progress=await current_progress(handle))


@router.post(
    "/evaluations/{evaluation_id:path}/cancel",
    response_model=EvaluationStatus,
    summary="Stop a bulk evaluation (running chunks finish)",
)
async def cancel_evaluation(evaluation_id: EvaluationId, deps: Deps, _: Admin) -> EvaluationStatus:
    handle = await _evaluation(deps, evaluation_id)
    progress = await current_progress(handle)
    if not progress.done:
        await handle.cancel()
        try:
            async with asyncio.timeout(deps.conveyor.update_timeout):
                progress = await handle.result()
        except TimeoutError:  # chunks still finishing: say where it stands
            progress = await current_progress(handle)
    return EvaluationStatus(id=evaluation_id, progress=progress)


# --------------------------------------------------------------------------- delete


class DeleteRequest(BaseModel):
    pipeline: str | None = Field(default=None, pattern=PIPELINE_NAME, max_length=100)
    filter: Filter = Field(
        default_factory=TaskFilter,
        description="which tasks; explicit workflow_ids alone need no pipeline",
    )
    confirm: bool = Field(default=False, description="must be true: deletion cannot be undone")


class DeleteError(BaseModel):
    workflow_id: str
    reason: str | None


class DeleteSummary(BaseModel):
    deleted: int
    already_gone: int
    errors: list[DeleteError]
    deleted_ids: list[str]


@router.post(
    "/delete",
    response_model=DeleteSummary,
    summary="Delete tasks: their workflows and store rows (cannot be undone; confirm: true)",
)
async def delete(body: DeleteRequest, deps: Deps, _: Admin) -> DeleteSummary:
    try:
        selection = Selection(pipeline=body.pipeline, filter=body.filter)
    except ValidationError:
        raise invalid("delete needs a pipeline (or an explicit filter.workflow_ids)") from None
    if not body.confirm:
        raise ConfirmationRequired("deleting tasks cannot be undone: send confirm: true")
    try:
        report = await delete_tasks(deps.conveyor, deps.sessions, selection, confirm=True)
    except ConfirmationRequired:
        raise
    except ValueError as err:  # explicit ids of another pipeline
        raise ApiError(422, "invalid_input", str(err)) from None
    return DeleteSummary(
        deleted=report.deleted,
        already_gone=report.already_gone,
        errors=[DeleteError(workflow_id=e.workflow_id, reason=e.reason) for e in report.errors],
        deleted_ids=[r.workflow_id for r in report.results if r.outcome.value == "deleted"],
    )
