"""Bulk evaluation's payloads: the workflow's input, progress and carried state, and the
arguments and results of its activities (``activities/evaluate.py``).

Part of the contract: the workflow (``workflows/bulk_evaluate.py``), its activities and the
interfaces that start it all import these, and this module imports nothing but models.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from workflows.base import Frozen
from workflows.graph import EvaluatorSpec

BULK_SELECT_ACTIVITY = "select_tasks_to_evaluate"
"""Activity name of :meth:`activities.evaluate.EvaluateActivities.select_tasks`."""

DEFAULT_CHUNK_SIZE = 100
DEFAULT_CONCURRENCY = 4
DEFAULT_CHUNKS_PER_RUN = 250
"""Continue-as-new after this many chunks (about 2,000 history events), or sooner when the
server suggests it."""
MAX_CHUNK_SIZE = 1000
MAX_CONCURRENCY = 50
MAX_PAGE_IDS = 5000
"""The store's largest keyset page."""


class NodeEvaluator(Frozen):
    """One evaluator to run and the node whose submission it evaluates."""

    node: str = Field(min_length=1, max_length=200)
    evaluator: EvaluatorSpec

    @property
    def key(self) -> str:
        """``node.criterion@version``: how progress and errors name it."""
        return f"{self.node}.{self.evaluator.name}@{self.evaluator.version}"


class BulkState(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class BulkEvaluateProgress(Frozen):
    """Where a bulk evaluation stands: the ``progress`` query's answer and the final result.

    Counts are per evaluation (one task x one evaluator) unless named ``tasks``:
    ``evaluated + skipped_done + skipped_no_submission + errors`` equals ``tasks_seen`` times
    the number of evaluators.
    """

    pipeline: str
    evaluators: list[str]
    """``node.criterion@version`` of each evaluator."""
    state: BulkState = BulkState.RUNNING
    tasks_total: int | None = None
    """How many tasks the selection had when the run started (None until counted)."""
    tasks_not_found: int = 0
    """Explicit ids that are not tasks of the pipeline in the store."""
    tasks_seen: int = 0
    """Tasks whose chunk has finished."""
    evaluated: int = 0
    """Results written by this bulk evaluation."""
    evaluated_with_error: int = 0
    """Of ``evaluated``: results that record why the evaluator gave no verdict."""
    skipped_done: int = 0
    """Evaluations that already had a result for the same criterion version."""
    skipped_no_submission: int = 0
    """Evaluations of a node with nothing submitted yet (or not in the task's version)."""
    skip_reasons: dict[str, int] = Field(default_factory=dict)
    errors: int = 0
    """Evaluations that failed and wrote nothing (a re-run tries them again)."""
    last_errors: list[str] = Field(default_factory=list)
    chunks_done: int = 0
    chunks_running: int = 0
    runs: int = 1
    """Workflow runs so far (it continues-as-new as its history grows)."""
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def evaluations_seen(self) -> int:
        return self.evaluated + self.skipped_done + self.skipped_no_submission + self.errors

    @property
    def done(self) -> bool:
        return self.state != BulkState.RUNNING

    def text(self) -> str:
        """One line, e.g. ``1,200 / 3,000 tasks: evaluated 2,400, already done 0, ...``."""
        total = f"{self.tasks_total:,}" if self.tasks_total is not None else "?"
        parts = [
            f"{self.tasks_seen:,} / {total} tasks ({self.state.value})",
            f"evaluated {self.evaluated:,}"
            + (
                f" ({self.evaluated_with_error:,} without verdict)"
                if self.evaluated_with_error
                else ""
            ),
            f"already done {self.skipped_done:,}",
            f"not submitted {self.skipped_no_submission:,}",
            f"errors {self.errors:,}",
        ]
        if self.tasks_not_found:
            parts.append(f"ids not found {self.tasks_not_found:,}")
        return ", ".join(parts)


class BulkCarried(Frozen):
    """A run's position, handed to the next run on continue-as-new."""

    progress: BulkEvaluateProgress
    cursor: str | None
    pending: list[str]
    """Ids read from the selection but not yet handed to a chunk."""
    exhausted: bool
    """The selection has no page after ``cursor``."""


class BulkEvaluateInput(Frozen):
    """What to evaluate. ``filter`` is a :class:`store.explorer.TaskFilter` as JSON (the
    workflow never imports the store); ``{"workflow_ids": [...]}`` selects explicit tasks."""

    pipeline: str = Field(min_length=1, max_length=100)
    filter: dict[str, Any] = Field(default_factory=dict)
    evaluators: list[NodeEvaluator] = Field(min_length=1)
    chunk_size: int = Field(default=DEFAULT_CHUNK_SIZE, ge=1, le=MAX_CHUNK_SIZE)
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=MAX_CONCURRENCY)
    chunks_per_run: int = Field(default=DEFAULT_CHUNKS_PER_RUN, ge=1)
    carried: BulkCarried | None = None
    """Set on continue-as-new: where the previous run stopped."""


class SelectTasks(Frozen):
    """The selection's next page of workflow ids, after ``after`` in ``created_at`` order."""

    pipeline: str
    filter: dict[str, Any] = Field(default_factory=dict)
    after: str | None = None
    limit: int = Field(ge=1, le=MAX_PAGE_IDS)
    count: bool = False
    """Also count the whole selection (on the first page)."""


class TaskIdPage(Frozen):
    workflow_ids: list[str]
    next_cursor: str | None
    total: int | None = None
    """With ``count``: the selection's size."""
    not_found: int = 0
    """With ``count`` and explicit ids: how many are not tasks of the pipeline."""


class EvaluateChunk(Frozen):
    """One chunk: run ``evaluators`` over these tasks of ``pipeline``."""

    pipeline: str
    workflow_ids: list[str]
    evaluators: list[NodeEvaluator]


class ChunkResult(Frozen):
    """What one chunk did, counted per evaluation (see :class:`BulkEvaluateProgress`)."""

    tasks: int = 0
    evaluated: int = 0
    evaluated_with_error: int = 0
    skipped_done: int = 0
    skipped_no_submission: int = 0
    skip_reasons: dict[str, int] = Field(default_factory=dict)
    """``"<node>: <reason>"`` -> how many evaluations were skipped for it."""
    errors: int = 0
    error_messages: list[str] = Field(default_factory=list)
    """A few of the errors, for the progress."""


def bulk_evaluate_workflow_id(pipeline: str, stamp: datetime) -> str:
    """``bulk-evaluate/<pipeline>/<UTC timestamp>``: the default id of a bulk evaluation."""
    return f"bulk-evaluate/{pipeline}/{stamp:%Y%m%dT%H%M%S}Z"
