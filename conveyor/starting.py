"""Starting task workflows and reading where a pipeline's new tasks go, over a Temporal client.

The one place a task's workflow is started: the client library
(:meth:`conveyor.client.ConveyorClient.create_task`), the chain activities and the seeding
activities all start tasks through :class:`Starter`. Workflows are started and queried by name
(:data:`workflows.options.TASK_WORKFLOW`, :data:`~workflows.options.PIPELINE_WORKFLOW`), so this
module sits below the activities and imports no workflow shell.

Lazy start lives here too: :meth:`Starter.create_untouched` writes lazily created tasks' rows
(:func:`untouched_rows_of`), :meth:`Starter.start_operation` / :meth:`Starter.start_untouched`
start their workflows with the first command (update-, signal-with-start), and
:func:`background_starts` starts the queued ones (a model call first) next to a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from conveyor.creation import Created, collection_paused
from conveyor.errors import InvalidSeedData, PipelineNotAccepting, UnknownPipeline
from store.db import transaction
from store.lazy import (
    QUEUED,
    UNTOUCHED,
    UntouchedRows,
    begin_start,
    insert_untouched,
    requeue,
    starting_page,
    take_queued,
    untouched_rows,
)
from store.projection import search_text_of
from workflows import engine
from workflows.graph import Pipeline, StartMode
from workflows.messages import (
    EventKind,
    ProjectionBatch,
    TaskInput,
    TaskStatus,
    TaskView,
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

log = logging.getLogger(__name__)

__all__ = [
    "CreationTarget",
    "Starter",
    "UntouchedRow",
    "background_starts",
    "engine_untouched_rows",
    "restart_starting",
    "start_input",
    "start_queued",
    "untouched_rows_of",
]


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

    def _start_options(self, input: TaskInput, workflow_id: str) -> dict[str, Any]:
        """How a lazily created task's workflow starts: like :meth:`create_task`, but an
        existing workflow is used as it is (a concurrent first command started it) and a closed
        one is never started again (a finished task stays finished)."""
        return {
            "id": workflow_id,
            "task_queue": self.task_queue,
            "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
            "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
            "search_attributes": TypedSearchAttributes(
                [
                    SearchAttributePair(SA_PIPELINE, input.pipeline.name),
                    SearchAttributePair(SA_STATUS, TaskStatus.PENDING.value),
                ]
            ),
            "static_summary": f"{input.pipeline.name} · {input.task_key}"[:200],
        }

    def start_operation(
        self, input: TaskInput, workflow_id: str
    ) -> WithStartWorkflowOperation[Any, Any]:
        """The start half of an update-with-start for a lazily created task (used once)."""
        return WithStartWorkflowOperation(
            TASK_WORKFLOW, input, **self._start_options(input, workflow_id)
        )

    async def start_untouched(
        self,
        input: TaskInput,
        workflow_id: str,
        *,
        signal: str | None = None,
        signal_arg: Any = None,
    ) -> None:
        """Start a lazily created task's workflow unless it exists; with ``signal``, send it
        that signal too (signal-with-start)."""
        options = self._start_options(input, workflow_id)
        if signal is not None:
            options |= {"start_signal": signal, "start_signal_args": [signal_arg]}
        # Already closed (Finished): nothing to start, and nothing a signal could change.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self.client.start_workflow(TASK_WORKFLOW, input, **options)

    async def create_untouched(
        self,
        sessions: sessionmaker[Session],
        pipeline: Pipeline,
        rows: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        start_paused: bool = False,
    ) -> list[Created | None]:
        """Create tasks lazily: their rows now, their workflows on first use (lazy start).

        ``rows`` are (key, seed data) pairs already checked against the pipeline. A task that
        needs its workflow at once (a model call first) is queued for the background starter
        (:func:`background_starts`); one that would not be In Progress gets None (start it
        with :meth:`create_task`), as does every row of a pipeline with
        ``task_start: eager``.
        """
        if pipeline.task_start != StartMode.LAZY:
            return [None] * len(rows)
        with collection_paused():
            prepared = untouched_rows_of(pipeline, rows, datetime.now(UTC))
        wanted = [r for r in prepared if r is not None]

        def write() -> set[str]:
            with collection_paused(), transaction(sessions) as session:
                return insert_untouched(session, pipeline, wanted, paused=start_paused)

        written = await asyncio.to_thread(write)
        return [
            None if r is None else Created(r.workflow_id, created=r.workflow_id in written)
            for r in prepared
        ]

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


@dataclass(frozen=True)
class UntouchedRow:
    """Where a lazily created task's start input comes from: the store."""

    sessions: sessionmaker[Session]

    async def start_input(self, workflow_id: str, *, mark: bool = True) -> TaskInput | None:
        """The task's start input if it was created lazily and is not Finished, else None;
        ``mark``: the caller starts the workflow now (:func:`store.lazy.begin_start`)."""
        return await asyncio.to_thread(start_input, self.sessions, workflow_id, mark=mark)

    async def view(self, workflow_id: str) -> TaskView | None:
        """The view of an untouched task, worked out from its row as its workflow would start
        (nothing is started); None when the task is not one."""
        input = await self.start_input(workflow_id, mark=False)
        if input is None or input.created_at is None:
            return None
        outcome = engine.start_task(
            input.pipeline,
            input.task_key,
            input.data,
            engine.Context(now=input.created_at),
            start_paused=input.start_paused,
        )
        return engine.task_view(outcome.state, workflow_id)


