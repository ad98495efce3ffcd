"""Every payload that crosses a Temporal boundary: workflow input, commands, results, views.

One frozen pydantic model per update / signal / query / activity argument and result, so new
optional fields can be added without breaking running workflows. Commands are spelled in the
product's vocabulary (``Claim``, ``Submit``, ``Review``…), and each carries a ``request_id``:
repeating a command with the same ``request_id`` returns the first answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from workflows.base import Frozen
from workflows.graph import EvaluatorSpec, FieldSpec, LlmSpec, Pipeline


class TaskStatus(StrEnum):
    """The seven task states."""

    PENDING = "Pending"
    IN_PROGRESS = "In Progress"
    PAUSED = "Paused"
    FINISHED = "Finished"
    ESCALATED = "Escalated"
    QUARANTINED = "Quarantined"
    FAILED = "Failed"


class NodeStatus(StrEnum):
    """The nine node-instance states."""

    PENDING = "Pending"
    AVAILABLE = "Available"
    CLAIMED = "Claimed"
    SUBMITTED = "Submitted"
    FINISHED = "Finished"
    ESCALATED = "Escalated"
    QUARANTINED = "Quarantined"
    NA = "N/A"
    DEFERRED = "Deferred"


class _State(BaseModel):
    # Mutable on purpose: the engine deep-copies a task's state once per command and then
    # mutates the copy, which keeps transitions readable.
    model_config = ConfigDict(extra="forbid")


RequestId = Annotated[str, Field(min_length=1, max_length=200)]
Person = Annotated[str, Field(min_length=1, max_length=200)]
NodeName = Annotated[str, Field(min_length=1, max_length=200)]


# --------------------------------------------------------------------------- evaluations


class EvaluationKind(StrEnum):
    PROGRAMMATIC = "programmatic"
    LLM_JUDGE = "llm_judge"
    HUMAN = "human"


class EvaluationRecord(Frozen):
    """One evaluator's verdict on a node's fields (programmatic, LLM judge or human rating)."""

    criterion: str
    version: str
    """The criterion's version: :attr:`EvaluatorSpec.version`, or ``human:<field>``."""
    kind: EvaluationKind
    evaluator: str
    """The evaluator kind (``regex``, ``pii``, ``llm_judge``…) or the human field's type."""
    mode: str = "hidden"
    node: str
    fields: list[str]
    """The target fields."""
    score: float | None = None
    """Programmatic: 1.0 pass / 0.0 fail. Judge and human: the numeric score (booleans 1/0)."""
    passed: bool | None = None
    """None when the criterion gives no verdict (e.g. a rating without a threshold)."""
    label: str | None = None
    """boolean / categorical verdicts: the label (``true`` / ``false`` for booleans)."""
    reasoning: str | None = None
    actor: str | None = None
    """The rating contributor, or ``llm:<model>`` for a judge."""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    error: str | None = None
    """Why the evaluator could not give a verdict (score and passed are then None)."""
    at: datetime | None = None
    seq: int = 0
    """The task's event sequence number when recorded (0 for bulk evaluations)."""


# --------------------------------------------------------------------------- contributor commands


class Claim(Frozen):
    """Take a node for work. Without ``node``, the first node this contributor may claim."""

    type: Literal["claim"] = "claim"
    request_id: RequestId
    contributor: Person
    roles: list[str] = Field(default_factory=list)
    node: NodeName | None = None


class Release(Frozen):
    """Give a claimed node back; the draft is kept for whoever claims it next."""

    type: Literal["release"] = "release"
    request_id: RequestId
    contributor: Person
    node: NodeName
    token: str


class SaveDraft(Frozen):
    """Store unfinished values on a claimed node (not validated until submit)."""

    type: Literal["save_draft"] = "save_draft"
    request_id: RequestId
    contributor: Person
    node: NodeName
    token: str
    values: dict[str, Any]


class Submit(Frozen):
    """Hand in a claimed subtask's form. ``token`` must be the live claim's token."""

    type: Literal["submit"] = "submit"
    request_id: RequestId
    contributor: Person
    node: NodeName
    token: str
    values: dict[str, Any]


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"


