"""Where a job runs: the job backend (the studio's own supervisor, or a Ray cluster), the backend's id of the job
and the node it runs on.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("backend", sa.String(16), nullable=False, server_default="local"))
        batch.add_column(sa.Column("backend_job", sa.String(80), nullable=True))
        batch.add_column(sa.Column("node", sa.String(120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("node")
        batch.drop_column("backend_job")
        batch.drop_column("backend")