def start_input(
    sessions: sessionmaker[Session], workflow_id: str, *, mark: bool = True
) -> TaskInput | None:
    """:func:`store.lazy.begin_start` in a transaction of its own."""
    with transaction(sessions) as session:
        return begin_start(session, workflow_id, mark=mark)


def untouched_rows_of(
    pipeline: Pipeline,
    rows: Sequence[tuple[str, Mapping[str, Any]]],
    now: datetime,
    *,
    shared: list[int] | None = None,
) -> list[UntouchedRows | None]:
    """The store rows of tasks created lazily at ``now``: per (key, seed data), the snapshot
    :func:`workflows.engine.start_task` gives, or None when the task needs its workflow at once
    (or its data is refused: the eager start reports why).

    The engine runs for each row unless the pipeline's start cannot depend on the data (no
    gate, no prefilled field): then the rows of the first task, with its key and data swapped
    for each row's, are every other row's — once checked against the engine's own answer for
    the second row (anything else, and the engine runs for every row). ``shared``, if given,
    gets the indexes of the rows made that way.
    """
    template: tuple[str, UntouchedRows] | None = None
    trusted = False
    may_share = engine.start_ignores_data(pipeline)
    out: list[UntouchedRows | None] = []
    for index, (key, data) in enumerate(rows):
        workflow_id = task_workflow_id(pipeline.name, key)
        if trusted and template is not None:
            out.append(_swapped(template, key, dict(data), workflow_id))
            if shared is not None:
                shared.append(index)
            continue
        made = engine_untouched_rows(pipeline, key, dict(data), workflow_id, now)
        out.append(made)
        if made is None or not may_share:
            continue
        if template is None:
            template = (key, made)
        else:
            trusted = _swapped(template, key, dict(data), workflow_id) == made
            may_share = trusted
    return out


def engine_untouched_rows(
    pipeline: Pipeline, key: str, data: dict[str, Any], workflow_id: str, now: datetime
) -> UntouchedRows | None:
    """One task's rows as the engine starts it (see :func:`untouched_rows_of`)."""
    try:
        outcome = engine.start_task(pipeline, key, data, engine.Context(now=now))
    except engine.Rejected:
        return None
    if engine.waits_only_for_people(pipeline, outcome.state):
        start = UNTOUCHED
    elif outcome.state.status == TaskStatus.IN_PROGRESS:
        start = QUEUED  # a model call or a timer first: the background starter starts it
    else:
        return None
    return untouched_rows(
        ProjectionBatch(
            view=engine.task_view(outcome.state, workflow_id, timeline=False),
            events=outcome.events,
            pipeline=None,
            blocked=engine.self_review_blocked(pipeline, outcome.state.nodes),
            people=engine.consensus_people(pipeline, outcome.state.nodes),
        ),
        start=start,
    )


QUEUED_BATCH = 100
"""Queued tasks the background starter takes at once."""
QUEUED_CONCURRENCY = 20
"""Starts the background starter has in flight at once."""
QUEUED_POLL_SECONDS = 1.0
"""How often an idle background starter looks for queued tasks."""
STARTING_RECHECK_SECONDS = 60.0
"""How often the background starter sends again the starts of tasks still marked starting."""


