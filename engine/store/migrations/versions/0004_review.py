"""Users, review campaigns, their items, reviewer assignments and ratings.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(80), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("email", sa.String(200), nullable=True, unique=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=True, index=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("baseline", sa.String(16), nullable=False),
        sa.Column("overlap", sa.Integer, nullable=False),
        sa.Column("per_criterion", sa.Boolean, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "campaign_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id"), nullable=False, index=True),
        sa.Column("example_index", sa.Integer, nullable=False),
        sa.Column("model", sa.String(16), nullable=True),
        sa.Column("prompt", sa.JSON, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("answers", sa.JSON, nullable=False),
        sa.Column("gold", sa.String(16), nullable=True),
    )
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id"), nullable=False, index=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("campaign_items.id"), nullable=False, index=True),
        sa.Column("reviewer_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("order_key", sa.Integer, nullable=False),
        sa.Column("left_model", sa.String(16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("item_id", "reviewer_id", name="uq_assignment_item_reviewer"),
    )
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id"), nullable=False, index=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("campaign_items.id"), nullable=False, index=True),
        sa.Column("reviewer_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("scores", sa.JSON, nullable=True),
        sa.Column("safety_flag", sa.Boolean, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("vote", sa.String(16), nullable=True),
        sa.Column("criterion_votes", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("item_id", "reviewer_id", name="uq_rating_item_reviewer"),
    )


def downgrade() -> None:
    for table in ("ratings", "assignments", "campaign_items", "campaigns", "users"):
        op.drop_table(table)
