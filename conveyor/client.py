"""The typed client library: create tasks and send commands without string names.

Scripts, the CLI (``starter.py``) and later the HTTP API all go through this module::

    async with await ConveyorClient.connect() as conveyor:  # CONVEYOR_* settings
        created = await conveyor.create_task(pipeline, "doc-1", {"text": "..."})
        task = conveyor.task(created.workflow_id)
        claim = await task.send(Claim(request_id=new_request_id(), contributor="ana"))
        await task.send(Submit(..., token=claim.token, values={"label": "positive"}))
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from conveyor.creation import Created as Created
from conveyor.creation import create_tasks

# The library's errors live in conveyor.errors; they are importable from here as well.
from conveyor.errors import ClientClosed as ClientClosed
from conveyor.errors import CommandRejected as CommandRejected
from conveyor.errors import Conflict as Conflict
from conveyor.errors import ConveyorError as ConveyorError
from conveyor.errors import Invalid as Invalid
from conveyor.errors import InvalidSeedData as InvalidSeedData
from conveyor.errors import NotFound as NotFound
from conveyor.errors import NoWorkerResponded as NoWorkerResponded
from conveyor.errors import PipelineCommandRejected as PipelineCommandRejected
from conveyor.errors import PipelineNotAccepting as PipelineNotAccepting
from conveyor.errors import Unavailable as Unavailable
from conveyor.errors import UnknownPipeline as UnknownPipeline
from conveyor.settings import Settings
from conveyor.starting import CreationTarget as CreationTarget
from conveyor.starting import Starter, UntouchedRow
from workflows.chains import unknown_target_fields
from workflows.engine import actor_of
from workflows.graph import Pipeline
from workflows.graph_checks import chain_problems, shortest_cycle
from workflows.messages import (
    TASK_COMMANDS,
    Command,
    CommandResult,
    TaskInput,
    TaskStatus,
    TaskView,
)
from workflows.options import (
    DEFAULT_TASK_QUEUE,
    SA_STATUS,
    pipeline_workflow_id,
    task_workflow_id,
)
from workflows.pipeline import REJECTED as PIPELINE_REJECTED
from workflows.pipeline import PipelineWorkflow
from workflows.pipeline_messages import (
    ApplyVersion,
    ChangeStatus,
    PipelineCommandResult,
    PipelineInput,
    PipelineStatus,
    PipelineView,
)
from workflows.task import REJECTED, TaskWorkflow


def new_request_id() -> str:
    """A fresh idempotency key. Reuse the same one to retry a command safely."""
    return uuid.uuid4().hex


def _update_id(command: Command) -> str:
    """The Temporal update id of ``command``: its request_id, per sender.

    The server answers a repeated update id with the first update's result without asking the
    task, so the id names the sender too: a request_id reused by someone else reaches the task,
    which refuses it, instead of being handed the first sender's answer.
    """
    return f"{actor_of(command)}:{command.request_id}"


def _command_name(command: Command) -> str:
    """The update and signal name of ``command`` (its ``type``), if callers may send it."""
    if TASK_COMMANDS.get(command.type) is not type(command):
        raise TypeError(f"{type(command).__name__} is not a command callers may send")
    return command.type


class TaskClient:
    """Commands and queries for one task, by workflow id."""

    def __init__(
        self,
        handle: WorkflowHandle[Any, Any],
        update_timeout: float,
        *,
        starter: Starter | None = None,
        untouched: UntouchedRow | None = None,
    ):
        self.handle = handle
        self.update_timeout = update_timeout
        self._starter = starter
        self._untouched = untouched

    @property
    def workflow_id(self) -> str:
        return self.handle.id

    async def _start_input(self) -> TaskInput | None:
        """The start input of this task if it was created lazily and has no workflow yet."""
        if self._untouched is None or self._starter is None:
            return None
        return await self._untouched.start_input(self.workflow_id)

    async def state(self, *, timeout: float | None = None) -> TaskView:
        """The task view from the workflow's ``state`` query; for a lazily created task with
        no workflow yet, from its row (which starts nothing). ``timeout``: seconds the query
        may wait for a worker (default: as long as the server lets it)."""
        rpc_timeout = None if timeout is None else timedelta(seconds=timeout)
        try:
            return await self.handle.query(TaskWorkflow.state, rpc_timeout=rpc_timeout)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND or self._untouched is None:
                raise
            view = await self._untouched.view(self.workflow_id)
            if view is None:
                raise
            return view

    async def send(self, command: Command, *, untouched: bool = False) -> CommandResult:
        """Send a command as an update and return its answer.

        A lazily created task's workflow starts with the command (update-with-start): at once
        with ``untouched`` (the store said the task has no workflow yet), else when the task
        answers that it does not exist.

        Raises:
            CommandRejected: the task refused it (the reason is in ``.result``).
            NoWorkerResponded: no answer within the update timeout.
        """
        name = _command_name(command)
        try:
            async with asyncio.timeout(self.update_timeout):
                input = await self._start_input() if untouched else None
                if input is not None:
                    return await self._update_with_start(name, command, input)
                asked_again = False
                for attempt in range(_RACE_RETRIES):
                    try:
                        return await self.handle.execute_update(
                            name, command, id=_update_id(command), result_type=CommandResult
                        )
                    except RPCError as err:
                        if err.status == RPCStatusCode.NOT_FOUND:
                            input = await self._start_input()
                            if input is not None:
                                return await self._update_with_start(name, command, input)
                            # No start input: no such task, or another sender started its
                            # workflow between our update and our read of its row (several
                            # people claiming places on a new consensus item at once). Ask
                            # once more: a workflow that exists by now answers.
                            if asked_again or self._untouched is None:
                                raise
                            asked_again = True
                            continue
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

    async def _update_with_start(
        self, name: str, command: Command, input: TaskInput
    ) -> CommandResult:
        assert self._starter is not None
        start = self._starter.start_operation(input, self.workflow_id)
        try:
            result: CommandResult = await self._starter.client.execute_update_with_start_workflow(
                name,
                command,
                start_workflow_operation=start,
                id=_update_id(command),
                result_type=CommandResult,
            )
        except WorkflowAlreadyStartedError:
            # Its workflow ran and closed already (the store had not caught up): the task
            # answers as any closed task does.
            return await self.handle.execute_update(
                name, command, id=_update_id(command), result_type=CommandResult
            )
        finally:
            # The start's outcome waits in a future of the operation; when the update was
            # cancelled (no answer in time) read it, or asyncio reports it as never retrieved.
            started = start._workflow_handle
            if started.done() and not started.cancelled():
                started.exception()
        return result

    async def signal(self, command: Command) -> None:
        """Send a command as a fire-and-forget signal (rejections land in the timeline); a
        lazily created task's workflow starts with it (signal-with-start)."""
        name = _command_name(command)
        try:
            await self.handle.signal(name, command)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            input = await self._start_input()
            if input is None:
                raise
            assert self._starter is not None
            await self._starter.start_untouched(
                input, self.workflow_id, signal=name, signal_arg=command
            )

    async def result(self) -> TaskView:
        """Wait until the task's workflow completes (the task is Finished)."""
        return await self.handle.result()


