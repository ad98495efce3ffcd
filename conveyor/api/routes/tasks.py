"""Tasks: create one or many, the Data Explorer (list, counts, detail) and admin operations —
the same calls as ``starter.py task create``, ``explore …`` and ``admin …``.

The admin operations are routes of the one table of command routes (``routes/commands.py``).
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from conveyor.api.auth import Admin, Creator, Reader
from conveyor.api.errors import invalid
from conveyor.api.routes.commands import ADMIN_ROUTES, add_command_routes
from conveyor.api.routes.common import (
    ERRORS,
    Deps,
    PipelineName,
    Timestamp,
    WorkflowId,
    in_store,
)
from conveyor.creation import MAX_KEY_LENGTH, MAX_ROWS_PER_CALL, RowOutcome
from store.explorer import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    HeaderCounts,
    Page,
    Sort,
    SortField,
    TaskDetail,
    TaskFilter,
    decode_cursor,
    header_counts,
    page,
    task_detail,
)
from workflows.messages import (
    NodeStatus,
    TaskStatus,
    TaskView,
)

router = APIRouter(tags=["tasks"], responses=ERRORS)

# --------------------------------------------------------------------------- creating


class NewTask(BaseModel):
    key: str = Field(
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="unique within the pipeline: creating the same key again changes nothing",
    )
    data: dict[str, Any] = Field(
        default_factory=dict, description="seed data: the pipeline's predefined fields"
    )
    paused: bool = Field(default=False, description="start Paused")
    pending: bool = Field(default=False, description="start Pending until activated")


class CreatedTask(BaseModel):
    workflow_id: str
    created: bool
    """False when the task already existed (the same pipeline and key): nothing was created."""


class NewTasks(BaseModel):
    rows: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_ROWS_PER_CALL,
        description="1 to 5,000 rows of seed data (plus the key column, if any); every row is "
        "checked before any task is started",
    )
    key_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the column holding each task's key; without it the key is a hash of the "
        "row's data, so sending the same row again creates nothing new",
    )
    paused: bool = False


class RowResultModel(BaseModel):
    index: int
    key: str | None
    workflow_id: str | None
    outcome: RowOutcome
    errors: dict[str, str]
    message: str


class CreatedTasks(BaseModel):
    pipeline: str
    created: int
    exists: int
    invalid: int
    error: int
    results: list[RowResultModel]
    """One per row, in order."""


@router.post(
    "/pipelines/{name}/tasks",
    response_model=CreatedTask,
    status_code=201,
    responses={200: {"model": CreatedTask, "description": "the task already existed"}},
    summary="Create a task (idempotent: the same key never creates a second one)",
)
async def create_task(
    name: PipelineName, body: NewTask, deps: Deps, _: Creator, response: Response
) -> CreatedTask:
    conveyor = deps.conveyor
    target = await conveyor.creation_target(name)
    created = await conveyor.create_task(
        target.pipeline,
        body.key,
        body.data,
        start_paused=body.paused or target.start_paused,
        start_pending=body.pending,
    )
    if not created.created:
        response.status_code = 200
    return CreatedTask(workflow_id=created.workflow_id, created=created.created)


@router.post(
    "/pipelines/{name}/tasks/batch",
    response_model=CreatedTasks,
    summary="Create 1 to 5,000 tasks, with one result per row",
)
async def create_tasks(name: PipelineName, body: NewTasks, deps: Deps, _: Creator) -> CreatedTasks:
    results = await deps.conveyor.create_tasks(
        name, body.rows, key_column=body.key_column, start_paused=body.paused
    )
    rows = [
        RowResultModel(
            index=r.index,
            key=r.key,
            workflow_id=r.workflow_id,
            outcome=r.outcome,
            errors=r.errors,
            message=r.message,
        )
        for r in results
    ]
    counts = {o: sum(1 for r in rows if r.outcome == o) for o in RowOutcome}
    return CreatedTasks(
        pipeline=name,
        created=counts[RowOutcome.CREATED],
        exists=counts[RowOutcome.EXISTS],
        invalid=counts[RowOutcome.INVALID],
        error=counts[RowOutcome.ERROR],
        results=rows,
    )


# --------------------------------------------------------------------------- Data Explorer


@router.get(
    "/pipelines/{name}/counts",
    response_model=HeaderCounts,
    summary="Task counts by state (the Data Explorer's header)",
)
async def counts(name: PipelineName, deps: Deps, _: Reader) -> HeaderCounts:
    return await in_store(deps, lambda s: header_counts(s, name))


@router.get(
    "/pipelines/{name}/tasks",
    response_model=Page,
    summary="A keyset page of tasks (Task Metadata, or Task Data with data=true)",
)
async def list_tasks(
    name: PipelineName,
    deps: Deps,
    _: Reader,
    status: Annotated[list[TaskStatus] | None, Query(description="repeatable")] = None,
    node: Annotated[
        str | None, Query(max_length=200, description="tasks waiting on this node")
    ] = None,
    node_status: NodeStatus | None = None,
    assignee: Annotated[str | None, Query(max_length=200)] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    text: Annotated[
        str | None, Query(max_length=1000, description="case-insensitive substring of any value")
    ] = None,
    created_from: Annotated[Timestamp | None, Query(description="inclusive")] = None,
    created_to: Annotated[Timestamp | None, Query(description="exclusive")] = None,
    sort: Annotated[
        str,
        Query(
            max_length=50,
            description=f"one of {', '.join(f.value for f in SortField)}; '-' for descending",
        ),
    ] = "created_at",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    after: Annotated[
        str | None, Query(max_length=4000, description="the previous page's next_cursor")
    ] = None,
    data: Annotated[bool, Query(description="include field values (Task Data)")] = False,
) -> Page:
    try:
        order = Sort.parse(sort)
    except ValueError as err:
        raise invalid(str(err)) from None
    if after is not None:
        # decode_cursor checks where a cursor comes from, not the type of the value inside;
        # a forged one (a list where a text belongs) must not reach the database.
        value, _after_id = decode_cursor(after, order)
        if value is not None and not isinstance(value, str | datetime):
            raise invalid("the cursor is not one the explorer made", "invalid_cursor")
    criteria = TaskFilter(
        status=status or [],
        node=node,
        node_status=node_status,
        assignee=assignee,
        tag=tag,
        text=text,
        created_from=created_from,
        created_to=created_to,
    )
    return await in_store(
        deps,
        lambda s: page(s, name, criteria, order, limit=limit, after=after, with_data=data),
    )


# --------------------------------------------------------------------------- admin operations


# pause, resume, activate, tag, untag, edit, release-claim, escalate, deescalate, resolve, retry:
# from the one table of command routes.

add_command_routes(router, ADMIN_ROUTES, Admin, tags=["admin"])


@router.get(
    "/tasks/{workflow_id:path}/state",
    response_model=TaskView,
    summary="One task's live state from its workflow's state query (admins: it holds tokens)",
)
async def live_state(workflow_id: WorkflowId, deps: Deps, _: Admin) -> TaskView:
    """What the workflow holds this moment, where ``GET /tasks/{id}`` shows the store's
    projection of it (the same within a moment, unless the projection is behind)."""
    return await deps.conveyor.task(workflow_id).state()


# Registered last: its path would also match the operations' paths (the id may contain '/').
@router.get(
    "/tasks/{workflow_id:path}",
    response_model=TaskDetail,
    summary="One task: its Nodes and Timeline (from the store)",
)
async def detail(workflow_id: WorkflowId, deps: Deps, _: Reader) -> TaskDetail:
    return await in_store(deps, lambda s: task_detail(s, workflow_id))
