"""Initial schema: every table of store.models.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 13:18:54.806356
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contributors",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "roles", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_contributors")),
    )
    op.create_table(
        "evaluation_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.String(length=400), nullable=False),
        sa.Column("pipeline_name", sa.String(length=100), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("criterion", sa.String(length=200), nullable=False),
        sa.Column("criterion_version", sa.String(length=64), nullable=False),
        sa.Column(
            "target_fields",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("reasoning", sa.Text(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_results")),
    )
    op.create_index(
        op.f("ix_evaluation_results_pipeline_criterion"),
        "evaluation_results",
        ["pipeline_name", "criterion", "node"],
        unique=False,
    )
    op.create_index(
        op.f("ix_evaluation_results_workflow_id"),
        "evaluation_results",
        ["workflow_id"],
        unique=False,
    )
    op.create_table(
        "llm_calls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.String(length=400), nullable=False),
        sa.Column("pipeline_name", sa.String(length=100), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column(
            "fields", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("error_class", sa.String(length=100), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_calls")),
    )
    op.create_index(
        op.f("ix_llm_calls_pipeline_model_node"),
        "llm_calls",
        ["pipeline_name", "model", "node"],
        unique=False,
    )
    op.create_index(op.f("ix_llm_calls_workflow_id"), "llm_calls", ["workflow_id"], unique=False)
    op.create_table(
        "pipelines",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("current_version", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_pipelines")),
    )
    op.create_table(
        "tasks",
        sa.Column("workflow_id", sa.String(length=400), nullable=False),
        sa.Column("pipeline_name", sa.String(length=100), nullable=False),
        sa.Column("pipeline_hash", sa.String(length=64), nullable=False),
        sa.Column("task_key", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column(
            "current_nodes",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "assignees", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("tags", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("hold_reason", sa.Text(), nullable=True),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("workflow_id", name=op.f("pk_tasks")),
        sa.UniqueConstraint(
            "pipeline_name", "task_key", name=op.f("uq_tasks_pipeline_name_task_key")
        ),
    )
    op.create_index(
        op.f("ix_tasks_pipeline_created"),
        "tasks",
        ["pipeline_name", "created_at", "workflow_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_tasks_pipeline_status_created"),
        "tasks",
        ["pipeline_name", "status", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_tasks_pipeline_updated"),
        "tasks",
        ["pipeline_name", "updated_at", "workflow_id"],
        unique=False,
    )
    op.create_table(
        "node_instances",
        sa.Column("workflow_id", sa.String(length=400), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("pipeline_name", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("assignee", sa.String(length=200), nullable=True),
        sa.Column("claim_token", sa.String(length=100), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "values", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "draft", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("submitted_by", sa.String(length=200), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("rework_reason", sa.Text(), nullable=True),
        sa.Column("rework_only", sa.String(length=200), nullable=True),
        sa.Column("rework_exclude", sa.String(length=200), nullable=True),
        sa.Column("passes", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("total_failures", sa.Integer(), nullable=False),
        sa.Column(
            "last_review", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("available_since", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["tasks.workflow_id"],
            name=op.f("fk_node_instances_workflow_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workflow_id", "node", name=op.f("pk_node_instances")),
    )
    op.create_index(
        op.f("ix_node_instances_assignee"), "node_instances", ["assignee"], unique=False
    )
    op.create_index(
        op.f("ix_node_instances_queue"),
        "node_instances",
        ["pipeline_name", "node", "status", "available_since"],
        unique=False,
    )
    op.create_index(
        op.f("ix_node_instances_status"),
        "node_instances",
        ["status", "available_since"],
        unique=False,
    )
    op.create_index(
        op.f("ix_node_instances_submitted_by"), "node_instances", ["submitted_by"], unique=False
    )
    op.create_table(
        "pipeline_versions",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("pipeline_name", sa.String(length=100), nullable=False),
        sa.Column(
            "definition", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_name"],
            ["pipelines.name"],
            name=op.f("fk_pipeline_versions_pipeline_name_pipelines"),
        ),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_pipeline_versions")),
    )
    op.create_index(
        op.f("ix_pipeline_versions_pipeline_name"),
        "pipeline_versions",
        ["pipeline_name"],
        unique=False,
    )
    op.create_table(
        "reviews",
        sa.Column("workflow_id", sa.String(length=400), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "values", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["tasks.workflow_id"],
            name=op.f("fk_reviews_workflow_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workflow_id", "seq", name=op.f("pk_reviews")),
    )
    op.create_index(op.f("ix_reviews_reviewer_at"), "reviews", ["reviewer", "at"], unique=False)
    op.create_table(
        "submissions",
        sa.Column("workflow_id", sa.String(length=400), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column(
            "values", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["tasks.workflow_id"],
            name=op.f("fk_submissions_workflow_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workflow_id", "seq", name=op.f("pk_submissions")),
    )
    op.create_index(op.f("ix_submissions_actor_at"), "submissions", ["actor", "at"], unique=False)
    op.create_table(
        "task_tags",
        sa.Column("workflow_id", sa.String(length=400), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["tasks.workflow_id"],
            name=op.f("fk_task_tags_workflow_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workflow_id", "tag", name=op.f("pk_task_tags")),
    )
    op.create_index(op.f("ix_task_tags_tag"), "task_tags", ["tag"], unique=False)
    op.create_table(
        "timeline_events",
        sa.Column("workflow_id", sa.String(length=400), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["tasks.workflow_id"],
            name=op.f("fk_timeline_events_workflow_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workflow_id", "seq", name=op.f("pk_timeline_events")),
    )
    op.create_index(
        op.f("ix_timeline_events_actor_kind"), "timeline_events", ["actor", "kind"], unique=False
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; children before the tables they reference.
    op.drop_table("timeline_events")
    op.drop_table("task_tags")
    op.drop_table("submissions")
    op.drop_table("reviews")
    op.drop_table("pipeline_versions")
    op.drop_table("node_instances")
    op.drop_table("tasks")
    op.drop_table("pipelines")
    op.drop_table("llm_calls")
    op.drop_table("evaluation_results")
    op.drop_table("contributors")
