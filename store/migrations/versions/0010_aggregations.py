"""aggregations: stored Dawid-Skene runs and their items

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 23:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def upgrade() -> None:
    op.create_table(
        "aggregations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pipeline_name", sa.String(length=100), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("field", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("criteria", _json(), nullable=False),
        sa.Column("max_iterations", sa.Integer(), nullable=False),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("differing", sa.Integer(), nullable=False),
        sa.Column("summary", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aggregations")),
    )
    op.create_index(
        "ix_aggregations_pipeline", "aggregations", ["pipeline_name", "id"], unique=False
    )
    op.create_table(
        "aggregation_items",
        sa.Column("aggregation_id", sa.Integer(), nullable=False),
        sa.Column("workflow_id", sa.String(length=400), nullable=False),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.Column("estimate", _json(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("majority", _json(), nullable=True),
        sa.Column("majority_share", sa.Float(), nullable=False),
        sa.Column("final", _json(), nullable=True),
        sa.Column("differs", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["aggregation_id"],
            ["aggregations.id"],
            name=op.f("fk_aggregation_items_aggregation_id_aggregations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("aggregation_id", "workflow_id", name=op.f("pk_aggregation_items")),
    )


def downgrade() -> None:
    op.drop_table("aggregation_items")
    op.drop_index("ix_aggregations_pipeline", table_name="aggregations")
    op.drop_table("aggregations")
