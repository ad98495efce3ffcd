"""consensus: the node_annotators table and the consensus column of node instances

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("node_instances", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "consensus",
                sa.JSON(none_as_null=True).with_variant(
                    postgresql.JSONB(none_as_null=True), "postgresql"
                ),
                nullable=True,
            )
        )
    op.create_table(
        "node_annotators",
        sa.Column("workflow_id", sa.String(length=400), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("contributor", sa.String(length=200), nullable=False),
        sa.Column("pipeline_name", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(["workflow_id"], ["tasks.workflow_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workflow_id", "node", "contributor"),
    )
    op.create_index(
        "ix_node_annotators_contributor",
        "node_annotators",
        ["contributor", "pipeline_name", "state"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_node_annotators_contributor", table_name="node_annotators")
    op.drop_table("node_annotators")
    with op.batch_alter_table("node_instances", schema=None) as batch_op:
        batch_op.drop_column("consensus")
