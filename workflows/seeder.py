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
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from pydantic import Field, model_validator

    from workflows.base import Frozen
    from workflows.markdown import md
    from workflows.payloads import Undecodable, decode

SEEDER_WORKFLOW = "Seeder"
"""Workflow type of :class:`SeederWorkflow`."""
SEED_BATCH_ACTIVITY = "seed_batch"
"""Activity name of :meth:`activities.seeding.SeedingActivities.seed_batch`."""
IN_FLIGHT_ACTIVITY = "seed_in_flight_count"
"""Activity name of :meth:`activities.seeding.SeedingActivities.in_flight_count`."""

SOURCE_FAILED = "SeedSourceFailed"
"""``ApplicationError.type`` of a source that cannot give rows (non-retryable)."""

DEFAULT_BATCH_SIZE = 20
MAX_BATCH_SIZE = 500
MAX_IN_FLIGHT = 100_000
MAX_RATE_PER_MINUTE = 60_000.0
DEFAULT_POLL_SECONDS = 5.0
"""How long the seeder waits when there is nothing to create (in-flight mode)."""
DEFAULT_RECHECK_SECONDS = 30.0
"""How long it waits before looking again at a pipeline that takes no tasks, or after a batch
that failed on every retry."""
DEFAULT_ROUNDS_PER_RUN = 100
"""Continue-as-new after this many rounds (a round is about ten history events)."""
DEFAULT_KEY_PREFIX = "seed"
UNCONFIRMED_TTL = timedelta(minutes=10)
"""A created task the store has not shown after this long stops counting as in flight."""
INVALID_KEPT = 10
"""How many invalid-row reasons the progress keeps (the most recent)."""
REASON_CHARS = 200

BATCH_START_TO_CLOSE = timedelta(minutes=10)
BATCH_HEARTBEAT = timedelta(minutes=2)
"""The batch heartbeats after each row and each model call; a call may take a minute."""
BATCH_RETRY = RetryPolicy(
    # Temporal unreachable from the activity, a store hiccup, a model rate limit: try again.
    # After the last attempt the seeder notes the error and tries again a little later.
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=10,
    non_retryable_error_types=[SOURCE_FAILED, "InvalidPromptTemplate"],
)
COUNT_START_TO_CLOSE = timedelta(seconds=30)
COUNT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)

_KEY_PREFIX_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"


# --------------------------------------------------------------------------- sources


class FileSource(Frozen):
    """A CSV (header row: the dataset fields), JSON Lines or JSON-array file, cycled."""

    kind: Literal["file"] = "file"
    path: str = Field(min_length=1, max_length=1000)
    """Read by the workers: give a path they can all reach (an absolute one is best)."""

    def describe(self) -> str:
        return f"file {self.path}"


class GeneratorSource(Frozen):
    """``package.module:function``, called with no arguments, returning an iterator of dicts.

    It must yield the same items in the same order on every call: the seeder resumes it by
    skipping the items it has used. A function with a ``start`` parameter is called as
    ``function(start=n)`` instead and must begin at item ``n`` (no skipping needed).
    """

    kind: Literal["generator"] = "generator"
    target: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", max_length=300)

    def describe(self) -> str:
        return f"generator {self.target}"


class LlmSource(Frozen):
    """A prompt asking a model for ``rows_per_call`` new rows per call.

    ``prompt`` and ``system`` are Jinja2 templates over ``n`` (rows wanted), ``call`` (the call's
    number, from 0), ``pipeline`` (its name) and ``fields`` (the dataset field names). The
    format instructions (a JSON object ``{"rows": [...]}`` with the dataset fields) are added.
    """

    kind: Literal["llm"] = "llm"
    model: str = Field(default="conveyor/offline", min_length=1, max_length=200)
    prompt: str = Field(min_length=1)
    system: str = ""
    rows_per_call: int = Field(default=10, ge=1, le=100)
    api_base: str | None = None
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=4096, gt=0)

    def describe(self) -> str:
        return f"model {self.model}"


SeedSource = Annotated[FileSource | GeneratorSource | LlmSource, Field(discriminator="kind")]