class Regenerate(Frozen):
    """Ask the model again for the LLM fields of a claimed node that mixes input and LLM fields.

    The new values replace the LLM fields of the draft when they arrive (the ``llm_draft``
    timeline event); the contributor's own fields are left alone.
    """

    type: Literal["regenerate"] = "regenerate"
    request_id: RequestId
    contributor: Person
    node: NodeName
    token: str


class Review(Frozen):
    """Pass or fail the submission under a claimed review node. A fail needs a reason."""

    type: Literal["review"] = "review"
    request_id: RequestId
    contributor: Person
    node: NodeName
    token: str
    verdict: Verdict
    reason: str | None = None
    values: dict[str, Any] = Field(default_factory=dict)


class Adjudicate(Frozen):
    """Settle a consensus item under a claimed adjudicate node: take one annotator's answer
    (``pick``), write the final answer (``values``), or both (``values`` then correct the picked
    answer). A reason is required."""

    type: Literal["adjudicate"] = "adjudicate"
    request_id: RequestId
    contributor: Person
    node: NodeName
    token: str
    pick: Person | None = None
    """The annotator whose answer becomes the final one."""
    values: dict[str, Any] = Field(default_factory=dict)
    """The final answer's fields (over the picked answer, if any)."""
    reason: str | None = None


class Pause(Frozen):
    type: Literal["pause"] = "pause"
    request_id: RequestId
    by: Person = "system"
    reason: str | None = None


class Activate(Frozen):
    """Make a Pending task available for work (its pipeline became active)."""

    type: Literal["activate"] = "activate"
    request_id: RequestId
    by: Person = "system"


class Resume(Frozen):
    type: Literal["resume"] = "resume"
    request_id: RequestId
    by: Person = "system"
    only_paused_by: str | None = None
    """Resume only a task that ``only_paused_by`` paused (a pipeline resuming its tasks leaves
    the ones an operator paused alone)."""


# --------------------------------------------------------------------------- admin commands


class EditSubmission(Frozen):
    """Admin: replace submitted values of a node; the timeline keeps before and after."""

    type: Literal["edit_submission"] = "edit_submission"
    request_id: RequestId
    admin: Person
    node: NodeName
    values: dict[str, Any]
    reason: str | None = None


class ReleaseClaim(Frozen):
    """Admin: release whatever claim is live on a node."""

    type: Literal["release_claim"] = "release_claim"
    request_id: RequestId
    admin: Person
    node: NodeName
    reason: str | None = None
    holder: Person | None = None
    """Whose claim: needed on a consensus node while several people hold places on it."""


class Escalate(Frozen):
    type: Literal["escalate"] = "escalate"
    request_id: RequestId
    admin: Person
    reason: str = Field(min_length=1)


class Deescalate(Frozen):
    type: Literal["deescalate"] = "deescalate"
    request_id: RequestId
    admin: Person
    reason: str | None = None


class QuarantineAction(StrEnum):
    REWORK = "rework"
    """Send the submission back for rework with the re-review counter reset."""
    FINISH = "finish"
    """Accept the submission as it stands and carry on down the pipeline."""
    FAIL = "fail"
    """Give up on the task: it becomes Failed."""


class ResolveQuarantine(Frozen):
    type: Literal["resolve_quarantine"] = "resolve_quarantine"
    request_id: RequestId
    admin: Person
    action: QuarantineAction
    reason: str | None = None


class Tag(Frozen):
    type: Literal["tag"] = "tag"
    request_id: RequestId
    by: Person
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=1)


class Untag(Frozen):
    type: Literal["untag"] = "untag"
    request_id: RequestId
    by: Person
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=1)


class RetryFailed(Frozen):
    """Admin: put a Failed task back where it was, re-running what failed."""

    type: Literal["retry"] = "retry"
    request_id: RequestId
    admin: Person
    reason: str | None = None


# --------------------------------------------------------------------------- internal commands
# Issued by the workflow itself (timers, LLM activity results), never by callers.


class ClaimTimeout(Frozen):
    type: Literal["claim_timeout"] = "claim_timeout"
    request_id: RequestId
    node: NodeName
    token: str


class LlmStarted(Frozen):
    type: Literal["llm_started"] = "llm_started"
    request_id: RequestId
    node: NodeName


class LlmResult(Frozen):
    type: Literal["llm_result"] = "llm_result"
    request_id: RequestId
    node: NodeName
    values: dict[str, Any]
    model: str | None = None


