"""SQLAlchemy 2 models: the store is a projection of the task workflows (their truth).

Every row written from a workflow carries the task's event sequence number (``seq``); writers
apply a row only if it is newer than what is stored, so retries, replays and reordering can
never move the store backwards. Timeline-derived rows (events, submissions, reviews) are keyed
by ``(workflow_id, seq)`` and inserted at most once.

ORM objects never leave ``store/``: callers get pydantic models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is the same instant on every dialect, always read back aware in UTC.

    SQLite has no timestamp type: SQLAlchemy stores the wall-clock digits and drops the offset,
    so ``12:00+02:00`` would come back as a naive ``12:00``. Values are converted to UTC before
    they are bound and tagged UTC when read. Naive datetimes are refused: use
    ``datetime.now(UTC)`` or ``workflow.now()``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} cannot be stored: "
                "give it a timezone (datetime.now(UTC) or workflow.now())"
            )
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


Stamp = UtcDateTime()

# ``none_as_null``: Python ``None`` is SQL NULL (``IS NULL`` finds it), not the JSON text 'null'.
# PostgreSQL gets JSONB: it has equality (DISTINCT, GROUP BY, UNION work) and GIN indexes.
Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: Json, list[str]: Json, datetime: Stamp}


class PipelineRow(Base):
    """A pipeline by name, and the status an operator gives it."""

    __tablename__ = "pipelines"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="Active")
    current_version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PipelineVersionRow(Base):
    """An immutable pipeline definition, by content hash. Tasks are pinned to one."""

    __tablename__ = "pipeline_versions"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    pipeline_name: Mapped[str] = mapped_column(ForeignKey("pipelines.name"), index=True)
    definition: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class TaskRow(Base):
    """One task: the latest projected snapshot of its workflow's state."""

    __tablename__ = "tasks"

    workflow_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    pipeline_name: Mapped[str] = mapped_column(String(100))
    pipeline_hash: Mapped[str] = mapped_column(String(64))
    task_key: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20))
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    data: Mapped[dict[str, Any]]
    current_nodes: Mapped[list[str]]
    assignees: Mapped[list[str]]
    tags: Mapped[list[str]]
    hold_reason: Mapped[str | None] = mapped_column(Text)
    search_text: Mapped[str] = mapped_column(Text, default="")
    """Every value of the task, lower-cased, for the Data Explorer's text search."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    start: Mapped[str | None] = mapped_column(String(10))
    """How far a lazily created task's workflow is: ``untouched`` (none yet: the row is the
    task), ``queued`` (none yet, and the background starter will start it), ``starting`` (a
    start was sent; the workflow may exist). None once the workflow has written a newer
    snapshot, and for every task started at creation."""

    __table_args__ = (
        UniqueConstraint("pipeline_name", "task_key"),
        Index("ix_tasks_pipeline_status_created", "pipeline_name", "status", "created_at"),
        Index("ix_tasks_pipeline_created", "pipeline_name", "created_at", "workflow_id"),
        Index("ix_tasks_pipeline_updated", "pipeline_name", "updated_at", "workflow_id"),
        # Data Explorer: keyset pages sorted by finished time or status (workflow_id breaks ties).
        Index("ix_tasks_pipeline_finished", "pipeline_name", "finished_at", "workflow_id"),
        Index("ix_tasks_pipeline_status_workflow", "pipeline_name", "status", "workflow_id"),
        # Data Explorer: does any task of these states lack a finished time (store/explorer/)?
        Index(
            "ix_tasks_pipeline_unfinished",
            "pipeline_name",
            "status",
            postgresql_where=text("finished_at IS NULL"),
            sqlite_where=text("finished_at IS NULL"),
        ),
        # Lazy start: a pipeline's untouched rows, for pause, resume and progress.
        Index(
            "ix_tasks_pipeline_start",
            "pipeline_name",
            "start",
            postgresql_where=text("start IS NOT NULL"),
            sqlite_where=text("start IS NOT NULL"),
        ),
        # The background starter: queued tasks, and starts to send again.
        Index(
            "ix_tasks_starting",
            "start",
            "workflow_id",
            postgresql_where=text("start IN ('queued', 'starting')"),
            sqlite_where=text("start IN ('queued', 'starting')"),
        ),
    )


_OPEN_NODES = "status IN ('Available', 'Escalated')"


class NodeRow(Base):
    """One node instance of a task, as of the task's ``seq``."""

    __tablename__ = "node_instances"

    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.workflow_id", ondelete="CASCADE"), primary_key=True
    )
    node: Mapped[str] = mapped_column(String(200), primary_key=True)
    pipeline_name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    assignee: Mapped[str | None] = mapped_column(String(200))
    claim_token: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    values: Mapped[dict[str, Any]]
    draft: Mapped[dict[str, Any]]
    submitted_by: Mapped[str | None] = mapped_column(String(200))
    submitted_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    rework_reason: Mapped[str | None] = mapped_column(Text)
    rework_only: Mapped[str | None] = mapped_column(String(200))
    rework_exclude: Mapped[str | None] = mapped_column(String(200))
    passes: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    total_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_review: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    available_since: Mapped[datetime | None]
    """When the node last became Available (work-queue ordering)."""
    blocked_contributor: Mapped[str | None] = mapped_column(String(200))
    """Who may not claim this node: the submitter under review (self-review prevention)."""
    consensus: Mapped[dict[str, Any] | None]
    """Consensus nodes: the places needed, the answers (each annotator's), the round and the
    merged result with its per-field agreement and confidence. Claims and drafts are left out."""

    __table_args__ = (
        Index("ix_node_instances_queue", "pipeline_name", "node", "status", "available_since"),
        # The work queue walks open nodes oldest first and stops at its LIMIT (store/workqueue.py).
        Index(
            "ix_node_instances_open",
            "available_since",
            "workflow_id",
            "node",
            postgresql_where=text(_OPEN_NODES),
            sqlite_where=text(_OPEN_NODES),
        ),
        Index(
            "ix_node_instances_open_pipeline",
            "pipeline_name",
            "available_since",
            "workflow_id",
            "node",
            postgresql_where=text(_OPEN_NODES),
            sqlite_where=text(_OPEN_NODES),
        ),
        Index("ix_node_instances_status", "status", "available_since"),
        Index("ix_node_instances_assignee", "assignee"),
        Index("ix_node_instances_submitted_by", "submitted_by"),
    )


