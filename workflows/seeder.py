"""SeederWorkflow: keep a pipeline supplied with new tasks from a source, for as long as it runs.

One seeder per pipeline (workflow id ``seeder:<pipeline>``, see :func:`seeder_workflow_id`). It
draws seed rows from a source and creates one task per row:

* ``file``: a CSV, JSON Lines or JSON file the workers can read, cycled (after the last row it
  starts again at the first);
* ``generator``: ``package.module:function`` returning an iterator of dicts (it must yield the
  same items in the same order every time it is called: the seeder resumes it by position);
* ``llm``: a prompt asking a model for new rows as JSON, validated against the pipeline's
  dataset fields.

and paces itself in one of two modes: ``in_flight`` keeps that many unfinished tasks of the
pipeline (counted in the store, plus what it created and the store has not shown yet), or
``rate_per_minute`` creates tasks at that steady rate. ``max_tasks`` ends it after that many
rows became tasks.

**No duplicates, no gaps.** A task's key is its position in the source (:func:`file_key`,
:func:`generator_key`, :func:`llm_key`), and the cursor moves only when the workflow records a
finished ``seed_batch`` activity. A batch redone after a crash (a retried activity that had
created some of its tasks, a replayed workflow, another worker taking over) therefore tries the
same keys again: the tasks it had created are found (``existed``), none are created twice and no
position is skipped. The workflow continues-as-new every ``rounds_per_run`` rounds (or when the
server suggests it), carrying its cursor and counters.

**Pipeline status.** Tasks are created through the pipeline's current version; in a Paused
pipeline they start Paused. While the pipeline takes no tasks (Draft, Completed, Archived, or
not applied yet) the seeder waits, says why in its progress, and re-checks every
``recheck_seconds``.

**Ending.** The ``stop`` update ends it after the batch in progress (and answers with the final
progress); cancelling the workflow does too, abandoning that batch (its tasks exist, the counters
miss them). A source that cannot give a single valid row, or another error that cannot succeed
on retry, ends it with ``state=failed``; a generator that runs out ends it ``exhausted``.

This module is deterministic and imports no I/O: it runs in the workflow sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import math

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from workflows.markdown import md
    from workflows.payloads import Undecodable, decode
    from workflows.seeder_messages import (
        BATCH_HEARTBEAT,
        BATCH_RETRY,
        BATCH_START_TO_CLOSE,
        COUNT_RETRY,
        COUNT_START_TO_CLOSE,
        IN_FLIGHT_ACTIVITY,
        INVALID_KEPT,
        REASON_CHARS,
        SEED_BATCH_ACTIVITY,
        SEEDER_WORKFLOW,
        UNCONFIRMED_TTL,
        InFlightCount,
        InFlightQuery,
        LlmUsage,
        SeedBatch,
        SeedBatchResult,
        SeederCarried,
        SeederInput,
        SeederProgress,
        SeederState,
        SeedOutcome,
        StopSeeding,
        Unconfirmed,
    )

# --------------------------------------------------------------------------- the workflow


@workflow.defn(name=SEEDER_WORKFLOW)
class SeederWorkflow:
    """Create tasks from a source at a pace. See the module docstring."""

    @workflow.init
    def __init__(self, input: SeederInput) -> None:
        self._input = input
        carried = input.carried
        if carried is not None:
            p = carried.progress
            self._progress = p.model_copy(update={"runs": p.runs + 1})
            self._unconfirmed = list(carried.unconfirmed)
            self._credit = carried.credit
            self._credit_at = carried.credit_at
        else:
            self._progress = SeederProgress(
                pipeline=input.pipeline,
                source=input.source,
                key_prefix=input.key_prefix,
                in_flight_target=input.in_flight,
                rate_per_minute=input.rate_per_minute,
                max_tasks=input.max_tasks,
                cursor=input.cursor,
                started_at=workflow.now(),
            )
            self._unconfirmed = []
            self._credit = 0.0
            self._credit_at = None
        self._stop: StopSeeding | None = None
        self._finished = False

    @workflow.query
    def progress(self) -> SeederProgress:
        """The counters and cursor so far (the final result once ended)."""
        return self._progress

    @workflow.update
    async def stop(self, raw: RawValue) -> SeederProgress:
        """End the seeder after the batch in progress; answers with the final progress.

        Takes the raw payload (a :class:`StopSeeding`) and decodes it itself, so that no payload
        can reach the workflow task as an exception.
        """
        request = _read_stop(raw)
        if self._stop is None:
            self._stop = request
        await workflow.wait_condition(lambda: self._finished)
        return self._progress

    @stop.validator
    def _stop_ok(self, raw: RawValue) -> None:
        _read_stop(raw)

    @workflow.run
    async def run(self, input: SeederInput) -> SeederProgress:
        self._publish()
        rounds = 0
        try:
            while True:
                if self._stop is not None:
                    return await self._end(SeederState.STOPPED, self._stop_note())
                p = self._progress
                if input.max_tasks is not None and p.taken >= input.max_tasks:
                    return await self._end(
                        SeederState.COMPLETED, f"{input.max_tasks:,} task(s) seeded"
                    )
                if rounds >= input.rounds_per_run or workflow.info().is_continue_as_new_suggested():
                    await self._continue_as_new()
                    return await self._end(SeederState.STOPPED, self._stop_note())
                rounds += 1
                wait = await self._round()
                if self._progress.state in (SeederState.EXHAUSTED, SeederState.FAILED):
                    return await self._end(self._progress.state, self._progress.note)
                if wait > 0:
                    await self._sleep(wait)
        except asyncio.CancelledError:
            return await self._end(SeederState.STOPPED, "cancelled")

    # ------------------------------------------------------------------ one round

    async def _round(self) -> float:
        """Create what is owed now; returns how long to wait before the next round."""
        input = self._input
        if input.in_flight is not None:
            in_flight = await self._count_in_flight()
            want = input.in_flight - in_flight
            idle_wait = input.poll_seconds
        else:
            want, idle_wait = self._rate_owed()
        if input.max_tasks is not None:
            want = min(want, input.max_tasks - self._progress.taken)
        want = min(want, input.batch_size)
        if want <= 0:
            self._set_state(SeederState.RUNNING, None)
            return idle_wait
        try:
            result = await workflow.execute_activity(
                SEED_BATCH_ACTIVITY,
                SeedBatch(
                    pipeline=input.pipeline,
                    source=input.source,
                    cursor=self._progress.cursor,
                    count=want,
                    key_prefix=input.key_prefix,
                ),
                result_type=SeedBatchResult,
                start_to_close_timeout=BATCH_START_TO_CLOSE,
                heartbeat_timeout=BATCH_HEARTBEAT,
                retry_policy=BATCH_RETRY,
                summary=f"seed {want} from {input.source.describe()}"[:200],
            )
        except ActivityError as err:
            if is_cancelled_exception(err):  # the workflow is being cancelled
                raise asyncio.CancelledError() from None
            cause = _cause(err)
            if _final(err):
                self._set_state(SeederState.FAILED, cause)
                return 0
            self._progress = self._progress.model_copy(update={"last_error": cause})
            self._set_state(SeederState.WAITING, f"a batch failed; trying again soon: {cause}")
            return input.recheck_seconds
        if result.waiting is not None:
            self._set_state(SeederState.WAITING, result.waiting)
            return input.recheck_seconds
        self._record(result)
        if result.exhausted:
            self._set_state(SeederState.EXHAUSTED, f"{input.source.describe()} has no more rows")
            return 0
        self._set_state(SeederState.RUNNING, None)
        taken = sum(1 for r in result.rows if r.outcome != SeedOutcome.INVALID)
        if input.rate_per_minute is not None:
            self._credit = max(0.0, self._credit - taken)
            return 0
        # In-flight mode: look again at once (the count now includes this batch).
        return 0 if taken else input.poll_seconds

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if a stop arrives."""
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._stop is not None, timeout=seconds, timeout_summary="next round"
            )

    async def _count_in_flight(self) -> int:
        now = workflow.now()
        self._unconfirmed = [u for u in self._unconfirmed if now - u.at < UNCONFIRMED_TTL]
        try:
            count = await workflow.execute_activity(
                IN_FLIGHT_ACTIVITY,
                InFlightQuery(
                    pipeline=self._input.pipeline, keys=[u.key for u in self._unconfirmed]
                ),
                result_type=InFlightCount,
                start_to_close_timeout=COUNT_START_TO_CLOSE,
                retry_policy=COUNT_RETRY,
                summary="count unfinished tasks",
            )
        except ActivityError as err:
            if is_cancelled_exception(err):  # the workflow is being cancelled
                raise asyncio.CancelledError() from None
            raise
        missing = set(count.missing)
        self._unconfirmed = [u for u in self._unconfirmed if u.key in missing]
        in_flight = count.unfinished + len(self._unconfirmed)
        self._progress = self._progress.model_copy(update={"in_flight": in_flight})
        return in_flight

    def _rate_owed(self) -> tuple[int, float]:
        """Rate mode: tasks owed now, and the wait until a worthwhile batch is owed."""
        rate = self._input.rate_per_minute
        assert rate is not None
        now = workflow.now()
        cap = float(self._input.batch_size)
        if self._credit_at is not None:
            elapsed = (now - self._credit_at).total_seconds()
            self._credit = min(cap, self._credit + rate * elapsed / 60.0)
        else:
            self._credit = min(cap, 1.0)  # the first task at once
        self._credit_at = now
        owed = math.floor(self._credit + 1e-9)
        # Batch what a poll interval brings at high rates; one at a time at low ones.
        target = min(cap, max(1.0, rate * self._input.poll_seconds / 60.0))
        wait = max(0.05, (target - self._credit) * 60.0 / rate)
        return owed, wait

    def _record(self, result: SeedBatchResult) -> None:
        p = self._progress
        now = workflow.now()
        created = existed = invalid = 0
        reasons = list(p.last_invalid)
        for row in result.rows:
            if row.outcome == SeedOutcome.INVALID:
                invalid += 1
                reasons.append(f"{row.key}: {row.reason or 'invalid'}"[:REASON_CHARS])
                continue
            if row.outcome == SeedOutcome.CREATED:
                created += 1
            else:
                existed += 1
            self._unconfirmed.append(Unconfirmed(key=row.key, at=now))
        usage = p.llm
        cost = (
            None
            if usage.cost_usd is None or result.llm.cost_usd is None
            else usage.cost_usd + result.llm.cost_usd
        )
        in_flight = p.in_flight
        if in_flight is not None:
            in_flight += created + existed
        self._progress = p.model_copy(
            update={
                "cursor": result.cursor,
                "created": p.created + created,
                "existed": p.existed + existed,
                "invalid": p.invalid + invalid,
                "last_invalid": reasons[-INVALID_KEPT:],
                "in_flight": in_flight,
                "batches": p.batches + 1,
                "last_batch_at": now,
                "llm": LlmUsage(
                    calls=usage.calls + result.llm.calls,
                    prompt_tokens=usage.prompt_tokens + result.llm.prompt_tokens,
                    completion_tokens=usage.completion_tokens + result.llm.completion_tokens,
                    cost_usd=cost,
                ),
            }
        )

    # ------------------------------------------------------------------ ending

    async def _continue_as_new(self) -> None:
        """Continue as new unless a stop arrives first (then return, to end)."""
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() or self._stop is not None
        )
        if self._stop is not None:
            return
        workflow.continue_as_new(
            self._input.model_copy(
                update={
                    "carried": SeederCarried(
                        progress=self._progress,
                        unconfirmed=self._unconfirmed,
                        credit=self._credit,
                        credit_at=self._credit_at,
                    )
                }
            )
        )

    async def _end(self, state: SeederState, note: str | None) -> SeederProgress:
        self._progress = self._progress.model_copy(
            update={"state": state, "note": note, "finished_at": workflow.now()}
        )
        self._finished = True
        self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._progress

    def _stop_note(self) -> str:
        stop = self._stop
        if stop is None:
            return "stopped"
        return f"stopped by {stop.by}" + (f": {stop.reason}" if stop.reason else "")

    def _set_state(self, state: SeederState, note: str | None) -> None:
        p = self._progress
        if p.state != state or p.note != note:
            self._progress = p.model_copy(update={"state": state, "note": note})
        self._publish()

    def _publish(self) -> None:
        p = self._progress
        lines = [
            f"**Seeder** of {md(p.pipeline)} — {p.state.value}",
            "",
            p.text(),
            "",
            f"batches {p.batches:,}, run {p.runs}",
        ]
        if p.llm.calls:
            cost = f"${p.llm.cost_usd:.4f}" if p.llm.cost_usd is not None else "unknown cost"
            lines.append(f"model calls {p.llm.calls:,} ({cost})")
        if p.last_invalid:
            lines += ["", f"last invalid row: {md(p.last_invalid[-1])}"]
        if p.last_error:
            lines += ["", f"last error: {md(p.last_error)}"]
        workflow.set_current_details("\n".join(lines))


def _cause(err: BaseException) -> str:
    """The innermost message of an activity failure (the activity's own error)."""
    while err.__cause__ is not None:
        err = err.__cause__
    return (str(err) or type(err).__name__)[:500]


def _final(err: ActivityError) -> bool:
    """Whether the activity failed in a way no later try can fix (non-retryable)."""
    cause = err.__cause__
    if not isinstance(cause, ApplicationError):
        return False
    return cause.non_retryable or cause.type in (BATCH_RETRY.non_retryable_error_types or ())


def _read_stop(raw: RawValue) -> StopSeeding:
    try:
        return decode("stop", raw, StopSeeding)
    except Undecodable as bad:
        raise ApplicationError(
            bad.result.message,
            bad.result.model_dump(mode="json"),
            type="Rejected",
            non_retryable=True,
        ) from None
