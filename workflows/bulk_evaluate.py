"""BulkEvaluateWorkflow: run chosen evaluators over a selection of tasks, durably.

The selection (explicit workflow ids or a Data Explorer filter over one pipeline) is read in
keyset pages in ``created_at`` order through a small activity, cut into chunks, and each chunk
is evaluated by one ``evaluate_chunk`` activity (``activities/evaluate.py``); up to
``concurrency`` chunks run at once. The workflow keeps only a cursor, the ids not yet handed
out and the counters, so it can continue-as-new at any chunk boundary and survive any number
of worker restarts.

Idempotency lives in the store: one result per ``(task, node, criterion, criterion version)``.
A chunk skips what already has a result, so re-running the same evaluator version (or a chunk
retried after a worker died) evaluates nothing twice, and a changed evaluator (a new version)
evaluates every task again.

Cancelling the workflow stops handing out chunks; chunks already running finish (they are
short) and the workflow returns its counters with ``state=cancelled``.

This module is deterministic and imports no I/O: it runs in the workflow sandbox.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from workflows.bulk_evaluate_messages import (
        BULK_SELECT_ACTIVITY,
        MAX_PAGE_IDS,
        BulkCarried,
        BulkEvaluateInput,
        BulkEvaluateProgress,
        BulkState,
        ChunkResult,
        EvaluateChunk,
        SelectTasks,
        TaskIdPage,
    )
    from workflows.markdown import md
    from workflows.options import BULK_EVALUATE_ACTIVITY, BULK_EVALUATE_WORKFLOW

PAGE_CHUNKS = 4
"""A selection page holds ids for this many chunks (fewer page activities)."""
ERRORS_KEPT = 10
"""How many error messages the progress keeps (the most recent)."""

SELECT_START_TO_CLOSE = timedelta(seconds=60)
SELECT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,
    non_retryable_error_types=["InvalidSelection"],
)
CHUNK_START_TO_CLOSE = timedelta(hours=1)
"""Generous: a chunk of LLM judges can take minutes. A dead worker is noticed through the
heartbeat timeout, not this."""
CHUNK_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
CHUNK_RETRY = RetryPolicy(
    # A store outage or a worker restart: try again. A chunk that keeps failing is counted as
    # errors after about a quarter of an hour; a re-run of the bulk evaluation picks it up.
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=20,
)


@workflow.defn(name=BULK_EVALUATE_WORKFLOW)
class BulkEvaluateWorkflow:
    """Evaluate a selection of tasks in chunks. See the module docstring."""

    @workflow.init
    def __init__(self, input: BulkEvaluateInput) -> None:
        self._input = input
        carried = input.carried
        if carried is not None:
            self._progress = carried.progress.model_copy(update={"runs": carried.progress.runs + 1})
            self._cursor: str | None = carried.cursor
            self._pending: list[str] = list(carried.pending)
            self._exhausted = carried.exhausted
        else:
            self._progress = BulkEvaluateProgress(
                pipeline=input.pipeline,
                evaluators=[e.key for e in input.evaluators],
                started_at=workflow.now(),
            )
            self._cursor = None
            self._pending = []
            self._exhausted = False
        self._running = 0
        self._chunks: set[asyncio.Task[None]] = set()

    @workflow.query
    def progress(self) -> BulkEvaluateProgress:
        """The counters so far (the final result once finished or cancelled)."""
        return self._progress.model_copy(update={"chunks_running": self._running})

    @workflow.run
    async def run(self, input: BulkEvaluateInput) -> BulkEvaluateProgress:
        self._publish()
        chunks_this_run = 0
        try:
            while True:
                if not self._pending and not self._exhausted:
                    await self._next_page()
                if not self._pending:
                    break
                await workflow.wait_condition(lambda: self._running < input.concurrency)
                chunk, self._pending = (
                    self._pending[: input.chunk_size],
                    self._pending[input.chunk_size :],
                )
                self._start_chunk(chunk)
                chunks_this_run += 1
                if (
                    chunks_this_run >= input.chunks_per_run
                    or workflow.info().is_continue_as_new_suggested()
                ):
                    await self._drain()
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    workflow.continue_as_new(
                        input.model_copy(
                            update={
                                "carried": BulkCarried(
                                    progress=self._progress,
                                    cursor=self._cursor,
                                    pending=self._pending,
                                    exhausted=self._exhausted,
                                )
                            }
                        )
                    )
            await self._drain()
        except asyncio.CancelledError:
            # Only this coroutine is cancelled: chunks already running carry on and are counted.
            await self._drain()
            return self._finish(BulkState.CANCELLED)
        return self._finish(BulkState.FINISHED)

    # ------------------------------------------------------------------ steps

    async def _next_page(self) -> None:
        first = self._progress.tasks_total is None
        try:
            page = await workflow.execute_activity(
                BULK_SELECT_ACTIVITY,
                SelectTasks(
                    pipeline=self._input.pipeline,
                    filter=self._input.filter,
                    after=self._cursor,
                    limit=min(MAX_PAGE_IDS, self._input.chunk_size * PAGE_CHUNKS),
                    count=first,
                ),
                result_type=TaskIdPage,
                start_to_close_timeout=SELECT_START_TO_CLOSE,
                retry_policy=SELECT_RETRY,
                summary="next page of the selection",
            )
        except ActivityError as err:
            if is_cancelled_exception(err):  # the workflow is being cancelled
                raise asyncio.CancelledError() from None
            raise ApplicationError(
                f"cannot read the selection of pipeline {self._input.pipeline!r}: {_cause(err)}",
                type="InvalidSelection",
                non_retryable=True,
            ) from None
        self._pending.extend(page.workflow_ids)
        self._cursor = page.next_cursor
        self._exhausted = page.next_cursor is None
        if first:
            self._progress = self._progress.model_copy(
                update={"tasks_total": page.total or 0, "tasks_not_found": page.not_found}
            )
            self._publish()

    def _start_chunk(self, ids: list[str]) -> None:
        self._running += 1
        task = asyncio.create_task(self._chunk(ids))
        self._chunks.add(task)
        task.add_done_callback(self._chunks.discard)

    async def _chunk(self, ids: list[str]) -> None:
        result: ChunkResult | None = None
        try:
            result = await workflow.execute_activity(
                BULK_EVALUATE_ACTIVITY,
                EvaluateChunk(
                    pipeline=self._input.pipeline,
                    workflow_ids=ids,
                    evaluators=self._input.evaluators,
                ),
                result_type=ChunkResult,
                start_to_close_timeout=CHUNK_START_TO_CLOSE,
                heartbeat_timeout=CHUNK_HEARTBEAT_TIMEOUT,
                retry_policy=CHUNK_RETRY,
                summary=f"evaluate {len(ids)} tasks",
            )
        except ActivityError as err:
            evaluations = len(ids) * len(self._input.evaluators)
            result = ChunkResult(
                tasks=len(ids),
                errors=evaluations,
                error_messages=[f"a chunk of {len(ids)} tasks failed: {_cause(err)}"],
            )
        finally:
            self._running -= 1
            if result is not None:
                self._add(result)

    async def _drain(self) -> None:
        await workflow.wait_condition(lambda: self._running == 0)

    def _add(self, result: ChunkResult) -> None:
        p = self._progress
        reasons = dict(p.skip_reasons)
        for reason, n in result.skip_reasons.items():
            reasons[reason] = reasons.get(reason, 0) + n
        self._progress = p.model_copy(
            update={
                "tasks_seen": p.tasks_seen + result.tasks,
                "evaluated": p.evaluated + result.evaluated,
                "evaluated_with_error": p.evaluated_with_error + result.evaluated_with_error,
                "skipped_done": p.skipped_done + result.skipped_done,
                "skipped_no_submission": p.skipped_no_submission + result.skipped_no_submission,
                "skip_reasons": reasons,
                "errors": p.errors + result.errors,
                "last_errors": [*p.last_errors, *result.error_messages][-ERRORS_KEPT:],
                "chunks_done": p.chunks_done + 1,
            }
        )
        self._publish()

    def _finish(self, state: BulkState) -> BulkEvaluateProgress:
        self._progress = self._progress.model_copy(
            update={"state": state, "finished_at": workflow.now(), "chunks_running": 0}
        )
        self._publish()
        return self._progress

    def _publish(self) -> None:
        p = self.progress()
        lines = [
            f"**Bulk evaluation** of {md(p.pipeline)} — {p.state.value}",
            "",
            p.text(),
            "",
            f"chunks done {p.chunks_done:,}, running {p.chunks_running}, run {p.runs}",
            "",
            "evaluators: " + ", ".join(md(e) for e in p.evaluators),
        ]
        if p.last_errors:
            lines += ["", f"last error: {md(p.last_errors[-1])}"]
        workflow.set_current_details("\n".join(lines))


def _cause(err: BaseException) -> str:
    """The innermost message of an activity failure (the activity's own error)."""
    while err.__cause__ is not None:
        err = err.__cause__
    return str(err) or type(err).__name__