class LlmFailure(Frozen):
    type: Literal["llm_failure"] = "llm_failure"
    request_id: RequestId
    node: NodeName
    reason: str


class LlmDraft(Frozen):
    """The LLM fields of a mixed node, generated as an editable draft (run ``run``)."""

    type: Literal["llm_draft"] = "llm_draft"
    request_id: RequestId
    node: NodeName
    run: int
    values: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    error: str | None = None
    """Set when generation failed: the contributor fills the fields or asks again."""


class JudgeResult(Frozen):
    """An LLM judge's verdict on a node's submission number ``run``."""

    type: Literal["judge_result"] = "judge_result"
    request_id: RequestId
    node: NodeName
    run: int
    record: EvaluationRecord


Command = Annotated[
    Claim
    | Release
    | SaveDraft
    | Submit
    | Review
    | Adjudicate
    | Pause
    | Resume
    | Activate
    | EditSubmission
    | ReleaseClaim
    | Escalate
    | Deescalate
    | ResolveQuarantine
    | Tag
    | Untag
    | RetryFailed
    | ClaimTimeout
    | LlmStarted
    | LlmResult
    | LlmFailure
    | Regenerate
    | LlmDraft
    | JudgeResult,
    Field(discriminator="type"),
]

TASK_COMMANDS: dict[str, type[Frozen]] = {
    model.model_fields["type"].default: model
    for model in (
        Claim,
        Release,
        SaveDraft,
        Submit,
        Regenerate,
        Review,
        Adjudicate,
        Pause,
        Resume,
        Activate,
        EditSubmission,
        ReleaseClaim,
        Escalate,
        Deescalate,
        ResolveQuarantine,
        Tag,
        Untag,
        RetryFailed,
    )
}
"""The commands a task takes from outside, by name: each is an update and a signal of that name
on ``TaskWorkflow``. The others in :data:`Command` come from the workflow itself."""

COMMAND_TYPES: tuple[type[Frozen], ...] = get_args(get_args(Command)[0])
"""Every member of :data:`Command`: the engine has a handler for each."""

INTERNAL_COMMANDS: dict[str, type[Frozen]] = {
    model.model_fields["type"].default: model
    for model in COMMAND_TYPES
    if model not in TASK_COMMANDS.values()
}
"""The commands the workflow issues to itself (timers, LLM and judge results): never sendable."""

ACTOR_FIELDS = ("contributor", "admin", "by")
"""The fields naming who sends a command; each command has exactly one of them."""


def actor_field(model: type[Frozen]) -> str:
    """The field of a :data:`TASK_COMMANDS` model that names its sender (``contributor``,
    ``admin`` or ``by``): interfaces fill it with the signed-in user, never from input."""
    found = [name for name in ACTOR_FIELDS if name in model.model_fields]
    if len(found) != 1:
        raise TypeError(f"{model.__name__} names its sender in {found or 'no field'}")
    return found[0]


class Problem(Frozen):
    """One thing wrong with a command's payload: where (``at``, a dotted path) and what."""

    at: str
    problem: str


class CommandResult(Frozen):
    """The answer to a command. Rejections carry a reason and, for forms, per-field errors."""

    request_id: str
    command: str
    accepted: bool
    message: str
    node: str | None = None
    token: str | None = None
    """claim only: the token the contributor must present to save, submit, review or release."""
    field_errors: dict[str, str] = Field(default_factory=dict)
    status: TaskStatus | None = None
    """The task's status after the command."""
    seq: int = 0
    """The task's event sequence number after the command (0 for a rejection)."""
    evaluations: list[EvaluationRecord] = Field(default_factory=list)
    """save_draft and submit: the node's inline evaluators' verdicts, for the contributor."""
    problems: list[Problem] = Field(default_factory=list)
    """A payload that could not be read as the command: each problem, where and what."""
    actor: str | None = None
    """Who sent the command first; a repeat of its request_id from anyone else is refused."""
    code: str | None = None
    """A rejection's kind where callers act on it: ``claim_limit``."""


# --------------------------------------------------------------------------- state


class ClaimInfo(Frozen):
    holder: str
    token: str
    claimed_at: datetime
    expires_at: datetime | None
    """None while the task is paused (the timer is frozen; see ``remaining_seconds``)."""
    remaining_seconds: float | None = None
    returns_to: NodeStatus = NodeStatus.AVAILABLE
    """The node status a release puts back (Escalated for an escalation reviewer's claim)."""


