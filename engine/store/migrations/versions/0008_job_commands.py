"""Each job stores the command that runs it (the stage that launches it knows it; the supervisor only runs it).
Jobs already in the table get the command their kind has always had.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COMMANDS = {"train": ["{python}", "-m", "engine.train", "{run_dir}"],
            "eval": ["{python}", "-m", "engine.evaluate.job", "{run_dir}"]}


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("command", sa.JSON, nullable=True))
    runs = sa.table("runs", sa.column("kind", sa.String), sa.column("command", sa.JSON))
    for kind, command in COMMANDS.items():
        op.execute(runs.update().where(runs.c.kind == kind).values(command=command))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("command")
