"""Starting task workflows and reading where a pipeline's new tasks go, over a Temporal client.

The one place a task's workflow is started: the client library
(:meth:`conveyor.client.ConveyorClient.create_task`), the chain activities and the seeding
activities all start tasks through :class:`Starter`. Workflows are started and queried by name
(:data:`workflows.options.TASK_WORKFLOW`, :data:`~workflows.options.PIPELINE_WORKFLOW`), so this
module sits below the activities and imports no workflow shell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from conveyor.creation import Created
from conveyor.errors import InvalidSeedData, PipelineNotAccepting, UnknownPipeline
from workflows import engine
from workflows.graph import Pipeline
from workflows.messages import (
    TaskInput,
    TaskStatus,
)
from workflows.options import (
    PIPELINE_DESCRIBE_QUERY,
    SA_PIPELINE,
    SA_STATUS,
    TASK_WORKFLOW,
    pipeline_workflow_id,
    task_workflow_id,
)
from workflows.pipeline_messages import (
    PipelineStatus,
    PipelineView,
)

__all__ = ["CreationTarget", "Starter"]


@dataclass(frozen=True)
class CreationTarget:
    """Where new tasks of a pipeline go: its current definition, and whether they start Paused."""

    pipeline: Pipeline
    start_paused: bool
    status: PipelineStatus


class Starter:
    """Starts tasks' workflows on ``task_queue`` and reads pipelines' creation targets."""

    def __init__(self, client: Client, task_queue: str):
        self.client = client
        self.task_queue = task_queue

    async def create_task(
        self,
        pipeline: Pipeline,
        key: str,
        data: Mapping[str, Any] | None = None,
        *,
        start_paused: bool = False,
        start_pending: bool = False,
    ) -> Created:
        """Start a task's workflow; creating the same pipeline + key again is a no-op.

        Raises:
            InvalidSeedData: ``data`` does not fit the pipeline's predefined fields.
        """
        data = dict(data or {})
        errors = engine.check_seed_data(pipeline, data)
        if errors:
            raise InvalidSeedData(errors)
        workflow_id = task_workflow_id(pipeline.name, key)
        try:
            await self.client.start_workflow(
                TASK_WORKFLOW,
                TaskInput(
                    pipeline=pipeline,
                    task_key=key,
                    data=data,
                    start_paused=start_paused,
                    start_pending=start_pending,
                ),
                id=workflow_id,
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SA_PIPELINE, pipeline.name),
                        SearchAttributePair(SA_STATUS, TaskStatus.PENDING.value),
                    ]
                ),
                static_summary=f"{pipeline.name} · {key}"[:200],
            )
        except WorkflowAlreadyStartedError:
            return Created(workflow_id, created=False)
        return Created(workflow_id, created=True)

    async def describe_pipeline(self, name: str) -> PipelineView:
        """The pipeline's status, versions, fan-out progress and recent events.

        Raises:
            UnknownPipeline: it was never applied.
        """
        handle = self.client.get_workflow_handle(pipeline_workflow_id(name))
        try:
            view: PipelineView = await handle.query(
                PIPELINE_DESCRIBE_QUERY, result_type=PipelineView
            )
            return view
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise UnknownPipeline(
                    f"no pipeline named {name!r}; apply its definition first "
                    "(python starter.py pipeline apply FILE)"
                ) from None
            raise

    async def creation_target(self, name: str) -> CreationTarget:
        """The definition new tasks of ``name`` start on, and whether they start Paused.

        Raises:
            UnknownPipeline: it was never applied.
            PipelineNotAccepting: it is Draft, Completed or Archived.
        """
        view = await self.describe_pipeline(name)
        if not view.accepts_tasks or view.current is None:
            hint = {
                PipelineStatus.DRAFT: "activate it first (python starter.py pipeline activate "
                f"{name})",
                PipelineStatus.COMPLETED: "it is Completed; reopen it with pipeline activate",
                PipelineStatus.ARCHIVED: "it is Archived",
            }.get(view.status, "")
            raise PipelineNotAccepting(
                f"pipeline {name!r} is {view.status} and takes no new tasks; {hint}"
            )
        return CreationTarget(
            pipeline=view.current,
            start_paused=view.status == PipelineStatus.PAUSED,
            status=view.status,
        )
