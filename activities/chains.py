"""Chain activities: tasks of one pipeline creating tasks in another.

* :meth:`ChainActivities.fire_task_chains` runs as a task finishes (``on_task_completion``):
  one target task per chain, from the task's data.
* :meth:`ChainActivities.fire_completion_chains` runs when a Completed pipeline's tasks are all
  Finished (``on_pipeline_completion``): one target task per Finished task, read from the store
  in keyset pages and created with bounded concurrency.

Each target is resolved through :meth:`conveyor.starting.Starter.creation_target`: its current
definition, and whether its tasks start Paused. The target task's key derives from the source task
(:func:`workflows.chains.chain_task_key`) and creating a task is idempotent, so an activity
that runs again (a retry, a chain firing twice) creates nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from conveyor.creation import Created
from conveyor.errors import InvalidSeedData, PipelineNotAccepting, UnknownPipeline
from conveyor.starting import CreationTarget, Starter
from store.db import transaction
from store.tasks import FinishedTask
from store.tasks import finished_tasks as finished_tasks_page
from workflows.chains import ChainMappingError, chain_task_key, map_seed_data
from workflows.graph import ChainSpec, ChainTrigger
from workflows.options import FIRE_COMPLETION_CHAINS_ACTIVITY, FIRE_TASK_CHAINS_ACTIVITY
from workflows.pipeline_messages import (
    ChainsFired,
    FireCompletionChains,
    FireTaskChains,
    PipelineStatus,
)

PAGE_SIZE = 500
DEFAULT_CONCURRENCY = 20
FAILURES_SHOWN = 5
"""How many failed rows an error message names (the count covers them all)."""


class ChainFailure(Exception):
    """One chain could not fire; ``retryable`` says whether waiting can fix it."""

    def __init__(self, message: str, *, type: str, retryable: bool) -> None:
        super().__init__(message)
        self.type = type
        self.retryable = retryable


class ChainActivities:
    """Register with ``Worker(..., activities=[a.fire_task_chains, a.fire_completion_chains])``.

    Tasks are created on the task queue of the worker running the activity.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: Client | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._concurrency = concurrency

    def _conveyor(self) -> Starter:
        return Starter(self._client or activity.client(), activity.info().task_queue)

    @activity.defn(name=FIRE_TASK_CHAINS_ACTIVITY)
    async def fire_task_chains(self, request: FireTaskChains) -> ChainsFired:
        """Create one target task per chain from a Finished task's data.

        Raises:
            ApplicationError: retryable while a target takes no tasks (Draft, Completed);
                non-retryable when a target does not exist or is Archived, or when the mapped
                data does not fit the target (the message names the fields).
        """
        conveyor = self._conveyor()
        created: list[str] = []
        existing: list[str] = []
        failures: list[ChainFailure] = []
        for chain in request.chains:
            try:
                target = await resolve_target(conveyor, chain.to)
                result = await create_chained(
                    conveyor, chain, target, request.pipeline, request.task_key, request.data
                )
            except ChainFailure as failure:
                failures.append(failure)
                continue
            (created if result.created else existing).append(result.workflow_id)
        if failures:
            # Retry while anything may still come right; the chains that fired stay fired.
            waiting = [f for f in failures if f.retryable]
            first = (waiting or failures)[0]
            raise ApplicationError(
                "; ".join(str(f) for f in failures),
                type=first.type,
                non_retryable=not waiting,
            )
        return ChainsFired(created=created, existing=existing)

    @activity.defn(name=FIRE_COMPLETION_CHAINS_ACTIVITY)
    async def fire_completion_chains(self, request: FireCompletionChains) -> int:
        """Create one target task per Finished task of the pipeline, per completion chain.

        Returns how many tasks were created (tasks already there from an earlier attempt are
        not counted again). Heartbeats its progress; a retry resumes after the last page that
        went through whole.

        Raises:
            ApplicationError: always retryable (the pipeline keeps waiting): a target that
                does not exist yet or takes no tasks, or source tasks whose data the target
                refuses (fix the target or the chain and re-apply; the next attempt picks the
                fix up).
        """
        pipeline = request.pipeline
        chains = [c for c in pipeline.chains if c.trigger == ChainTrigger.ON_PIPELINE_COMPLETION]
        conveyor = self._conveyor()
        progress = _Progress.from_details(activity.info().heartbeat_details)
        gate = asyncio.Semaphore(self._concurrency)
        failed: list[str] = []
        failed_count = 0

        def fail(message: str) -> bool:
            nonlocal failed_count
            failed_count += 1
            if len(failed) < FAILURES_SHOWN:
                failed.append(message)
            return False

        async def fire(chain: ChainSpec, target: CreationTarget, task: FinishedTask) -> bool:
            async with gate:
                try:
                    result = await create_chained(
                        conveyor, chain, target, pipeline.name, task.task_key, task.data
                    )
                except ChainFailure as failure:
                    return fail(f"{task.workflow_id}: {failure}")
                activity.heartbeat(progress.details())
            return result.created

        for index in range(progress.chain, len(chains)):
            chain = chains[index]
            try:
                target = await resolve_target(conveyor, chain.to)
            except ChainFailure as failure:
                raise ApplicationError(str(failure), type=failure.type) from None
            after = progress.after if index == progress.chain else None
            while True:
                page = await asyncio.to_thread(
                    finished_tasks, self._sessions, pipeline.name, after, PAGE_SIZE
                )
                if not page:
                    break
                results = await asyncio.gather(*(fire(chain, target, t) for t in page))
                progress.created += sum(results)
                after = page[-1].workflow_id
                if not failed_count:
                    # Only pages that went through whole move the resume point.
                    progress.chain, progress.after = index, after
                activity.heartbeat(progress.details())
            if not failed_count:
                progress.chain, progress.after = index + 1, None
        if failed_count:
            raise ApplicationError(
                f"{failed_count} task(s) of pipeline '{pipeline.name}' could not create their "
                f"chained task: " + "; ".join(failed),
                type="InvalidChainData",
            )
        return progress.created


