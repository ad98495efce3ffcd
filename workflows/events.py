"""Timeline events, typed: one model per :class:`~workflows.messages.EventKind` for its data.

A :class:`~workflows.messages.TimelineEvent` keeps its data as a plain dict, the shape recorded
histories, carried state and the store hold. The engine builds that dict only from these models
(:meth:`EventData.to_data`), and readers such as the store's projection read it back through
:func:`event_data`, so the keys of each kind are written down in one place. Every field has a
default, so events recorded before a field existed still read.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from workflows.base import Frozen
from workflows.messages import EvaluationRecord, EventKind, TimelineEvent

__all__ = [
    "EVENT_DATA",
    "Adjudicated",
    "ClaimReleasedByAdmin",
    "ClaimTimedOut",
    "Claimed",
    "ConsensusStep",
    "Created",
    "Deescalated",
    "DraftSaved",
    "Escalated",
    "Evaluated",
    "EventData",
    "LlmDraftFailed",
    "LlmDrafted",
    "LlmFailed",
    "LlmGenerated",
    "LlmStarted",
    "NodeStatusChanged",
    "QuarantineResolved",
    "RegenerateRequested",
    "Rejected",
    "Released",
    "Retried",
    "Reviewed",
    "SubmissionEdited",
    "Submitted",
    "Tagged",
    "TaskStatusChanged",
    "Untagged",
    "event_data",
]


class EventData(Frozen):
    """The data of one kind of timeline event. Unknown keys are ignored when read."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)
    KIND: ClassVar[EventKind]

    def to_data(self) -> dict[str, Any]:
        """The event's ``data`` dict: the fields the writer set, by their recorded names."""
        return self.model_dump(by_alias=True, exclude_unset=True)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> EventData:
        return cls.model_validate(data)


class Created(EventData):
    KIND = EventKind.CREATED
    data: dict[str, Any] = Field(default_factory=dict)
    """The seed data the task was created with."""


class _StatusChange(EventData):
    from_: str = Field(default="", alias="from")
    to: str = ""


class TaskStatusChanged(_StatusChange):
    KIND = EventKind.TASK_STATUS


class NodeStatusChanged(_StatusChange):
    KIND = EventKind.NODE_STATUS


class Claimed(EventData):
    KIND = EventKind.CLAIMED
    expires_at: str | None = None
    """ISO time the claim times out (None: it never does)."""
    slot: int | None = None
    """Consensus nodes: which of the item's ``of`` places this claim takes (1-based)."""
    of: int | None = None


class Released(EventData):
    KIND = EventKind.RELEASED


class ClaimTimedOut(EventData):
    KIND = EventKind.CLAIM_TIMEOUT
    holder: str = ""


class ClaimReleasedByAdmin(EventData):
    KIND = EventKind.CLAIM_RELEASED_BY_ADMIN
    holder: str = ""
    reason: str | None = None


class DraftSaved(EventData):
    KIND = EventKind.DRAFT_SAVED
    values: dict[str, Any] = Field(default_factory=dict)


class Submitted(EventData):
    KIND = EventKind.SUBMITTED
    values: dict[str, Any] = Field(default_factory=dict)
    attempt: int | None = None
    """1 for the first submission of the node, 2 after one rework, …"""
    answer: int | None = None
    """Consensus nodes: this answer's number on the item (1-based), of ``of`` needed."""
    of: int | None = None
    round: int | None = None
    """Consensus nodes: the round (a failed review opens a new one)."""


class Reviewed(EventData):
    KIND = EventKind.REVIEWED
    verdict: str = ""
    reason: str | None = None
    values: dict[str, Any] = Field(default_factory=dict)
    """The review form's own fields."""


class SubmissionEdited(EventData):
    KIND = EventKind.SUBMISSION_EDITED
    before: dict[str, Any] = Field(default_factory=dict)
    after: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = None


class Escalated(EventData):
    KIND = EventKind.ESCALATED


class Deescalated(EventData):
    KIND = EventKind.DEESCALATED


