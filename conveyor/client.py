"""The typed client library: create tasks and send commands without string names.

Scripts, the CLI (``starter.py``) and later the HTTP API all go through this module::

    conveyor = ConveyorClient(await settings.connect(), task_queue="conveyor")
    created = await conveyor.create_task(pipeline, "doc-1", {"text": "..."})
    task = conveyor.task(created.workflow_id)
    claim = await task.send(Claim(request_id=new_request_id(), contributor="ana"))
    await task.send(Submit(..., token=claim.token, values={"label": "positive"}))
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from workflows import engine
from workflows.graph import Pipeline
from workflows.messages import (
    Activate,
    Claim,
    Command,
    CommandResult,
    Deescalate,
    EditSubmission,
    Escalate,
    Pause,
    Regenerate,
    Release,
    ReleaseClaim,
    ResolveQuarantine,
    Resume,
    RetryFailed,
    Review,
    SaveDraft,
    Submit,
    Tag,
    TaskInput,
    TaskStatus,
    TaskView,
    Untag,
)
from workflows.options import DEFAULT_TASK_QUEUE, SA_PIPELINE, SA_STATUS, task_workflow_id
from workflows.task import REJECTED, TaskWorkflow


def new_request_id() -> str:
    """A fresh idempotency key. Reuse the same one to retry a command safely."""
    return uuid.uuid4().hex


class CommandRejected(Exception):
    """The task refused a command; ``result`` says why (and per field, for forms)."""

    def __init__(self, result: CommandResult):
        self.result = result
        detail = "".join(f"\n  {k}: {v}" for k, v in result.field_errors.items())
        super().__init__(f"{result.command} rejected: {result.message}{detail}")


class InvalidSeedData(ValueError):
    """Seed data that does not fit the pipeline's predefined fields."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        lines = "".join(f"\n  {k}: {v}" for k, v in self.errors.items())
        super().__init__(f"seed data does not fit the pipeline:{lines}")


class NoWorkerResponded(TimeoutError):
    """An update got no answer in time: usually no worker polls the task queue."""


_UPDATES: dict[type, Any] = {
    Claim: TaskWorkflow.claim,
    Release: TaskWorkflow.release,
    SaveDraft: TaskWorkflow.save_draft,
    Submit: TaskWorkflow.submit,
    Review: TaskWorkflow.review,
    Pause: TaskWorkflow.pause,
    Resume: TaskWorkflow.resume,
    Activate: TaskWorkflow.activate,
    EditSubmission: TaskWorkflow.edit_submission,
    ReleaseClaim: TaskWorkflow.release_claim,
    Escalate: TaskWorkflow.escalate,
    Deescalate: TaskWorkflow.deescalate,
    ResolveQuarantine: TaskWorkflow.resolve_quarantine,
    Tag: TaskWorkflow.tag,
    Untag: TaskWorkflow.untag,
    RetryFailed: TaskWorkflow.retry,
    Regenerate: TaskWorkflow.regenerate,
}

_SIGNALS: dict[type, Any] = {
    Claim: TaskWorkflow.claim_signal,
    Release: TaskWorkflow.release_signal,
    SaveDraft: TaskWorkflow.save_draft_signal,
    Submit: TaskWorkflow.submit_signal,
    Review: TaskWorkflow.review_signal,
    Pause: TaskWorkflow.pause_signal,
    Resume: TaskWorkflow.resume_signal,
    Activate: TaskWorkflow.activate_signal,
    EditSubmission: TaskWorkflow.edit_submission_signal,
    ReleaseClaim: TaskWorkflow.release_claim_signal,
    Escalate: TaskWorkflow.escalate_signal,
    Deescalate: TaskWorkflow.deescalate_signal,
    ResolveQuarantine: TaskWorkflow.resolve_quarantine_signal,
    Tag: TaskWorkflow.tag_signal,
    Untag: TaskWorkflow.untag_signal,
    RetryFailed: TaskWorkflow.retry_signal,
    Regenerate: TaskWorkflow.regenerate_signal,
}