def file_key(prefix: str, cycle: int, row: int) -> str:
    """``seed-c{cycle}-r{row}``: row ``row`` (from 0, header excluded) in pass ``cycle``."""
    return f"{prefix}-c{cycle}-r{row}"


def generator_key(prefix: str, index: int) -> str:
    """``seed-g{index}``: the generator's item number ``index`` (from 0)."""
    return f"{prefix}-g{index}"


def llm_key(prefix: str, call: int, row: int) -> str:
    """``seed-l{call}-{row}``: row ``row`` of the model's reply to call ``call``."""
    return f"{prefix}-l{call}-{row}"


class PendingRow(Frozen):
    """A row the model generated and the seeder has not used yet (valid for the pipeline)."""

    key: str
    data: dict[str, Any]


class SeedCursor(Frozen):
    """Where the source stands: the next row to use."""

    cycle: int = Field(default=0, ge=0)
    """file: completed passes over the file."""
    row: int = Field(default=0, ge=0)
    """file: the next row of the current pass."""
    index: int = Field(default=0, ge=0)
    """generator: items consumed."""
    calls: int = Field(default=0, ge=0)
    """llm: calls made."""
    pending: list[PendingRow] = Field(default_factory=list)
    """llm: valid rows of the last call not used yet (taken first by the next batch)."""

    def describe(self, kind: str) -> str:
        if kind == "file":
            return f"pass {self.cycle}, row {self.row}"
        if kind == "generator":
            return f"item {self.index}"
        return f"{self.calls} call(s), {len(self.pending)} row(s) left over"


# --------------------------------------------------------------------------- activities


class SeedBatch(Frozen):
    """Create up to ``count`` tasks of ``pipeline`` from ``source``, starting at ``cursor``."""

    pipeline: str
    source: SeedSource
    cursor: SeedCursor
    count: int = Field(ge=1, le=MAX_BATCH_SIZE)
    key_prefix: str = DEFAULT_KEY_PREFIX


class SeedOutcome(StrEnum):
    CREATED = "created"
    EXISTED = "existed"
    """A task with that key was there already (e.g. created by an earlier try of the batch)."""
    INVALID = "invalid"
    """The row does not fit the pipeline's dataset fields; it is skipped."""


class SeededRow(Frozen):
    key: str
    outcome: SeedOutcome
    reason: str | None = None
    """Why an invalid row was skipped (short)."""


class LlmUsage(Frozen):
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    """None once any call's price is unknown."""


class SeedBatchResult(Frozen):
    cursor: SeedCursor
    """Where the next batch starts."""
    rows: list[SeededRow] = Field(default_factory=list)
    waiting: str | None = None
    """The pipeline takes no tasks now (why); nothing was read or created."""
    exhausted: bool = False
    """The source has no more rows (a generator that ended)."""
    llm: LlmUsage = Field(default_factory=LlmUsage)


class InFlightQuery(Frozen):
    """Count the pipeline's unfinished tasks in the store; say which of ``keys`` it lacks."""

    pipeline: str
    keys: list[str] = Field(default_factory=list)


class InFlightCount(Frozen):
    unfinished: int
    """Tasks of the pipeline in the store whose status is not Finished."""
    missing: list[str] = Field(default_factory=list)
    """Of the keys asked about, those with no task in the store yet."""


# --------------------------------------------------------------------------- workflow payloads