class ReviewRecord(Frozen):
    reviewer: str
    verdict: Verdict
    reason: str | None = None
    values: dict[str, Any] = Field(default_factory=dict)
    at: datetime


class Slot(_State):
    """One person's place on a consensus item: their live claim and their own draft."""

    claim: ClaimInfo
    draft: dict[str, Any] = Field(default_factory=dict)


class Answer(Frozen):
    """One annotator's accepted answer on a consensus item."""

    by: str
    values: dict[str, Any]
    at: datetime
    round: int = 1


class FieldConsensus(Frozen):
    """How one field's answers on one item came together."""

    value: Any = None
    """The merged answer (None for a field that does not vote and is carried)."""
    agreement: float | None = None
    """This item's agreement on the field, 0..1 (None: the field does not vote)."""
    confidence: float | None = None
    """How much the merged value is backed by the answers, 0..1 (e.g. the majority's share)."""
    rule: str = ""
    aggregate: str = ""


class ConsensusResult(Frozen):
    """The merged answer of a consensus item, as the engine worked it out (or an adjudicator
    settled it)."""

    values: dict[str, Any]
    fields: dict[str, FieldConsensus] = Field(default_factory=dict)
    agreement: float | None = None
    """The lowest agreement over the counted fields."""
    confidence: float | None = None
    """The lowest confidence over the counted fields."""
    agreed: bool
    """Every counted field reached the threshold (and no field asks for adjudication)."""
    answers: int
    adjudicated_by: str | None = None
    adjudication_reason: str | None = None
    picked: str | None = None
    """The annotator whose answer the adjudicator took, if any."""


class ConsensusState(_State):
    """A consensus node's slots, answers and merged result."""

    needed: int
    """How many answers the item takes now (``annotators``, more under adaptive overlap)."""
    slots: list[Slot] = Field(default_factory=list)
    answers: list[Answer] = Field(default_factory=list)
    """This round's answers, in the order they arrived."""
    earlier: list[Answer] = Field(default_factory=list)
    """Answers of earlier rounds (before a failed review opened a new one)."""
    round: int = 1
    opened_at: datetime | None = None
    """When the item was first offered (the work queue's place under ``finish_first``)."""
    result: ConsensusResult | None = None

    def answered(self) -> set[str]:
        """Everyone who answered this item, in any round."""
        return {a.by for a in self.answers} | {a.by for a in self.earlier}

    def open_slots(self) -> int:
        return max(0, self.needed - len(self.answers) - len(self.slots))

    def slot_of(self, holder: str) -> Slot | None:
        return next((s for s in self.slots if s.claim.holder == holder), None)


class NodeState(_State):
    """One node instance of a task."""

    name: str
    status: NodeStatus = NodeStatus.PENDING
    claim: ClaimInfo | None = None
    values: dict[str, Any] = Field(default_factory=dict)
    """The last accepted submission (or LLM output)."""
    draft: dict[str, Any] = Field(default_factory=dict)
    submitted_by: str | None = None
    submitted_at: datetime | None = None
    attempts: int = 0
    """Accepted submissions so far."""
    # rework of a subtask after a failed review
    rework_reason: str | None = None
    rework_only: str | None = None
    """same_person routing: only this contributor may claim the rework."""
    rework_exclude: str | None = None
    """pool_exclude routing: this contributor may not claim the rework."""
    # review nodes
    passes: int = 0
    failures: int = 0
    total_failures: int = 0
    """Failed reviews since the last reset; more than ``max_rereviews`` hits the limit."""
    last_review: ReviewRecord | None = None
    # LLM nodes
    llm_runs: int = 0
    error: str | None = None
    # nodes mixing input and LLM fields: LLM drafts asked for / arrived
    llm_draft_wanted: int = 0
    llm_draft_runs: int = 0
    # evaluators
    evaluations: dict[str, EvaluationRecord] = Field(default_factory=dict)
    """The latest verdict per ``<criterion>:<version>`` on this node's submission."""
    judge_run: int = 0
    """Submissions judged so far (a judge's verdict must be for the current one)."""
    judges_pending: list[str] = Field(default_factory=list)
    """LLM judges (evaluator names) still to run on the current submission."""
    available_since: datetime | None = None
    """When the node last became Available (the work queue serves older work first)."""
    consensus: ConsensusState | None = None
    """Consensus nodes, once reached: the slots, the answers and the merged result."""

    @property
    def assignee(self) -> str | None:
        return self.claim.holder if self.claim else None

    def claims(self) -> list[ClaimInfo]:
        """Every live claim on the node: its claim, or each slot's on a consensus node."""
        found = [self.claim] if self.claim is not None else []
        if self.consensus is not None:
            found.extend(s.claim for s in self.consensus.slots)
        return found


