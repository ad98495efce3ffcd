"""The seeder's contract: its settings, sources, cursor, activity payloads and progress.

Imported by the seeder workflow (``workflows.seeder``) and its activities
(``activities.seeding``), so that activities never import the workflow module. Pure models and
constants; no Temporal, no I/O.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from temporalio.common import RetryPolicy

from workflows.base import Frozen

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
