"""Model versions (the registry) and their audit events. At most one production version per project, kept by a
partial unique index, so two promotions at the same moment cannot both win.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("major", sa.Integer, nullable=False),
        sa.Column("minor", sa.Integer, nullable=False),
        sa.Column("patch", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
        sa.Column("stage", sa.String(16), nullable=False, index=True),
        sa.Column("bump_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("lineage", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project_id", "name", "major", "minor", "patch", name="uq_model_version_number"),
    )
    op.create_index("uq_one_production_per_project", "model_versions", ["project_id"], unique=True,
                    sqlite_where=sa.text("stage = 'production'"), postgresql_where=sa.text("stage = 'production'"))
    op.create_table(
        "model_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("model_versions.id"), nullable=False, index=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("from_stage", sa.String(16), nullable=True),
        sa.Column("to_stage", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("override", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("details", sa.JSON, nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_events")
    op.drop_index("uq_one_production_per_project", table_name="model_versions")
    op.drop_table("model_versions")