class EventKind(StrEnum):
    """What a timeline event records. Values are the strings recorded histories and stores hold,
    so a ``TimelineEvent.kind`` compares equal to its member either way."""

    CREATED = "created"
    TASK_STATUS = "task_status"
    NODE_STATUS = "node_status"
    CLAIMED = "claimed"
    RELEASED = "released"
    CLAIM_TIMEOUT = "claim_timeout"
    CLAIM_RELEASED_BY_ADMIN = "claim_released_by_admin"
    DRAFT_SAVED = "draft_saved"
    SUBMITTED = "submitted"
    REVIEWED = "reviewed"
    SUBMISSION_EDITED = "submission_edited"
    ESCALATED = "escalated"
    DEESCALATED = "deescalated"
    QUARANTINE_RESOLVED = "quarantine_resolved"
    TAGGED = "tagged"
    UNTAGGED = "untagged"
    RETRIED = "retried"
    LLM_STARTED = "llm_started"
    LLM_RESULT = "llm_result"
    LLM_FAILED = "llm_failed"
    LLM_DRAFT = "llm_draft"
    LLM_DRAFT_FAILED = "llm_draft_failed"
    REGENERATE_REQUESTED = "regenerate_requested"
    EVALUATED = "evaluated"
    REJECTED = "rejected"
    CONSENSUS = "consensus"
    ADJUDICATED = "adjudicated"


class TimelineEvent(Frozen):
    """One entry of a task's timeline: who did what, when. ``seq`` increases by one per event."""

    seq: int
    at: datetime
    kind: str
    """An :class:`EventKind` value (a plain string in payloads, histories and the store)."""
    actor: str
    node: str | None = None
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


class TaskState(_State):
    """Everything a task is. Carried whole across continue-as-new."""

    task_key: str
    pipeline_name: str
    pipeline_hash: str
    data: dict[str, Any] = Field(default_factory=dict)
    """Seed data: the values of the pipeline's predefined fields."""
    status: TaskStatus = TaskStatus.PENDING
    nodes: dict[str, NodeState] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    status_before_pause: TaskStatus | None = None
    paused_by: str | None = None
    """Who paused the task (``pipeline`` when its pipeline did)."""
    status_before_hold: TaskStatus | None = None
    """What an Escalated / Failed task returns to when de-escalated / retried."""
    hold_reason: str | None = None
    seq: int = 0
    """Event sequence number: the number of timeline events so far."""
    timeline: list[TimelineEvent] = Field(default_factory=list)
    """The most recent events (older ones live in the store)."""
    responses: dict[str, CommandResult] = Field(default_factory=dict)
    """Recent answers by request_id, so a repeated command gets its first answer."""


class TaskInput(Frozen):
    """TaskWorkflow input: the pinned pipeline version, the task key, the seed data."""

    pipeline: Pipeline
    task_key: str
    data: dict[str, Any] = Field(default_factory=dict)
    start_paused: bool = False
    start_pending: bool = False
    """Start Pending (e.g. the pipeline is not yet active) until an ``activate`` command."""
    created_at: datetime | None = None
    """When the task was created, if before its workflow started (lazy start: the row written
    at creation is the snapshot the workflow starts from). None: when the workflow starts."""
    carried: TaskState | None = None
    """Set on continue-as-new: the whole state of the previous run."""
    outbox: list[TimelineEvent] = Field(default_factory=list)
    """Set on continue-as-new: events the previous run had not yet confirmed in the store."""


class TaskView(Frozen):
    """The ``state`` query's answer."""

    workflow_id: str
    task_key: str
    pipeline: str
    pipeline_hash: str
    status: TaskStatus
    nodes: list[NodeState]
    data: dict[str, Any]
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    hold_reason: str | None
    seq: int
    timeline: list[TimelineEvent]


