"""Production monitoring: the log files imported (once each, by SHA-256), a command a job hands over to when it
succeeds (a retraining run registers its model version that way), and the corrected answer a reviewer writes in a
correction campaign.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_imports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("stored", sa.Integer, nullable=False),
        sa.Column("invalid", sa.Integer, nullable=False, server_default="0"),
        sa.Column("duplicates", sa.Integer, nullable=False, server_default="0"),
        sa.Column("columns", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project_id", "sha256", name="uq_monitor_import_file"),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("then_command", sa.JSON, nullable=True))
    with op.batch_alter_table("ratings") as batch:
        batch.add_column(sa.Column("correction", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ratings") as batch:
        batch.drop_column("correction")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("then_command")
    op.drop_table("monitor_imports")