async def resolve_target(conveyor: Starter, name: str) -> CreationTarget:
    """The target pipeline's current definition and whether new tasks start Paused.

    Raises:
        ChainFailure: retryable while it is Draft or Completed; not when it does not exist or
            is Archived.
    """
    try:
        return await conveyor.creation_target(name)
    except UnknownPipeline:
        raise ChainFailure(
            f"chain target pipeline '{name}' does not exist; apply its definition "
            "(python starter.py pipeline apply FILE)",
            type="UnknownPipeline",
            retryable=False,
        ) from None
    except PipelineNotAccepting as err:
        view = await conveyor.describe_pipeline(name)
        raise ChainFailure(
            f"chain target {err}",
            type="PipelineNotAccepting",
            retryable=view.status != PipelineStatus.ARCHIVED,
        ) from None


async def create_chained(
    conveyor: Starter,
    chain: ChainSpec,
    target: CreationTarget,
    source_pipeline: str,
    source_key: str,
    source_data: Mapping[str, Any],
) -> Created:
    """Create (or find) the task ``chain`` makes in ``target`` from one source task.

    Raises:
        ChainFailure: non-retryable: the mapped data does not fit the target.
    """
    try:
        seed = map_seed_data(chain, source_data, target.pipeline)
        return await conveyor.create_task(
            target.pipeline,
            chain_task_key(source_pipeline, source_key, chain.trigger),
            seed,
            start_paused=target.start_paused,
        )
    except (ChainMappingError, InvalidSeedData) as err:
        fields = "; ".join(f"{k}: {v}" for k, v in err.errors.items())
        raise ChainFailure(
            f"chain to '{chain.to}' gives data that does not fit it ({fields}); fix the chain's "
            "mapping or values, or the target's predefined fields",
            type="InvalidChainData",
            retryable=False,
        ) from None


def finished_tasks(
    sessions: sessionmaker[Session], pipeline: str, after: str | None, limit: int
) -> list[FinishedTask]:
    """One keyset page of a pipeline's Finished tasks, each with its data as the workflow sees
    it (:func:`workflows.engine.task_data`): seed data plus every node's values, by field name
    and as ``node.field`` (:func:`store.tasks.finished_tasks`)."""
    with transaction(sessions) as session:
        return finished_tasks_page(session, pipeline, after, limit)


@dataclass
class _Progress:
    """Where a completion firing is (heartbeat details): the chain, the last task done whole
    and the tasks created so far, across attempts."""

    chain: int = 0
    after: str | None = None
    created: int = 0

    @classmethod
    def from_details(cls, details: Sequence[Any]) -> _Progress:
        last = details[-1] if details else None
        if not isinstance(last, Mapping):
            return cls()
        after = last.get("after")
        return cls(
            chain=int(last.get("chain", 0)),
            after=after if isinstance(after, str) else None,
            created=int(last.get("created", 0)),
        )

    def details(self) -> dict[str, Any]:
        return {"chain": self.chain, "after": self.after, "created": self.created}