async def start_queued(
    starter: Starter,
    sessions: sessionmaker[Session],
    *,
    batch: int = QUEUED_BATCH,
    concurrency: int = QUEUED_CONCURRENCY,
) -> int:
    """One round of the background starter: start the workflows of up to ``batch`` queued
    tasks (created lazily, but needing their workflow at once), ``concurrency`` at a time, at
    the pace Temporal answers. A start that fails goes back to the queue.

    Returns:
        How many were started.
    """

    def take() -> list[tuple[str, TaskInput]]:
        with transaction(sessions) as session:
            return take_queued(session, batch)

    taken = await asyncio.to_thread(take)
    gate = asyncio.Semaphore(concurrency)
    done: set[str] = set()
    failed: list[str] = []

    async def start(workflow_id: str, input: TaskInput) -> None:
        async with gate:
            try:
                await starter.start_untouched(input, workflow_id)
                done.add(workflow_id)
            except Exception as err:  # retried in a later round
                log.warning("background start of %s failed, will retry: %s", workflow_id, err)
                failed.append(workflow_id)

    def give_back(workflow_ids: list[str]) -> None:
        with transaction(sessions) as session:
            requeue(session, workflow_ids)

    try:
        await asyncio.gather(*(start(w, i) for w, i in taken))
    except asyncio.CancelledError:
        # Stopped mid-round: what was not started goes back to the queue.
        await asyncio.shield(asyncio.to_thread(give_back, [w for w, _ in taken if w not in done]))
        raise
    if failed:
        await asyncio.to_thread(give_back, failed)
    return len(done)


async def restart_starting(starter: Starter, sessions: sessionmaker[Session]) -> int:
    """Send the start of every task marked ``starting`` again. A start whose sender stopped
    before Temporal heard it leaves such a mark and no workflow; for a task nobody sends a
    command to (a model call first), this is what starts it. Starting an existing workflow is
    a no-op (its id is taken), so sending one again is harmless.

    Returns:
        How many starts were sent.
    """
    sent = 0
    after: str | None = None
    while True:

        def page(after: str | None = after) -> tuple[str | None, list[tuple[str, TaskInput]]]:
            with transaction(sessions) as session:
                return starting_page(session, after, QUEUED_BATCH)

        last, found = await asyncio.to_thread(page)
        if last is None:
            return sent
        for workflow_id, input in found:
            await starter.start_untouched(input, workflow_id)
            sent += 1
        after = last


@contextlib.asynccontextmanager
async def background_starts(
    starter: Starter,
    sessions: sessionmaker[Session],
    *,
    poll_seconds: float = QUEUED_POLL_SECONDS,
    recheck_seconds: float = STARTING_RECHECK_SECONDS,
) -> AsyncIterator[None]:
    """Run the background starter while inside: queued tasks' workflows are started as they
    come (:func:`start_queued` round after round; a pause of ``poll_seconds`` when there are
    none), and every ``recheck_seconds`` the starts of tasks still marked ``starting`` are sent
    again (:func:`restart_starting`). ``worker.py`` and ``starter.py dev`` run one next to
    their worker; several may run at once (each queued task is taken by one)."""

    async def loop() -> None:
        loop_time = asyncio.get_running_loop().time
        recheck_at = loop_time() + recheck_seconds
        while True:
            try:
                started = await start_queued(starter, sessions)
                if loop_time() >= recheck_at:
                    recheck_at = loop_time() + recheck_seconds
                    await restart_starting(starter, sessions)
            except Exception as err:  # the store or Temporal away: try again shortly
                log.warning("background starter: %s", err)
                started = 0
            if not started:
                await asyncio.sleep(poll_seconds)

    running = asyncio.create_task(loop())
    try:
        yield
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


def _swapped(
    template: tuple[str, UntouchedRows], key: str, data: dict[str, Any], workflow_id: str
) -> UntouchedRows:
    """``template``'s rows as another task's: its key, seed data and workflow id."""
    old_key, rows = template
    task = dict(rows.task)
    task.update(
        workflow_id=workflow_id,
        task_key=key,
        data=data,
        search_text=search_text_of(key, task["tags"], data, (n["values"] for n in rows.nodes)),
    )
    events = []
    for event in rows.events:
        event = dict(event, workflow_id=workflow_id)
        if event["kind"] == EventKind.CREATED:
            event["message"] = event["message"].replace(f"'{old_key}'", f"'{key}'", 1)
            event["data"] = dict(event["data"], data=data)
        events.append(event)
    nodes = [dict(node, workflow_id=workflow_id) for node in rows.nodes]
    return UntouchedRows(task=task, nodes=nodes, events=events)
