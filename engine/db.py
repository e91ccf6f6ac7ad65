"""Database access: SQLite in the workspace (WAL, busy timeout) by default, any SQLAlchemy URL via STUDIO_DB_URL.

The schema is created and upgraded by Alembic migrations (engine/migrations) the first time a process opens the
database; later opens only compare the stored revision with HEAD, so short CLI commands stay fast.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from engine import workspace

HEAD = "0005"  # the newest migration; a test checks it matches engine/migrations/versions
BUSY_TIMEOUT_MS = 15000
_engines: dict[str, Engine] = {}
_write_locks: dict[str, threading.Lock] = {}


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


_engines_lock = threading.Lock()


def _create_private(path: str) -> None:
    """Create the SQLite file readable by its owner only (it holds password hashes); SQLite gives its -wal and -shm
    files the same permissions."""
    if path and path != ":memory:" and not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def get_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    engine = _engines.get(url)
    if engine is not None:
        return engine
    with _engines_lock:  # the first sessions of a fresh dashboard arrive together: one engine, one migration
        if url not in _engines:
            engine = create_engine(url, future=True)
            if engine.dialect.name == "sqlite":
                _create_private(engine.url.database)
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
    from filelock import FileLock

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    # Processes opening a fresh SQLite database together (the dashboard and a CLI command) migrate one at a time;
    # the second finds the schema at HEAD and does nothing.
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    lock = FileLock(f"{database}.migrate.lock") if database and database != ":memory:" else _null()
    with lock:
        if current_revision(engine) == HEAD:
            return
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


@contextmanager
def _null() -> Iterator[None]:
    yield


_factories: dict[tuple, sessionmaker] = {}


def _factory() -> sessionmaker:
    # Keyed on the variables that choose the database, so the URL (and the workspace folders behind it) are worked
    # out once per process and database, not on every short transaction.
    key = (os.environ.get("STUDIO_DB_URL"), os.environ.get("STUDIO_HOME"), os.getcwd())
    factory = _factories.get(key)
    if factory is None:
        factory = _factories[key] = sessionmaker(get_engine(), expire_on_commit=False)
    return factory


@contextmanager
def session() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with _factory()() as s:
        with s.begin():
            yield s


@contextmanager
def write_session() -> Iterator[Session]:
    """A session for a short write that many threads of one process make at once (reviewers' submits in the
    dashboard's process). On SQLite the threads take turns on a lock first: waiting on SQLite's own busy handler
    instead means sleeps that grow to 100 ms each, which is where the slow tail of concurrent submits came from.
    Other processes still wait on the busy timeout; other databases need no lock."""
    engine = _factory().kw["bind"]
    lock = _write_locks.setdefault(str(engine.url), threading.Lock()) if engine.dialect.name == "sqlite" else None
    if lock is None:
        with session() as s:
            yield s
        return
    with lock:
        with session() as s:
            yield s