class NodeAnnotatorRow(Base):
    """Who may not be offered a node for consensus reasons: on a consensus node, each person
    holding a place (``claimed``) or having answered (``answered``); on a review or adjudicate
    node of one, its annotators (``blocked``). Replaced with each newer snapshot."""

    __tablename__ = "node_annotators"

    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.workflow_id", ondelete="CASCADE"), primary_key=True
    )
    node: Mapped[str] = mapped_column(String(200), primary_key=True)
    contributor: Mapped[str] = mapped_column(String(200), primary_key=True)
    pipeline_name: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(10))

    __table_args__ = (
        Index("ix_node_annotators_contributor", "contributor", "pipeline_name", "state"),
    )


class TimelineEventRow(Base):
    """One timeline event; ``(workflow_id, seq)`` is written at most once."""

    __tablename__ = "timeline_events"

    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.workflow_id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(50))
    actor: Mapped[str] = mapped_column(String(200))
    node: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]]

    __table_args__ = (Index("ix_timeline_events_actor_kind", "actor", "kind"),)


class SubmissionRow(Base):
    """Every attempt at a node's form: drafts, submissions, LLM outputs and admin edits."""

    __tablename__ = "submissions"

    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.workflow_id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    """``draft``, ``submit``, ``llm`` or ``edit``."""
    actor: Mapped[str] = mapped_column(String(200))
    attempt: Mapped[int | None] = mapped_column(Integer)
    values: Mapped[dict[str, Any]]
    at: Mapped[datetime]

    __table_args__ = (Index("ix_submissions_actor_at", "actor", "at"),)


class ReviewRow(Base):
    __tablename__ = "reviews"

    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.workflow_id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node: Mapped[str] = mapped_column(String(200))
    reviewer: Mapped[str] = mapped_column(String(200))
    verdict: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)
    values: Mapped[dict[str, Any]]
    at: Mapped[datetime]

    __table_args__ = (Index("ix_reviews_reviewer_at", "reviewer", "at"),)


class TaskTagRow(Base):
    __tablename__ = "task_tags"

    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.workflow_id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)


class LlmCallRow(Base):
    """One LLM call attempt, for LLM Analytics.

    ``(workflow_id, call_id, attempt)`` is written at most once: the activity records each
    attempt as it ends and the projection records the final one again, harmlessly.
    """

    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workflow_id: Mapped[str] = mapped_column(String(400), index=True)
    pipeline_name: Mapped[str] = mapped_column(String(100))
    node: Mapped[str] = mapped_column(String(200))
    call_id: Mapped[str] = mapped_column(String(300), default="")
    """Which call of the task: ``<node>:<run>:<group>`` for fields, ``<node>:judge:<criterion>:
    <version>:<run>`` for an LLM judge."""
    purpose: Mapped[str] = mapped_column(String(20), default="field")
    """``field`` (filling LLM fields) or ``judge`` (an LLM judge evaluation)."""
    fields: Mapped[list[str]]
    model: Mapped[str] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    """None when the model's price is unknown (never 0 for unknown)."""
    latency_ms: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(20))
    """``ok``, ``retry`` (failed, Temporal retries it) or ``failed`` (failed for good)."""
    error_class: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime]

    __table_args__ = (
        Index("ix_llm_calls_pipeline_model_node", "pipeline_name", "model", "node"),
        UniqueConstraint("workflow_id", "call_id", "attempt", name="uq_llm_calls_key"),
    )


