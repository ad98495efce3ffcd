"""Bulk evaluation activities: page a selection of tasks, and evaluate one chunk of it.

``evaluate_chunk`` is idempotent by the store's unique key (one result per task, node,
criterion and criterion version):

1. Read the chunk's tasks from the store in one short transaction: seed data, each node's
   values and whether it has a submission, and which results already exist.
2. Skip evaluations that already have a result (``skipped_done``) and nodes with nothing
   submitted yet (``skipped_no_submission``, with the reason).
3. Run programmatic evaluators in-process and LLM judges through the judge core
   (:func:`activities.llm.run_judge`, which records its own ``llm_calls`` rows), at most
   ``judge_concurrency`` judges at once. No transaction is open meanwhile.
4. Write every result in one transaction with ``INSERT ... ON CONFLICT DO NOTHING``
   (``source='bulk'``, ``seq=0``); a result someone else wrote meanwhile counts as already done.

The activity heartbeats after each task (and every few seconds while a judge is slow), so a
worker that dies is noticed within the heartbeat timeout and the chunk is retried elsewhere;
the retry skips whatever the first attempt managed to commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.llm import MAX_OUTPUT_ATTEMPTS, LlmSettings, run_judge
from store.db import transaction
from store.evaluations import insert_results, result_keys
from store.explorer import (
    BULK_SOURCE,
    InvalidCursor,
    Sort,
    SortField,
    TaskFilter,
    count_tasks,
    page_ids,
)
from store.projection import evaluation_row
from store.tasks import node_inputs, task_seeds
from workflows.bulk_evaluate_messages import (
    BULK_SELECT_ACTIVITY,
    ChunkResult,
    EvaluateChunk,
    NodeEvaluator,
    SelectTasks,
    TaskIdPage,
)
from workflows.evaluators import evaluate_programmatic
from workflows.graph import EvaluatorKind
from workflows.messages import EvaluationKind, EvaluationRecord, JudgeRequest
from workflows.options import BULK_EVALUATE_ACTIVITY

Judge = Callable[[JudgeRequest, int], Awaitable[EvaluationRecord]]
"""Runs one LLM judge (request, attempt); raises ``ApplicationError`` (retryable or not) when
it cannot. :func:`activities.llm.run_judge` by default."""

JUDGE_CONCURRENCY = 8
JUDGE_ATTEMPTS = MAX_OUTPUT_ATTEMPTS
"""Tries per judge within a chunk for retryable failures; after that the evaluation counts
as an error and writes nothing (a re-run tries it again)."""
HEARTBEAT_EVERY = 5.0
"""Seconds between heartbeats while a task's judges are slow."""
WRITE_BATCH = 500
"""Rows per INSERT (SQLite and PostgreSQL cap the parameters of one statement)."""
MESSAGES_KEPT = 5

_CREATED_ORDER = Sort(field=SortField.CREATED_AT)


@dataclass
class _Task:
    workflow_id: str
    pipeline: str
    data: dict[str, Any]
    """Seed data and every node's values, as the task's own evaluators see them."""
    submitted: dict[str, bool]
    """Node -> whether it has a submission (a form, an LLM output or a review)."""


@dataclass
class _Loaded:
    tasks: list[_Task]
    done: set[tuple[str, str, str, str]]
    """``(workflow_id, node, criterion, version)`` that already have a result."""


@dataclass
class _Tally:
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped_done: int = 0
    skip_reasons: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    messages: list[str] = field(default_factory=list)
    tasks_done: int = 0

    def skip(self, reason: str) -> None:
        self.skip_reasons[reason] += 1

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.messages) < MESSAGES_KEPT:
            self.messages.append(message)


