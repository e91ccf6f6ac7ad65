"""Projects, dataset versions, splits and locked test records.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(120), nullable=False, unique=True),
        sa.Column("task_type", sa.String(32), nullable=False),
        sa.Column("system_prompt", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, index=True),
        sa.Column("path", sa.String(400), nullable=False),
        sa.Column("container", sa.String(16), nullable=False),
        sa.Column("shape", sa.String(32), nullable=False),
        sa.Column("mapping", sa.JSON, nullable=True),
        sa.Column("records", sa.Integer, nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("dataset_versions.id"), nullable=True),
        sa.Column("fixes", sa.JSON, nullable=False),
        sa.Column("removed", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "splits",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_version_id", sa.Integer, sa.ForeignKey("dataset_versions.id"), nullable=False, index=True),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("ratios", sa.JSON, nullable=False),
        sa.Column("folder", sa.String(400), nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("overlap", sa.JSON, nullable=False),
        sa.Column("test_sha256", sa.String(64), nullable=False),
        sa.Column("locked", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "locked_records",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("split_id", sa.Integer, sa.ForeignKey("splits.id"), nullable=False, index=True),
        sa.Column("record_hash", sa.String(32), nullable=False, index=True),
    )


def downgrade() -> None:
    for table in ("locked_records", "splits", "dataset_versions", "projects"):
        op.drop_table(table)