@dataclass(frozen=True)
class Created:
    workflow_id: str
    created: bool
    """False when the task already existed (the same pipeline and key)."""


class TaskClient:
    """Commands and queries for one task, by workflow id."""

    def __init__(self, handle: WorkflowHandle[Any, Any], update_timeout: float):
        self.handle = handle
        self.update_timeout = update_timeout

    @property
    def workflow_id(self) -> str:
        return self.handle.id

    async def state(self) -> TaskView:
        """The task view from the workflow's ``state`` query."""
        return await self.handle.query(TaskWorkflow.state)

    async def send(self, command: Command) -> CommandResult:
        """Send a command as an update and return its answer.

        Raises:
            CommandRejected: the task refused it (the reason is in ``.result``).
            NoWorkerResponded: no answer within the update timeout.
        """
        update = _UPDATES.get(type(command))
        if update is None:
            raise TypeError(f"{type(command).__name__} is not a command callers may send")
        try:
            async with asyncio.timeout(self.update_timeout):
                for attempt in range(_RACE_RETRIES):
                    try:
                        return await self.handle.execute_update(
                            update, command, id=command.request_id
                        )
                    except RPCError as err:
                        # The update met the task while it was continuing as new; the new
                        # run takes it, and request_id keeps a repeat from acting twice.
                        if attempt + 1 == _RACE_RETRIES or not _is_continue_as_new_race(err):
                            raise
                        await asyncio.sleep(0.05 * 2**attempt)
                raise AssertionError("unreachable")
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == REJECTED and cause.details:
                raise CommandRejected(CommandResult.model_validate(cause.details[0])) from None
            raise
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
            raise NoWorkerResponded(
                f"no answer from task {self.workflow_id} within {self.update_timeout:.0f}s; "
                "is a worker running on this task queue? (start one with `python worker.py`)"
            ) from err

    async def signal(self, command: Command) -> None:
        """Send a command as a fire-and-forget signal (rejections land in the timeline)."""
        signal = _SIGNALS.get(type(command))
        if signal is None:
            raise TypeError(f"{type(command).__name__} is not a command callers may send")
        await self.handle.signal(signal, command)

    async def result(self) -> TaskView:
        """Wait until the task's workflow completes (the task is Finished)."""
        return await self.handle.result()


class ConveyorClient:
    """Entry point of the client library."""

    def __init__(
        self,
        client: Client,
        task_queue: str = DEFAULT_TASK_QUEUE,
        *,
        update_timeout: float = 30.0,
    ):
        self.client = client
        self.task_queue = task_queue
        self.update_timeout = update_timeout

    def task(self, workflow_id: str) -> TaskClient:
        return TaskClient(
            self.client.get_workflow_handle_for(TaskWorkflow.run, workflow_id), self.update_timeout
        )

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
                TaskWorkflow.run,
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

    async def list_tasks(
        self, *, pipeline: str | None = None, status: TaskStatus | None = None
    ) -> AsyncIterator[tuple[str, str | None]]:
        """Workflow ids (and status) from Temporal visibility, newest first."""
        clauses = ["WorkflowType = 'TaskWorkflow'"]
        if pipeline:
            clauses.append(f"ConveyorPipeline = '{_quote(pipeline)}'")
        if status:
            clauses.append(f"ConveyorStatus = '{status.value}'")
        async for wf in self.client.list_workflows(" AND ".join(clauses)):
            yield wf.id, wf.typed_search_attributes.get(SA_STATUS)


_RACE_RETRIES = 6


def _is_continue_as_new_race(err: RPCError) -> bool:
    return err.status == RPCStatusCode.FAILED_PRECONDITION and (
        "WorkflowNotReady" in repr(err.grpc_status.details) or "workflow task" in err.message
    )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