class ConveyorClient:
    """Entry point of the client library.

    Scripts connect with :meth:`connect` and close the client when done, best as
    ``async with await ConveyorClient.connect() as conveyor: ...``. Closing shuts the client's
    connection and its own Temporal runtime (the SDK's native thread pool) down while the
    interpreter is still whole; a runtime left for interpreter exit can crash the process
    (SIGSEGV or SIGABRT) after the script's work is done.
    """

    def __init__(
        self,
        client: Client,
        task_queue: str = DEFAULT_TASK_QUEUE,
        *,
        update_timeout: float = 30.0,
        runtime: Runtime | None = None,
    ):
        """Wrap a connected ``client``; ``runtime``: the runtime it was connected with, which
        :meth:`close` shuts down (leave it out when the caller owns both)."""
        self._client: Client | None = client
        self._runtime = runtime
        self.task_queue = task_queue
        self.update_timeout = update_timeout
        self.pipeline_recheck_seconds: float | None = None
        self.untouched: UntouchedRow | None = None
        """The store lazily created tasks are in (:meth:`attach_store`); None: no lazy start."""
        """How often new PipelineWorkflows re-check their tasks while Paused (None: default)."""

    @classmethod
    async def connect(cls, settings: Settings | None = None) -> ConveyorClient:
        """Connect with ``settings`` (default: the ``CONVEYOR_*`` environment) on a Temporal
        runtime of this client's own, which :meth:`close` shuts down."""
        settings = settings or Settings.from_env()
        runtime = Runtime(telemetry=TelemetryConfig())
        client = await settings.connect(runtime=runtime)
        return cls(
            client,
            settings.task_queue,
            update_timeout=settings.update_timeout_seconds,
            runtime=runtime,
        )

    @property
    def client(self) -> Client:
        """The underlying Temporal client (raises :class:`ClientClosed` after :meth:`close`)."""
        if self._client is None:
            raise ClientClosed("this ConveyorClient is closed; connect a new one")
        return self._client

    async def close(self) -> None:
        """Drop the connection and shut this client's runtime down; safe to call twice.

        The SDK has no explicit close: a connection and a runtime end when the last reference
        to them goes, so this drops the client's and collects them now, not at interpreter
        exit. Workers and task handles made from this client must be finished first.
        """
        if self._client is None:
            return
        self._client = None
        self._runtime = None
        # Cycles inside the SDK's objects keep them alive until a collection.
        gc.collect()

    async def __aenter__(self) -> ConveyorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def starter(self) -> Starter:
        """Starts tasks and reads creation targets (:mod:`conveyor.starting`)."""
        return Starter(self.client, self.task_queue)

    def task(self, workflow_id: str) -> TaskClient:
        return TaskClient(
            self.client.get_workflow_handle_for(TaskWorkflow.run, workflow_id),
            self.update_timeout,
            starter=self.starter,
            untouched=self.untouched,
        )

    def attach_store(self, sessions: sessionmaker[Session]) -> None:
        """Use ``sessions``' store for lazy start: :meth:`create_tasks` writes the tasks of
        ``start: lazy`` pipelines there, and commands start those tasks' workflows."""
        self.untouched = UntouchedRow(sessions)

    async def create_untouched(
        self,
        pipeline: Pipeline,
        rows: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        start_paused: bool = False,
    ) -> list[Created | None]:
        """Create tasks lazily (:meth:`conveyor.starting.Starter.create_untouched`); all None
        (start them at once) without a store (:meth:`attach_store`)."""
        if self.untouched is None:
            return [None] * len(rows)
        return await self.starter.create_untouched(
            self.untouched.sessions, pipeline, rows, start_paused=start_paused
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
        """Start a task's workflow; creating the same pipeline + key again is a no-op (also
        when that task was created lazily and has no workflow yet).

        Raises:
            InvalidSeedData: ``data`` does not fit the pipeline's predefined fields.
        """
        if self.untouched is not None:
            workflow_id = task_workflow_id(pipeline.name, key)
            if await self.untouched.start_input(workflow_id, mark=False) is not None:
                return Created(workflow_id, created=False)
        return await self.starter.create_task(
            pipeline, key, data, start_paused=start_paused, start_pending=start_pending
        )

    # ------------------------------------------------------------------ pipelines

    def pipeline_handle(self, name: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle_for(PipelineWorkflow.run, pipeline_workflow_id(name))

    async def apply_pipeline(
        self, pipeline: Pipeline, *, by: str = "operator", request_id: str | None = None
    ) -> PipelineCommandResult:
        """Store ``pipeline`` as a version (a new content hash) and make it the current one.

        The first apply creates the pipeline, in Draft; activate it to create tasks.

        Raises:
            PipelineCommandRejected: the pipeline is Archived, or its chains are refused: a
                chain problem of the definition itself, a loop through other pipelines'
                chains (spelled out, e.g. ``a -> b -> a``), or mapping a field an existing
                target does not have. A target that does not exist yet is fine.
        """
        if pipeline.chains:
            await self._check_chains(pipeline)
        handle = await self._ensure_pipeline(pipeline.name)
        command = ApplyVersion(request_id=request_id or uuid.uuid4().hex, pipeline=pipeline, by=by)
        return await self._pipeline_update(handle, PipelineWorkflow.apply, command)

    async def _check_chains(self, pipeline: Pipeline) -> None:
        """Refuse chains that loop through other pipelines, or that do not fit their target.

        Only pipelines reachable from ``pipeline`` along chains can close a loop through it, so
        those are the ones read (their current definitions).
        """
        problems = [str(p) for p in chain_problems(pipeline)]
        edges: dict[str, list[str]] = {pipeline.name: [c.to for c in pipeline.chains]}
        definitions: dict[str, Pipeline] = {}
        pending = list(dict.fromkeys(edges[pipeline.name]))
        while pending:
            name = pending.pop(0)
            if name in edges:
                continue
            try:
                view = await self.describe_pipeline(name)
            except UnknownPipeline:
                edges[name] = []  # not applied yet: it may be later
                continue
            edges[name] = [c.to for c in view.current.chains] if view.current else []
            if view.current is not None:
                definitions[name] = view.current
            pending.extend(edges[name])
        loop = _chain_loop(pipeline.name, edges)
        if loop is not None:
            problems.append(
                f"chains would loop: {' -> '.join(loop)}; a task would keep creating tasks. "
                f"Remove the chain to '{loop[1]}' here, or the chain to '{pipeline.name}' "
                f"from pipeline '{loop[-2]}'"
            )
        for index, chain in enumerate(pipeline.chains, start=1):
            target = definitions.get(chain.to)
            if target is not None:
                for message in unknown_target_fields(chain, target).values():
                    problems.append(f"chain #{index} (to '{chain.to}'): {message}")
        if problems:
            lines = "".join(f"\n  - {p}" for p in problems)
            raise PipelineCommandRejected(f"pipeline '{pipeline.name}' was not applied:{lines}")

    async def set_pipeline_status(
        self,
        name: str,
        to: PipelineStatus,
        *,
        by: str = "operator",
        reason: str | None = None,
        request_id: str | None = None,
    ) -> PipelineCommandResult:
        """Activate, pause, resume (to Active), complete or archive a pipeline.

        Raises:
            UnknownPipeline: it was never applied.
            PipelineCommandRejected: the change makes no sense from its status.
        """
        await self.describe_pipeline(name)  # UnknownPipeline before anything else
        command = ChangeStatus(
            request_id=request_id or uuid.uuid4().hex, to=to, by=by, reason=reason
        )
        return await self._pipeline_update(
            self.pipeline_handle(name), PipelineWorkflow.change_status, command
        )

    async def describe_pipeline(self, name: str) -> PipelineView:
        """The pipeline's status, versions, fan-out progress and recent events.

        Raises:
            UnknownPipeline: it was never applied.
        """
        return await self.starter.describe_pipeline(name)

    async def list_pipelines(self, *, timeout: float = 5.0) -> list[PipelineView]:
        """Every applied pipeline that answers within ``timeout`` seconds, by name.

        Each pipeline answers from its own workflow; one whose workers are gone cannot, and is
        left out rather than holding up the rest. The store's ``pipelines`` table (``pipeline
        list`` on the command line) lists them all without asking any workflow.
        """
        names: list[str] = []
        async for wf in self.client.list_workflows("WorkflowType = 'PipelineWorkflow'"):
            name = wf.id.removeprefix("pipeline:")
            if name not in names:
                names.append(name)

        async def describe(name: str) -> PipelineView | None:
            try:
                async with asyncio.timeout(timeout):
                    return await self.describe_pipeline(name)
            except (TimeoutError, RPCError, UnknownPipeline):
                return None

        views = await asyncio.gather(*(describe(n) for n in names))
        return sorted((v for v in views if v is not None), key=lambda v: v.name)

    async def creation_target(self, name: str) -> CreationTarget:
        """The definition new tasks of ``name`` start on, and whether they start Paused.

        Raises:
            UnknownPipeline: it was never applied.
            PipelineNotAccepting: it is Draft, Completed or Archived.
        """
        return await self.starter.creation_target(name)

    async def create_tasks(
        self, pipeline: str | Pipeline, rows: Sequence[Mapping[str, Any]], **options: Any
    ) -> list[Any]:
        """Create up to 5,000 tasks at once, with one result per row (see
        :func:`conveyor.creation.create_tasks` for the options and results).

        A pipeline given by name gets its current version; in a Paused pipeline the tasks start
        Paused.
        """
        if isinstance(pipeline, str):
            target = await self.creation_target(pipeline)
            # A Paused pipeline's new tasks start Paused, whatever the caller asked for.
            options["start_paused"] = bool(options.get("start_paused")) or target.start_paused
            pipeline = target.pipeline
        return await create_tasks(self, pipeline, rows, **options)

    async def _ensure_pipeline(self, name: str) -> WorkflowHandle[Any, Any]:
        # An Archived pipeline's run is closed: starting again is refused, and its closed run
        # still answers queries while updates say it takes no more changes.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self.client.start_workflow(
                PipelineWorkflow.run,
                PipelineInput(name=name, recheck_seconds=self.pipeline_recheck_seconds),
                id=pipeline_workflow_id(name),
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"pipeline {name}"[:200],
            )
        return self.pipeline_handle(name)

    async def _pipeline_update(
        self, handle: WorkflowHandle[Any, Any], update: Any, command: Any
    ) -> PipelineCommandResult:
        try:
            async with asyncio.timeout(self.update_timeout):
                result: PipelineCommandResult = await handle.execute_update(
                    update, command, id=command.request_id
                )
                return result
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == PIPELINE_REJECTED:
                raise PipelineCommandRejected(cause.message) from None
            raise
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise PipelineCommandRejected(
                    f"pipeline {handle.id.removeprefix('pipeline:')!r} is Archived; "
                    "it takes no more changes"
                ) from None
            raise
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
            raise NoWorkerResponded(
                f"no answer from {handle.id} within {self.update_timeout:.0f}s; "
                "is a worker running on this task queue?"
            ) from err

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


def _chain_loop(start: str, edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """The shortest chain path ``start -> … -> start`` through other pipelines, if any (a chain
    to itself is reported by the definition's own checks)."""
    return shortest_cycle(start, {**edges, start: [t for t in edges.get(start, []) if t != start]})


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
