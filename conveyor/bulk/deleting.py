"""Delete: each selected task's Temporal execution (every run of it), then its store rows, in
chunks with bounded concurrency, resumable with a state file (see :mod:`conveyor.bulk`)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.service import RPCError, RPCStatusCode

from conveyor.bulk.selection import Progress, Selection
from conveyor.client import ConveyorClient
from conveyor.errors import Conflict, Invalid
from store.db import transaction
from store.deletion import delete_task_rows, delete_untouched_rows, ids_of_other_pipelines
from store.explorer import TaskFilter, count_tasks, page_ids
from store.export_csv import EXPORT_SORT

DELETE_CHUNK_SIZE = 100
DELETE_CONCURRENCY = 10


class ConfirmationRequired(Invalid, ValueError):
    """A destructive bulk action was asked for without confirmation."""

    code = "confirmation_required"


class StateFileMismatch(Conflict, ValueError):
    """The state file belongs to another selection."""


class DeleteOutcome(StrEnum):
    DELETED = "deleted"
    """The store rows were deleted, or Temporal accepted the workflow's deletion, or both.
    Temporal removes a running workflow at once (terminating it) and a closed one
    asynchronously (seconds to a minute later)."""
    ALREADY_GONE = "already gone"
    """Neither the workflow nor store rows existed."""
    ERROR = "error"
    """Not deleted (see ``reason``); a rerun tries again."""


@dataclass(frozen=True)
class DeleteResult:
    workflow_id: str
    outcome: DeleteOutcome
    reason: str | None = None


@dataclass
class DeleteReport:
    results: list[DeleteResult] = field(default_factory=list)
    """This run's per-task outcomes, in the order they finished."""
    skipped: int = 0
    """Tasks a previous run (same state file) already finished."""

    def ids(self, outcome: DeleteOutcome) -> list[str]:
        return [r.workflow_id for r in self.results if r.outcome == outcome]

    @property
    def deleted(self) -> int:
        return len(self.ids(DeleteOutcome.DELETED))

    @property
    def already_gone(self) -> int:
        return len(self.ids(DeleteOutcome.ALREADY_GONE))

    @property
    def errors(self) -> list[DeleteResult]:
        return [r for r in self.results if r.outcome == DeleteOutcome.ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors


class DeleteState:
    """A delete's progress file (JSON Lines, appended, so it grows in O(n)).

    The first line is ``{"kind": "conveyor-delete", "selection": {...}}``; each finished
    chunk appends ``{"done": [workflow ids]}``. A torn last line (a crash mid-write) is ignored.
    """

    KIND = "conveyor-delete"

    def __init__(self, path: Path | None, selection: Selection):
        self.path = path
        self.done: set[str] = set()
        if path is None:
            return
        wanted = selection.model_dump(mode="json")
        if path.exists() and path.stat().st_size > 0:
            lines = path.read_text(encoding="utf-8").splitlines()
            header = self._parse(lines[0]) if lines else None
            if header is None or header.get("kind") != self.KIND:
                raise StateFileMismatch(f"{path} is not a delete state file; choose another path")
            if header.get("selection") != wanted:
                raise StateFileMismatch(
                    f"{path} records a different selection ({header.get('selection')}); rerun "
                    "with the same pipeline and filters, or use a new --state-file"
                )
            for line in lines[1:]:
                entry = self._parse(line)
                if entry is not None:
                    self.done.update(entry.get("done", []))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"kind": self.KIND, "selection": wanted})

    @staticmethod
    def _parse(line: str) -> dict[str, Any] | None:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    def record(self, workflow_ids: Sequence[str]) -> None:
        self.done.update(workflow_ids)
        if self.path is not None and workflow_ids:
            self._append({"done": list(workflow_ids)})

    def _append(self, entry: dict[str, Any]) -> None:
        assert self.path is not None
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())