class EvaluationResultRow(Base):
    """One evaluator's verdict on a node's fields, for Evaluation Analytics.

    One row per ``(workflow_id, node, criterion, criterion_version)``: a rework's new verdict
    replaces the old one (``seq`` orders them), and a bulk evaluation skips tasks that already
    have a result for the same criterion version.
    """

    __tablename__ = "evaluation_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workflow_id: Mapped[str] = mapped_column(String(400), index=True)
    pipeline_name: Mapped[str] = mapped_column(String(100))
    node: Mapped[str] = mapped_column(String(200))
    criterion: Mapped[str] = mapped_column(String(200))
    criterion_version: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20), default="programmatic")
    """``programmatic``, ``llm_judge`` or ``human``."""
    evaluator: Mapped[str] = mapped_column(String(20), default="")
    """The evaluator kind (``regex``, ``pii``, ``llm_judge``…) or the human field's type."""
    mode: Mapped[str] = mapped_column(String(10), default="hidden")
    source: Mapped[str] = mapped_column(String(10), default="task")
    """``task`` (run by the task's workflow) or ``bulk`` (a bulk evaluation)."""
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    target_fields: Mapped[list[str]]
    score: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool | None]
    label: Mapped[str | None] = mapped_column(String(200))
    """boolean / categorical verdicts: the label chosen (``true``/``false`` for booleans)."""
    reasoning: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(200))
    """Who gave a human rating; the judge model for an LLM judge."""
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]

    __table_args__ = (
        Index("ix_evaluation_results_pipeline_criterion", "pipeline_name", "criterion", "node"),
        UniqueConstraint(
            "workflow_id",
            "node",
            "criterion",
            "criterion_version",
            name="uq_evaluation_results_key",
        ),
    )


class AggregationRow(Base):
    """A stored re-aggregation run (Dawid-Skene) over one consensus node's field: the model's
    figures for the pipeline as a whole. Written once with its items, never changed; it sits
    beside the tasks' recorded values and never rewrites them."""

    __tablename__ = "aggregations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline_name: Mapped[str] = mapped_column(String(100))
    node: Mapped[str] = mapped_column(String(200))
    field: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(20), default="dawid_skene")
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(200))
    criteria: Mapped[dict[str, Any]]
    """The Data Explorer filter that chose the tasks (empty: every task)."""
    max_iterations: Mapped[int] = mapped_column(Integer)
    iterations: Mapped[int] = mapped_column(Integer)
    items: Mapped[int] = mapped_column(Integer)
    differing: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]]
    """``labels``, ``priors`` and ``contributors`` (each one's confusion matrix)."""

    __table_args__ = (Index("ix_aggregations_pipeline", "pipeline_name", "id"),)


class AggregationItemRow(Base):
    """One item of a stored re-aggregation run: the model's estimate beside its majority and its
    recorded final answer."""

    __tablename__ = "aggregation_items"

    aggregation_id: Mapped[int] = mapped_column(
        ForeignKey("aggregations.id", ondelete="CASCADE"), primary_key=True
    )
    workflow_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    answers: Mapped[int] = mapped_column(Integer)
    estimate: Mapped[Any] = mapped_column(Json)
    probability: Mapped[float] = mapped_column(Float)
    majority: Mapped[Any] = mapped_column(Json, nullable=True)
    majority_share: Mapped[float] = mapped_column(Float)
    final: Mapped[Any] = mapped_column(Json, nullable=True)
    differs: Mapped[bool]


class ContributorRow(Base):
    """A contributor and their roles. Its row is also the lock that serialises their claims."""

    __tablename__ = "contributors"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    roles: Mapped[list[str]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ClaimReservationRow(Base):
    """A claim a task is making under a claim limit: counted against the contributor's limit
    until the projection shows the node newer than ``seq`` (the task's seq before the claim),
    so concurrent claims on different tasks cannot overshoot it. Written only by the claim
    activities (``activities/claims.py``)."""

    __tablename__ = "claim_reservations"

    contributor: Mapped[str] = mapped_column(String(200), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    node: Mapped[str] = mapped_column(String(200), primary_key=True)
    pipeline_name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    seq: Mapped[int] = mapped_column(BigInteger, server_default="0")


class UserRow(Base):
    """Someone who calls the HTTP API or signs in to the web app.

    ``role`` is ``admin``, ``viewer`` (read-only) or ``contributor``; a contributor's work-queue
    roles are in ``contributor_roles`` (the same names pipelines give their nodes).
    """

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    contributor_roles: Mapped[list[str]]
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class ApiKeyRow(Base):
    """An API key: only its SHA-256 is stored; ``prefix`` (the first characters) names it in
    listings and logs without revealing it."""

    __tablename__ = "api_keys"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16))
    user_name: Mapped[str] = mapped_column(
        String(200), ForeignKey("users.name", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
