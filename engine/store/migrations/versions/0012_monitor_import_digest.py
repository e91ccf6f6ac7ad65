"""A production log file is known by its BLAKE3 digest rather than its SHA-256 (five times faster to compute on a
file of hundreds of megabytes, and as collision-resistant): the column is renamed to what it holds. Files imported
before keep their SHA-256 there; imported again, they are read once more and every row is recognised by its row hash.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


# A plain RENAME COLUMN (SQLite 3.25+, PostgreSQL), which keeps the unique constraint, rather than Alembic's batch
# mode, which copies the whole table on SQLite.
def upgrade() -> None:
    op.alter_column("monitor_imports", "sha256", new_column_name="digest")


def downgrade() -> None:
    op.alter_column("monitor_imports", "digest", new_column_name="sha256")
