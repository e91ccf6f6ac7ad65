"""Alembic environment: runs on the connection that engine.store.db hands over (no alembic.ini, no URL in files)."""

from alembic import context

from engine.store.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