class SeederState(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    """The pipeline takes no tasks now, or a batch failed; the reason is in ``note``."""
    STOPPED = "stopped"
    COMPLETED = "completed"
    """``max_tasks`` rows became tasks."""
    EXHAUSTED = "exhausted"
    FAILED = "failed"


class StopSeeding(Frozen):
    by: str = Field(default="operator", min_length=1, max_length=200)
    reason: str | None = None


class Unconfirmed(Frozen):
    """A task the seeder created (or found) that the store has not shown yet."""

    key: str
    at: datetime


class SeederProgress(Frozen):
    """Where a seeder stands: the ``progress`` query's answer and the final result."""

    pipeline: str
    source: SeedSource
    key_prefix: str = DEFAULT_KEY_PREFIX
    in_flight_target: int | None = None
    rate_per_minute: float | None = None
    max_tasks: int | None = None
    state: SeederState = SeederState.RUNNING
    note: str | None = None
    """Why it waits, failed or stopped."""
    cursor: SeedCursor = Field(default_factory=SeedCursor)
    created: int = 0
    existed: int = 0
    """Rows whose task was already there (``created + existed`` rows became tasks)."""
    invalid: int = 0
    last_invalid: list[str] = Field(default_factory=list)
    """``key: reason`` of the most recent invalid rows."""
    in_flight: int | None = None
    """In-flight mode: the last count of unfinished tasks."""
    batches: int = 0
    runs: int = 1
    llm: LlmUsage = Field(default_factory=LlmUsage)
    last_error: str | None = None
    started_at: datetime | None = None
    last_batch_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def taken(self) -> int:
        """Rows that became tasks (created now or found created)."""
        return self.created + self.existed

    @property
    def done(self) -> bool:
        return self.state in (
            SeederState.STOPPED,
            SeederState.COMPLETED,
            SeederState.EXHAUSTED,
            SeederState.FAILED,
        )

    def mode(self) -> str:
        if self.in_flight_target is not None:
            return f"keep {self.in_flight_target:,} in flight"
        return f"{self.rate_per_minute:g} per minute"

    def text(self) -> str:
        """One line, e.g. ``running: created 120, existed 0, invalid 2 (file a.csv, ...)``."""
        parts = [
            f"{self.state.value}: created {self.created:,}, existed {self.existed:,}, "
            f"invalid {self.invalid:,}",
            self.source.describe(),
            self.cursor.describe(self.source.kind),
            self.mode(),
        ]
        if self.max_tasks is not None:
            parts.append(f"up to {self.max_tasks:,}")
        if self.in_flight is not None:
            parts.append(f"{self.in_flight:,} in flight")
        line = ", ".join(parts)
        return f"{line} — {self.note}" if self.note else line


class SeederCarried(Frozen):
    """A run's position, handed to the next run on continue-as-new."""

    progress: SeederProgress
    unconfirmed: list[Unconfirmed] = Field(default_factory=list)
    credit: float = 0.0
    """Rate mode: tasks owed (fractional)."""
    credit_at: datetime | None = None


class SeederInput(Frozen):
    """What to seed, from where, and how fast. Exactly one of ``in_flight`` and
    ``rate_per_minute``."""

    pipeline: str = Field(min_length=1, max_length=100)
    source: SeedSource
    in_flight: int | None = Field(default=None, ge=1, le=MAX_IN_FLIGHT)
    rate_per_minute: float | None = Field(default=None, gt=0, le=MAX_RATE_PER_MINUTE)
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, le=MAX_BATCH_SIZE)
    max_tasks: int | None = Field(default=None, ge=1)
    """Stop after this many rows became tasks."""
    key_prefix: str = Field(default=DEFAULT_KEY_PREFIX, pattern=_KEY_PREFIX_PATTERN)
    """Keys are ``<prefix>-<position>``; another source on the same pipeline needs its own."""
    cursor: SeedCursor = Field(default_factory=SeedCursor)
    """Where to start (a stopped seeder's cursor, to carry on after it)."""
    poll_seconds: float = Field(default=DEFAULT_POLL_SECONDS, gt=0)
    recheck_seconds: float = Field(default=DEFAULT_RECHECK_SECONDS, gt=0)
    rounds_per_run: int = Field(default=DEFAULT_ROUNDS_PER_RUN, ge=1)
    carried: SeederCarried | None = None
    """Set on continue-as-new: where the previous run stopped."""

    @model_validator(mode="after")
    def _one_mode(self) -> SeederInput:
        if (self.in_flight is None) == (self.rate_per_minute is None):
            raise ValueError("give exactly one of in_flight and rate_per_minute")
        return self


def seeder_workflow_id(pipeline: str) -> str:
    """``seeder:<pipeline>`` (``:`` never occurs in a pipeline name, so no task id clashes)."""
    return f"seeder:{pipeline}"


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
