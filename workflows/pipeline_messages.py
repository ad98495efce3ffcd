"""The pipeline workflow's contract: statuses, commands, state, view, and the payloads of its
activities (sweeps, projection, completion checks, chains).

Frozen pydantic models like every payload of :mod:`workflows.messages`, whose request ids and
person names they share.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from workflows.base import Frozen
from workflows.graph import ChainSpec, Pipeline
from workflows.messages import Person, RequestId, _State


class PipelineStatus(StrEnum):
    """The five pipeline statuses. Tasks can be created while Active or Paused (they then start
    Paused); a Paused pipeline's tasks are Paused and hidden from work queues."""

    DRAFT = "Draft"
    ACTIVE = "Active"
    PAUSED = "Paused"
    COMPLETED = "Completed"
    """No new tasks; the ones there finish. ``on_pipeline_completion`` chains fire once every
    task is Finished."""
    ARCHIVED = "Archived"
    """Read-only: no new tasks, no status changes."""


PIPELINE_TRANSITIONS: dict[PipelineStatus, tuple[PipelineStatus, ...]] = {
    PipelineStatus.DRAFT: (PipelineStatus.ACTIVE, PipelineStatus.ARCHIVED),
    PipelineStatus.ACTIVE: (PipelineStatus.PAUSED, PipelineStatus.COMPLETED),
    PipelineStatus.PAUSED: (PipelineStatus.ACTIVE,),
    PipelineStatus.COMPLETED: (PipelineStatus.ACTIVE, PipelineStatus.ARCHIVED),
    PipelineStatus.ARCHIVED: (),
}
"""Which status each status may move to (``activate``/``resume`` both lead to Active)."""

ACCEPTS_TASKS = (PipelineStatus.ACTIVE, PipelineStatus.PAUSED)


class ApplyVersion(Frozen):
    """Apply a definition: a new content hash becomes a new immutable version and the one new
    tasks are created with; the same content again changes nothing."""

    request_id: RequestId
    pipeline: Pipeline
    by: Person = "system"


class ChangeStatus(Frozen):
    """Move a pipeline to ``to`` (see :data:`PIPELINE_TRANSITIONS`)."""

    request_id: RequestId
    to: PipelineStatus
    by: Person = "system"
    reason: str | None = None


class PipelineVersionInfo(Frozen):
    hash: str
    applied_at: datetime
    applied_by: str


class PipelineEvent(Frozen):
    at: datetime
    actor: str
    message: str


class SweepProgress(Frozen):
    """The pause or resume fan-out over a pipeline's tasks."""

    action: Literal["pause", "resume"]
    epoch: int
    round: int = 0
    signalled: int = 0
    remaining: int | None = None
    """Tasks still not Paused after the last pause round (None before the first)."""
    done: bool = False


class PipelineCommandResult(Frozen):
    request_id: str
    accepted: bool
    message: str
    status: PipelineStatus
    version: str | None = None
    new_version: bool = False


class PipelineState(_State):
    """Everything a PipelineWorkflow holds; carried across continue-as-new."""

    name: str
    status: PipelineStatus = PipelineStatus.DRAFT
    current: Pipeline | None = None
    versions: list[PipelineVersionInfo] = Field(default_factory=list)
    epoch: int = 0
    """Pause/resume generation: each pause or resume starts a new fan-out."""
    sweep: SweepProgress | None = None
    events: list[PipelineEvent] = Field(default_factory=list)
    responses: dict[str, PipelineCommandResult] = Field(default_factory=dict)
    completion_fired: bool = False
    """``on_pipeline_completion`` chains have created their batch."""
    blocked_by: dict[str, int] = Field(default_factory=dict)
    """While Completed: task counts by status that keep completion chains from firing."""


class PipelineInput(Frozen):
    name: str
    carried: PipelineState | None = None
    recheck_seconds: float | None = None
    """How often a Paused pipeline re-checks its tasks (and a Completed one its completion
    chains); the default is ``workflows.options.PIPELINE_RECHECK``."""


class PipelineView(Frozen):
    """The ``describe`` query's answer."""

    name: str
    status: PipelineStatus
    current_version: str | None
    current: Pipeline | None
    versions: list[PipelineVersionInfo]
    sweep: SweepProgress | None
    events: list[PipelineEvent]
    completion_fired: bool
    blocked_by: dict[str, int]
    accepts_tasks: bool
    """Active or Paused: tasks may be created (in a Paused pipeline they start Paused)."""


class SweepRequest(Frozen):
    """One round of a pipeline's pause or resume fan-out (activity input)."""

    pipeline: str
    action: Literal["pause", "resume"]
    epoch: int
    round: int
    concurrency: int = 50


class SweepResult(Frozen):
    signalled: int
    remaining: int
    """pause: tasks of the pipeline the store still shows neither Paused nor Finished."""


class PipelineProjection(Frozen):
    """What the store records of a pipeline: its status, current version and definitions."""

    name: str
    status: PipelineStatus
    current: Pipeline | None
    versions: list[Pipeline] = Field(default_factory=list)
    """Definitions to store (new versions since the last projection)."""


class CompletionCheck(Frozen):
    pipeline: str


class CompletionStatus(Frozen):
    """Task counts by status of a Completed pipeline (from the store)."""

    counts: dict[str, int]
    total: int


class FireCompletionChains(Frozen):
    """Create the ``on_pipeline_completion`` chains' batch: one target task per Finished task
    of ``pipeline`` (activity input; the activity returns how many tasks it created)."""

    pipeline: Pipeline


class FireTaskChains(Frozen):
    """A Finished task's ``on_task_completion`` chains: one target task per chain (activity
    input). Firing again creates nothing new: the target keys derive from the source task."""

    pipeline: str
    """The source pipeline's name."""
    task_key: str
    workflow_id: str
    data: dict[str, Any]
    """The source task's data: seed data and every field value, by name and as ``node.field``
    (:func:`workflows.engine.task_data`)."""
    chains: list[ChainSpec]


class ChainsFired(Frozen):
    """What :class:`FireTaskChains` did, by target task workflow id."""

    created: list[str] = Field(default_factory=list)
    existing: list[str] = Field(default_factory=list)
    """Already there (the chain fired before): nothing new was created."""
