"""The lock keys a test record by its content (user and assistant turns, folded), not by the whole record: a fix
that sets the system prompt or re-spaces the text no longer unlocks it. Existing rows are filled in from their
split's test file the first time a launch is checked (engine.data.test_lock).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("locked_records") as batch:
        batch.add_column(sa.Column("content_key", sa.String(32), nullable=True))
        batch.create_index("ix_locked_records_content_key", ["content_key"])


def downgrade() -> None:
    with op.batch_alter_table("locked_records") as batch:
        batch.drop_index("ix_locked_records_content_key")
        batch.drop_column("content_key")
