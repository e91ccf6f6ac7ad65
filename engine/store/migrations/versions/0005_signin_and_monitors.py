"""Sign-in attempts (for throttling and the admins' view), the first-admin setup token, and each job's monitor
process (it records the job's end with nobody watching).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("monitor_pid", sa.Integer, nullable=True))
        batch.add_column(sa.Column("monitor_start", sa.Float, nullable=True))
    op.create_table(
        "signin_attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("user_name", sa.String(80), nullable=False, index=True),
        sa.Column("address", sa.String(64), nullable=False, index=True),
        sa.Column("outcome", sa.String(16), nullable=False),
    )
    op.create_table(
        "setup_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("monitor_start")
        batch.drop_column("monitor_pid")
    op.drop_table("setup_tokens")
    op.drop_table("signin_attempts")
