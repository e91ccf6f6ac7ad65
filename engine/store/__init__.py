"""Where everything is kept: the workspace folder, the database (SQLite or PostgreSQL, schema by Alembic migrations
in migrations/), its backups, and the records that belong to no single stage: projects, users and their roles,
sign-in sessions and attempts."""