class QuarantineResolved(EventData):
    KIND = EventKind.QUARANTINE_RESOLVED
    action: str = ""
    reason: str | None = None


class Tagged(EventData):
    KIND = EventKind.TAGGED
    tags: list[str] = Field(default_factory=list)


class Untagged(EventData):
    KIND = EventKind.UNTAGGED
    tags: list[str] = Field(default_factory=list)


class Retried(EventData):
    KIND = EventKind.RETRIED


class LlmStarted(EventData):
    KIND = EventKind.LLM_STARTED


class LlmGenerated(EventData):
    KIND = EventKind.LLM_RESULT
    values: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None


class LlmFailed(EventData):
    KIND = EventKind.LLM_FAILED


class LlmDrafted(EventData):
    KIND = EventKind.LLM_DRAFT
    run: int = 0
    values: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None


class LlmDraftFailed(EventData):
    KIND = EventKind.LLM_DRAFT_FAILED
    run: int = 0
    error: str = ""


class RegenerateRequested(EventData):
    KIND = EventKind.REGENERATE_REQUESTED
    run: int = 0
    """The draft run asked for."""


class Rejected(EventData):
    KIND = EventKind.REJECTED
    request_id: str | None = None
    field_errors: dict[str, str] = Field(default_factory=dict)
    problems: list[dict[str, Any]] | None = None
    """Set when the payload could not be read as its command: each ``{"at", "problem"}``."""


class ConsensusStep(EventData):
    """A consensus item's answers were compared: it agreed, needs one more person, goes to
    adjudication, is escalated or quarantined, or a failed review opened a new round."""

    KIND = EventKind.CONSENSUS
    outcome: str = ""
    """``agreed``, ``more``, ``adjudicate``, ``escalate``, ``quarantine`` or ``new_round``."""
    agreement: float | None = None
    confidence: float | None = None
    answers: int = 0
    needed: int = 0
    values: dict[str, Any] = Field(default_factory=dict)
    """The merged answer."""
    fields: dict[str, Any] = Field(default_factory=dict)
    """Per field: its agreement, confidence and merged value."""


class Adjudicated(EventData):
    """An adjudicator settled a consensus item."""

    KIND = EventKind.ADJUDICATED
    target: str = ""
    """The consensus node settled."""
    picked: str | None = None
    values: dict[str, Any] = Field(default_factory=dict)
    """The final answer."""
    before: dict[str, Any] = Field(default_factory=dict)
    """The merged answer the adjudicator replaced."""
    reason: str | None = None


class Evaluated(EventData):
    """An ``evaluated`` event: its data is the evaluation record itself (as JSON)."""

    KIND = EventKind.EVALUATED
    record: EvaluationRecord

    def to_data(self) -> dict[str, Any]:
        return self.record.model_dump(mode="json")

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Evaluated:
        return cls(record=EvaluationRecord.model_validate(data))


EVENT_DATA: dict[EventKind, type[EventData]] = {
    cls.KIND: cls
    for cls in (
        Created,
        TaskStatusChanged,
        NodeStatusChanged,
        Claimed,
        Released,
        ClaimTimedOut,
        ClaimReleasedByAdmin,
        DraftSaved,
        Submitted,
        Reviewed,
        SubmissionEdited,
        Escalated,
        Deescalated,
        QuarantineResolved,
        Tagged,
        Untagged,
        Retried,
        LlmStarted,
        LlmGenerated,
        LlmFailed,
        LlmDrafted,
        LlmDraftFailed,
        RegenerateRequested,
        Rejected,
        Evaluated,
        ConsensusStep,
        Adjudicated,
    )
}
"""The data model of every event kind."""


def event_data(event: TimelineEvent) -> EventData:
    """The typed data of ``event``.

    Raises:
        ValueError: its kind is not an :class:`~workflows.messages.EventKind`.
        pydantic.ValidationError: its data does not fit its kind's model.
    """
    return EVENT_DATA[EventKind(event.kind)].from_data(event.data)