async def delete_tasks(
    conveyor: ConveyorClient,
    sessions: sessionmaker[Session],
    selection: Selection,
    *,
    confirm: bool,
    progress: Progress | None = None,
    state_file: Path | None = None,
    chunk_size: int = DELETE_CHUNK_SIZE,
    concurrency: int = DELETE_CONCURRENCY,
) -> DeleteReport:
    """Delete the selected tasks: each one's Temporal execution first, then its store rows.

    Deleting the workflow first means a crash between the two leaves only store rows, which a
    rerun deletes (the workflow then reads as already gone). A task whose projection activity
    is in flight at the moment of deletion can leave its row behind; ``reconcile`` reports it
    as an orphan. Tasks that fail are reported and not recorded as done, so a rerun retries
    them.

    Args:
        confirm: must be True: deletion cannot be undone.
        progress: ``progress(done, total)`` after each chunk (done includes earlier runs).
        state_file: where progress is recorded; rerun with the same file and selection to
            continue after a crash or an interruption.

    Raises:
        ConfirmationRequired: ``confirm`` is not True.
        StateFileMismatch: ``state_file`` records another selection.
    """
    if confirm is not True:
        raise ConfirmationRequired(
            "deleting tasks cannot be undone: confirm it (pass --yes on the command line, "
            "or confirm=True)"
        )
    state = await asyncio.to_thread(DeleteState, state_file, selection)
    report = DeleteReport()
    remaining = await asyncio.to_thread(_count_remaining, sessions, selection, state.done)
    total = len(state.done) + remaining
    gate = asyncio.Semaphore(concurrency)

    async def delete_one(workflow_id: str) -> tuple[str, bool | str]:
        async with gate:
            try:
                return workflow_id, await delete_workflow(conveyor, workflow_id)
            except RPCError as err:
                return workflow_id, f"Temporal refused: {err.message} ({err.status.name})"

    async for whole_chunk in _chunks(sessions, selection, state.done, chunk_size):
        # Untouched tasks (lazy start, no workflow) are their rows: gone in one statement.
        untouched = await asyncio.to_thread(_delete_untouched, sessions, whole_chunk)
        for workflow_id in sorted(untouched):
            report.results.append(DeleteResult(workflow_id, DeleteOutcome.DELETED))
        await asyncio.to_thread(state.record, sorted(untouched))
        chunk = [i for i in whole_chunk if i not in untouched]
        outcomes = dict(await asyncio.gather(*(delete_one(i) for i in chunk)))
        deletable = [i for i in chunk if not isinstance(outcomes[i], str)]
        try:
            in_store = await asyncio.to_thread(delete_store_rows, sessions, deletable)
        except Exception as err:  # the store is down: report the chunk, retry it next run
            in_store, deletable = set(), []
            reason = f"store: {type(err).__name__}: {err}"
            outcomes = {i: outcomes[i] if isinstance(outcomes[i], str) else reason for i in chunk}
        for workflow_id in chunk:
            outcome = outcomes[workflow_id]
            if isinstance(outcome, str):
                report.results.append(DeleteResult(workflow_id, DeleteOutcome.ERROR, outcome))
            elif outcome or workflow_id in in_store:
                report.results.append(DeleteResult(workflow_id, DeleteOutcome.DELETED))
            else:
                report.results.append(DeleteResult(workflow_id, DeleteOutcome.ALREADY_GONE))
        await asyncio.to_thread(state.record, deletable)
        if progress is not None:
            progress(len(state.done), total)
    report.skipped = total - remaining
    return report


async def delete_workflow(conveyor: ConveyorClient, workflow_id: str) -> bool:
    """Delete every run of a task's workflow; False when none existed.

    ``DeleteWorkflowExecution`` without a run id removes the latest run (terminating it if
    running); earlier runs of a continued-as-new task are found through visibility and removed
    by run id. NOT_FOUND is "already deleted".
    """
    client = conveyor.client
    deleted = await _delete_run(conveyor, workflow_id, "")
    query = f"WorkflowId = '{_quote(workflow_id)}'"
    async for run in client.list_workflows(query):
        deleted = await _delete_run(conveyor, workflow_id, run.run_id) or deleted
    return deleted


async def _delete_run(conveyor: ConveyorClient, workflow_id: str, run_id: str) -> bool:
    client = conveyor.client
    request = DeleteWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
    )
    try:
        await client.workflow_service.delete_workflow_execution(request)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


def _delete_untouched(sessions: sessionmaker[Session], workflow_ids: Sequence[str]) -> set[str]:
    if not workflow_ids:
        return set()
    with transaction(sessions) as session:
        return delete_untouched_rows(session, workflow_ids)


def delete_store_rows(sessions: sessionmaker[Session], workflow_ids: Sequence[str]) -> set[str]:
    """Delete tasks' store rows in one transaction; returns the ids that had a task row.

    Node instances, timeline events, submissions, reviews and tags go with the task row
    (``ON DELETE CASCADE``; SQLite enforces it because ``store.db`` turns foreign keys on).
    LLM calls, evaluation results and claim reservations have no foreign key and are deleted
    explicitly.
    """
    if not workflow_ids:
        return set()
    with transaction(sessions) as session:
        return delete_task_rows(session, workflow_ids)


def _count_remaining(sessions: sessionmaker[Session], selection: Selection, done: set[str]) -> int:
    if selection.filter.is_explicit_only():
        return len(set(selection.filter.workflow_ids or []) - done)
    assert selection.pipeline is not None
    with transaction(sessions) as session:
        # Done tasks have no store rows any more (their rows go before they are recorded).
        return count_tasks(session, selection.pipeline, selection.filter)


async def _chunks(
    sessions: sessionmaker[Session], selection: Selection, done: set[str], size: int
) -> Any:
    """Chunks of not-yet-done workflow ids of the selection, read lazily."""
    if selection.filter.is_explicit_only():
        ids = [i for i in dict.fromkeys(selection.filter.workflow_ids or []) if i not in done]
        if selection.pipeline is not None:
            await asyncio.to_thread(_check_pipeline, sessions, selection.pipeline, ids)
        for start in range(0, len(ids), size):
            yield ids[start : start + size]
        return
    assert selection.pipeline is not None
    after: str | None = None
    while True:
        ids, after = await asyncio.to_thread(
            _id_page, sessions, selection.pipeline, selection.filter, size, after
        )
        todo = [i for i in ids if i not in done]
        if todo:
            yield todo
        if after is None:
            return


def _id_page(
    sessions: sessionmaker[Session],
    pipeline: str,
    criteria: TaskFilter,
    size: int,
    after: str | None,
) -> tuple[list[str], str | None]:
    with transaction(sessions) as session:
        return page_ids(session, pipeline, criteria, EXPORT_SORT, limit=size, after=after)


def _check_pipeline(sessions: sessionmaker[Session], pipeline: str, ids: list[str]) -> None:
    """Refuse explicit ids the store knows under another pipeline."""
    with transaction(sessions) as session:
        others = ids_of_other_pipelines(session, pipeline, ids)
    if others:
        shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
        raise ValueError(
            f"{len(others)} of the ids belong to another pipeline than {pipeline!r}: {shown}"
        )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
