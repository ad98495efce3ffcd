"""Activities of the PipelineWorkflow: the store's pipeline rows and the pause/resume fan-out.

The fan-out reads the pipeline's tasks from the store (keyset pages, one short transaction
each) and signals each task's workflow with bounded concurrency. Signals carry a request id per
pause epoch and round, so a retried round repeats nothing the task already did, while a later
re-check round pauses a task an operator resumed in the meantime.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from conveyor.starting import Starter, start_input
from store.db import transaction
from store.lazy import hold_untouched
from store.repositories import record_pipeline
from store.tasks import SweepAction, count_not_paused, status_counts, sweep_page
from workflows.engine import PIPELINE_ACTOR
from workflows.messages import (
    Pause,
    Resume,
)
from workflows.options import (
    COMPLETION_CHECK_ACTIVITY,
    PIPELINE_PROJECT_ACTIVITY,
    SWEEP_ACTIVITY,
)
from workflows.pipeline_messages import (
    CompletionCheck,
    CompletionStatus,
    PipelineProjection,
    SweepRequest,
    SweepResult,
)

PAGE_SIZE = 1000
SETTLE_SECONDS = 20.0
"""How long a pause round waits for the store to show its tasks Paused before reporting."""


class PipelineActivities:
    """Register with ``Worker(..., activities=[a.project_pipeline, a.sweep_tasks, ...])``."""

    def __init__(self, sessions: sessionmaker[Session], client: Client | None = None) -> None:
        self._sessions = sessions
        self._client = client

    def _temporal(self) -> Client:
        return self._client or activity.client()

    @activity.defn(name=PIPELINE_PROJECT_ACTIVITY)
    async def project_pipeline(self, projection: PipelineProjection) -> int:
        """Record the pipeline's status, current version and new definitions in the store."""
        return await asyncio.to_thread(project_pipeline, self._sessions, projection)

    @activity.defn(name=COMPLETION_CHECK_ACTIVITY)
    async def completion_status(self, check: CompletionCheck) -> CompletionStatus:
        """Task counts by status of a pipeline, from the store."""
        return await asyncio.to_thread(completion_status, self._sessions, check.pipeline)

    @activity.defn(name=SWEEP_ACTIVITY)
    async def sweep_tasks(self, request: SweepRequest) -> SweepResult:
        """One round of a pause or resume fan-out over the pipeline's tasks in the store.

        pause: signal every task neither Paused nor Finished, then wait (up to
        :data:`SETTLE_SECONDS`) for the store to show them Paused, and report how many still are
        not. resume: signal every Paused task to resume if the pipeline paused it.
        """
        client = self._temporal()
        gate = asyncio.Semaphore(request.concurrency)

        command: Pause | Resume
        if request.action == "pause":
            command = Pause(
                request_id=f"pipeline-pause:{request.epoch}:{request.round}",
                by=PIPELINE_ACTOR,
                reason=f"pipeline {request.pipeline} is paused",
            )
        else:
            command = Resume(
                request_id=f"pipeline-resume:{request.epoch}",
                by=PIPELINE_ACTOR,
                only_paused_by=PIPELINE_ACTOR,
            )

        async def signal(workflow_id: str) -> int:
            handle = client.get_workflow_handle(workflow_id)
            try:
                async with gate:
                    await handle.signal(request.action, command)
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                # No workflow: finished and closed since the store saw it (nothing to pause),
                # or created lazily and its start not yet through (it starts with the signal).
                input = await asyncio.to_thread(start_input, self._sessions, workflow_id)
                if input is None:
                    return 0
                starter = Starter(client, activity.info().task_queue)
                await starter.start_untouched(
                    input, workflow_id, signal=request.action, signal_arg=command
                )
            return 1

        # Tasks without a workflow (lazy start) are paused and resumed in their rows, at once.
        signalled = await asyncio.to_thread(
            _hold_untouched, self._sessions, request.pipeline, request.action
        )
        after: str | None = None
        while True:
            ids = await asyncio.to_thread(
                _page, self._sessions, request.pipeline, request.action, after
            )
            if not ids:
                break
            signalled += sum(await asyncio.gather(*(signal(i) for i in ids)))
            activity.heartbeat(signalled)
            after = ids[-1]
        if request.action == "resume":
            return SweepResult(signalled=signalled, remaining=0)
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            remaining = await asyncio.to_thread(_count_running, self._sessions, request.pipeline)
            if remaining == 0 or time.monotonic() > deadline:
                return SweepResult(signalled=signalled, remaining=remaining)
            activity.heartbeat(signalled)
            await asyncio.sleep(0.25)


def project_pipeline(sessions: sessionmaker[Session], projection: PipelineProjection) -> int:
    with transaction(sessions) as session:
        return record_pipeline(session, projection)


def completion_status(sessions: sessionmaker[Session], pipeline: str) -> CompletionStatus:
    with transaction(sessions) as session:
        counts = status_counts(session, pipeline)
    return CompletionStatus(counts=counts, total=sum(counts.values()))


def _page(
    sessions: sessionmaker[Session], pipeline: str, action: SweepAction, after: str | None
) -> Sequence[str]:
    with transaction(sessions) as session:
        return sweep_page(session, pipeline, action, after, PAGE_SIZE)


def _hold_untouched(sessions: sessionmaker[Session], pipeline: str, action: SweepAction) -> int:
    with transaction(sessions) as session:
        return hold_untouched(session, pipeline, action)


def _count_running(sessions: sessionmaker[Session], pipeline: str) -> int:
    with transaction(sessions) as session:
        return count_not_paused(session, pipeline)
