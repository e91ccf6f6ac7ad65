"""Evaluation jobs share the runs table (and so the supervisor's one-job-per-device queue) with training runs.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="train"))
        batch.add_column(sa.Column("target_run_id", sa.Integer, nullable=True))
        batch.create_index("ix_runs_kind", ["kind"])
        batch.create_index("ix_runs_target_run_id", ["target_run_id"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_target_run_id")
        batch.drop_index("ix_runs_kind")
        batch.drop_column("target_run_id")
        batch.drop_column("kind")