LLM_ACTOR_PREFIX = "llm:"
"""Claims held by an LLM name their holder ``llm:<model>``."""


def current_nodes(nodes: Iterable[NodeState]) -> list[str]:
    """Nodes now Available, Claimed or Escalated (what the task is waiting on)."""
    return [
        n.name
        for n in nodes
        if n.status in (NodeStatus.AVAILABLE, NodeStatus.CLAIMED, NodeStatus.ESCALATED)
    ]


def assignees(nodes: Iterable[NodeState]) -> list[str]:
    """Everyone holding a claim on this task, LLMs excluded."""
    holders = [c.holder for n in nodes for c in n.claims()]
    return sorted({h for h in holders if not h.startswith(LLM_ACTOR_PREFIX)})


def merge_task_data(
    seed: Mapping[str, Any], node_values: Iterable[tuple[str, Mapping[str, Any]]]
) -> dict[str, Any]:
    """A task's data as its rules and chains see it: the seed data plus every node's values, by
    field name and as ``node.field`` (later nodes win a shared field name)."""
    data: dict[str, Any] = dict(seed)
    for node, values in node_values:
        for key, value in values.items():
            data[key] = value
            data[f"{node}.{key}"] = value
    return data


def consensus_figures(node: str, result: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a consensus node's merged result adds to the task data: ``<node>.agreement``,
    ``<node>.confidence``, ``<node>.agreed``, ``<node>.answers`` and the same keys unqualified
    (the latest consensus node wins), from a :class:`ConsensusResult` dumped as JSON."""
    if not result:
        return {}
    figures = {key: result.get(key) for key in ("agreement", "confidence", "agreed", "answers")}
    return {**{f"{node}.{k}": v for k, v in figures.items()}, **figures}


class StateQuery(Frozen):
    """Arguments of the ``state`` query (all optional)."""

    timeline: bool = True


# --------------------------------------------------------------------------- LLM activity


class LlmRequest(Frozen):
    """One LLM call: fill ``fields`` from ``spec``'s prompt rendered over ``context``."""

    workflow_id: str
    node: str
    spec: LlmSpec
    fields: list[FieldSpec]
    context: dict[str, Any]
    """Seed data and upstream field values the prompt template may refer to."""
    call_id: str = ""
    """Which call of the task this is (``<node>:<run>:<group>``), for LLM Analytics."""


class LlmResponse(Frozen):
    values: dict[str, Any]
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    """None when the model's price is unknown (never 0 for unknown)."""
    latency_ms: float
    attempt: int = 1


class JudgeRequest(Frozen):
    """One LLM judge call: score ``evaluator.fields`` of ``node`` over ``context``."""

    workflow_id: str
    node: str
    evaluator: EvaluatorSpec
    context: dict[str, Any]
    """The task data the judge's prompt template sees (seed data and field values)."""
    call_id: str = ""
    mode: str = "hidden"


# --------------------------------------------------------------------------- projection


class ClaimReservation(Frozen):
    """A claim about to be made under a claim limit (the claim activities' input)."""

    contributor: str
    roles: list[str] = Field(default_factory=list)
    pipeline: str
    workflow_id: str
    node: str
    seq: int
    """The task's seq before the claim: the reservation counts until the store is newer."""
    limit: int


class ClaimGrant(Frozen):
    """The answer to a :class:`ClaimReservation`."""

    granted: bool
    held: int = 0
    """When refused: the claims the contributor holds (and is making) in the pipeline."""


class ProjectionBatch(Frozen):
    """What the workflow hands the store: its snapshot at ``view.seq`` and the events since the
    last batch. The store applies the snapshot only if it is newer than what it holds."""

    view: TaskView
    events: list[TimelineEvent]
    pipeline: Pipeline | None = None
    """The pinned definition, on a run's first batch, so the store can record the version."""
    blocked: dict[str, str] = Field(default_factory=dict)
    """Review nodes and the contributor who may not claim them (self-review), for the queue."""
    people: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Consensus: per node, who holds a place, answered or may not review or adjudicate it
    (``claimed`` / ``answered`` / ``blocked``), so the queue never offers them the item."""