def task_context(seed: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Seed data plus every node's values by field name and as ``node.field``: the same shape
    as :func:`workflows.engine.task_data`, built from store rows."""
    data = dict(seed)
    for node in sorted(nodes):
        for key, value in (nodes[node] or {}).items():
            data[key] = value
            data[f"{node}.{key}"] = value
    return data


class EvaluateActivities:
    """The bulk evaluation activities, with the store and LLM settings injected.

    Register both: ``activities=[a.select_tasks, a.evaluate_chunk]``.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        llm_settings: LlmSettings | None = None,
        *,
        judge: Judge | None = None,
        judge_concurrency: int = JUDGE_CONCURRENCY,
    ) -> None:
        self.sessions = sessions
        self._llm_settings = llm_settings or LlmSettings()
        self._judge: Judge = judge or self._judge_core
        self._judge_concurrency = judge_concurrency

    # ------------------------------------------------------------------ selection

    @activity.defn(name=BULK_SELECT_ACTIVITY)
    async def select_tasks(self, request: SelectTasks) -> TaskIdPage:
        """The next page of the selection's workflow ids, in ``created_at`` order.

        Raises:
            ApplicationError: ``InvalidSelection`` (non-retryable) for a filter or cursor
                this store cannot read.
        """
        return await asyncio.to_thread(self._select, request)

    def _select(self, request: SelectTasks) -> TaskIdPage:
        try:
            criteria = TaskFilter.model_validate(request.filter)
        except ValidationError as err:
            raise ApplicationError(
                f"the selection filter is not valid: {err}",
                type="InvalidSelection",
                non_retryable=True,
            ) from None
        with transaction(self.sessions) as session:
            try:
                ids, cursor = page_ids(
                    session,
                    request.pipeline,
                    criteria,
                    _CREATED_ORDER,
                    limit=request.limit,
                    after=request.after,
                )
            except InvalidCursor as err:
                raise ApplicationError(
                    str(err), type="InvalidSelection", non_retryable=True
                ) from None
            total = not_found = None
            if request.count:
                total = count_tasks(session, request.pipeline, criteria)
                if criteria.is_explicit_only():
                    not_found = len(set(criteria.workflow_ids or [])) - total
        return TaskIdPage(
            workflow_ids=ids, next_cursor=cursor, total=total, not_found=not_found or 0
        )

    # ------------------------------------------------------------------ one chunk

    @activity.defn(name=BULK_EVALUATE_ACTIVITY)
    async def evaluate_chunk(self, request: EvaluateChunk) -> ChunkResult:
        """Evaluate one chunk of tasks and write the results (see the module docstring).

        Safe to retry at any point: results already written are skipped.
        """
        loaded = await asyncio.to_thread(self._load, request)
        tally = _Tally()
        missing = len(set(request.workflow_ids)) - len(loaded.tasks)
        for _ in range(missing):  # deleted since the selection was read
            for ev in request.evaluators:
                tally.skip(f"{ev.node}: the task is no longer in the store")
        gate = asyncio.Semaphore(self._judge_concurrency)
        tag = _call_tag()

        async def one(task: _Task) -> None:
            for ev in request.evaluators:
                await self._evaluate(task, ev, loaded.done, tally, gate, tag)
            tally.tasks_done += 1
            activity.heartbeat(tally.tasks_done)

        keepalive = asyncio.create_task(self._keepalive(tally))
        try:
            await asyncio.gather(*(one(t) for t in loaded.tasks))
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive

        # The commit must not be lost to a cancellation (a worker shutting down): wait for it,
        # so the counts this attempt reports match what it wrote.
        write = asyncio.ensure_future(asyncio.to_thread(self._write, tally.rows))
        try:
            written, written_with_error = await asyncio.shield(write)
        except asyncio.CancelledError:
            written, written_with_error = await write
        skipped_no_submission = sum(tally.skip_reasons.values())
        return ChunkResult(
            tasks=len(set(request.workflow_ids)),
            evaluated=written,
            evaluated_with_error=written_with_error,
            skipped_done=tally.skipped_done + len(tally.rows) - written,
            skipped_no_submission=skipped_no_submission,
            skip_reasons=dict(tally.skip_reasons),
            errors=tally.errors,
            error_messages=tally.messages,
        )

    async def _keepalive(self, tally: _Tally) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            activity.heartbeat(tally.tasks_done)

    async def _evaluate(
        self,
        task: _Task,
        ev: NodeEvaluator,
        done: set[tuple[str, str, str, str]],
        tally: _Tally,
        gate: asyncio.Semaphore,
        tag: str,
    ) -> None:
        spec = ev.evaluator
        if (task.workflow_id, ev.node, spec.name, spec.version) in done:
            tally.skipped_done += 1
            return
        if ev.node not in task.submitted:
            tally.skip(f"{ev.node}: no such node in the task's pipeline version")
            return
        if not task.submitted[ev.node]:
            tally.skip(f"{ev.node}: not submitted yet")
            return
        if spec.kind == EvaluatorKind.LLM_JUDGE:
            async with gate:
                call_id = f"{ev.node}:judge:{spec.name}:{spec.version}:{tag}"
                record = await self._run_judge(task, ev, tally, call_id)
        else:
            try:
                record = evaluate_programmatic(spec, ev.node, task.data)
            except Exception as err:  # evaluators should not raise; never lose the chunk to one
                tally.error(f"{task.workflow_id} {ev.key}: {type(err).__name__}: {err}")
                return
        if record is not None:
            tally.rows.append(_row(task, record))

    async def _run_judge(
        self, task: _Task, ev: NodeEvaluator, tally: _Tally, call_id: str
    ) -> EvaluationRecord | None:
        """The judge's record; a record with ``error`` for a failure that cannot succeed on
        retry; None (an error, nothing written) when retryable failures persist."""
        spec = ev.evaluator
        request = JudgeRequest(
            workflow_id=task.workflow_id,
            node=ev.node,
            evaluator=spec,
            context=task.data,
            call_id=call_id,
            mode=spec.mode.value,
        )
        for attempt in range(1, JUDGE_ATTEMPTS + 1):
            try:
                return await self._judge(request, attempt)
            except ApplicationError as err:
                if err.non_retryable:
                    return _failed_judge(ev, err.message)
                if attempt == JUDGE_ATTEMPTS:
                    tally.error(f"{task.workflow_id} {ev.key}: {err.message}")
                    return None
                delay = err.next_retry_delay or timedelta(seconds=2 ** (attempt - 1))
                await asyncio.sleep(min(delay.total_seconds(), 30.0))
        return None  # pragma: no cover - the loop always returns

    async def _judge_core(self, request: JudgeRequest, attempt: int) -> EvaluationRecord:
        return await run_judge(self._llm_settings, request, attempt=attempt, sessions=self.sessions)

    # ------------------------------------------------------------------ store

    def _load(self, request: EvaluateChunk) -> _Loaded:
        ids = list(dict.fromkeys(request.workflow_ids))
        criteria = {ev.evaluator.name for ev in request.evaluators}
        wanted = {(ev.node, ev.evaluator.name, ev.evaluator.version) for ev in request.evaluators}
        with transaction(self.sessions) as session:
            seeds = task_seeds(session, request.pipeline, ids)
            values: dict[str, dict[str, dict[str, Any]]] = {i: {} for i in seeds}
            submitted: dict[str, dict[str, bool]] = {i: {} for i in seeds}
            for entry in node_inputs(session, list(seeds)):
                values[entry.workflow_id][entry.node] = entry.values
                submitted[entry.workflow_id][entry.node] = entry.submitted
            done = {
                (wid, node, criterion, version)
                for wid, node, criterion, version in result_keys(session, list(seeds), criteria)
                if (node, criterion, version) in wanted
            }
        tasks = [
            _Task(
                wid, request.pipeline, task_context(seeds[wid] or {}, values[wid]), submitted[wid]
            )
            for wid in ids
            if wid in seeds
        ]
        return _Loaded(tasks, done)

    def _write(self, rows: list[dict[str, Any]]) -> tuple[int, int]:
        """Insert the results that are not there yet; ``(written, written with an error)``."""
        if not rows:
            return 0, 0
        with transaction(self.sessions) as session:
            clean = [r for r in rows if r["error"] is None]
            failed = [r for r in rows if r["error"] is not None]
            written = sum(insert_results(session, b) for b in _batches(clean))
            with_error = sum(insert_results(session, b) for b in _batches(failed))
        return written + with_error, with_error


def _row(task: _Task, record: EvaluationRecord) -> dict[str, Any]:
    return evaluation_row(
        task.workflow_id, task.pipeline, record, source=BULK_SOURCE, seq=0, at=datetime.now(UTC)
    )


def _call_tag() -> str:
    """Names a judge call of this bulk evaluation and chunk attempt in ``llm_calls``, so a
    re-run or a retried chunk records its calls too."""
    try:
        info = activity.info()
    except RuntimeError:  # called outside an activity (tests)
        return "bulk"
    return f"bulk:{info.workflow_id}:{info.attempt}"


def _failed_judge(ev: NodeEvaluator, message: str) -> EvaluationRecord:
    spec = ev.evaluator
    return EvaluationRecord(
        criterion=spec.name,
        version=spec.version,
        kind=EvaluationKind.LLM_JUDGE,
        evaluator=spec.kind.value,
        mode=spec.mode.value,
        node=ev.node,
        fields=list(spec.fields),
        actor=f"llm:{spec.judge.model}" if spec.judge else None,
        error=message,
    )


def _batches(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), WRITE_BATCH):
        yield rows[start : start + WRITE_BATCH]
