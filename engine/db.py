"""Database access: SQLite in the workspace (WAL, busy timeout) by default, any SQLAlchemy URL via STUDIO_DB_URL.

The schema is created and upgraded by Alembic migrations (engine/migrations) the first time a process opens the
database; later opens only compare the stored revision with HEAD, so short CLI commands stay fast.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from engine import workspace

HEAD = "0003"  # the newest migration; a test checks it matches engine/migrations/versions
BUSY_TIMEOUT_MS = 15000
_engines: dict[str, Engine] = {}


def database_url() -> str:
    url = os.environ.get("STUDIO_DB_URL")
    if url:
        return url
    return f"sqlite:///{workspace.current().root / 'studio.db'}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def get_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    if url not in _engines:
        engine = create_engine(url, future=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        migrate(engine)
        _engines[url] = engine
    return _engines[url]


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError):
        return None


def migrate(engine: Engine) -> None:
    """Bring the schema to HEAD with Alembic (a no-op when it is already there)."""
    if current_revision(engine) == HEAD:
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@contextmanager
def session() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    factory = sessionmaker(get_engine(), expire_on_commit=False)
    with factory() as s:
        with s.begin():
            yield s
