"""tasks created without a workflow yet: the start column (lazy start)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("start", sa.String(length=10), nullable=True))
        batch_op.create_index(
            "ix_tasks_pipeline_start",
            ["pipeline_name", "start"],
            unique=False,
            postgresql_where=sa.text("start IS NOT NULL"),
            sqlite_where=sa.text("start IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_tasks_starting",
            ["start", "workflow_id"],
            unique=False,
            postgresql_where=sa.text("start IN ('queued', 'starting')"),
            sqlite_where=sa.text("start IN ('queued', 'starting')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_tasks_starting",
            postgresql_where=sa.text("start IN ('queued', 'starting')"),
            sqlite_where=sa.text("start IN ('queued', 'starting')"),
        )
        batch_op.drop_index(
            "ix_tasks_pipeline_start",
            postgresql_where=sa.text("start IS NOT NULL"),
            sqlite_where=sa.text("start IS NOT NULL"),
        )
        batch_op.drop_column("start")
