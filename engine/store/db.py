"""Database access: SQLite in the workspace (WAL, busy timeout) by default, PostgreSQL (or any SQLAlchemy URL) via
STUDIO_DB_URL.

The schema is created and upgraded by Alembic migrations (engine/migrations) the first time a process opens the
database; later opens only compare the stored revision with HEAD, so short CLI commands stay fast. Migrations hold
a database-wide lock (a file lock beside a SQLite file, pg_advisory_xact_lock on PostgreSQL), so processes opening a
fresh database together migrate it once. A database that cannot be used (no driver, no server, damaged, full)
becomes one sentence (`DatabaseProblem`) saying what is wrong and what to run.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from engine import settings
from engine.errors import StudioError
from engine.store import locks, workspace

HEAD = "0012"  # the newest migration; a test checks it matches engine/migrations/versions
BUSY_TIMEOUT_MS = 15000
MIGRATION_LOCK_KEY = 0x57D10  # pg_advisory_xact_lock key of the studio's migrations
FIRST_ADMIN_LOCK_KEY = 0x57D11  # (same) of creating the first administrator
_engines: dict[str, Engine] = {}
_write_locks: dict[str, threading.Lock] = {}


_read_only = False


class DatabaseProblem(StudioError):
    """The database cannot be used; the message says what is wrong and what to do, in one sentence."""


def read_only() -> None:
    """For a command that only reads: a database without the studio's tables is refused, never set up."""
    global _read_only
    _read_only = True


def database_url() -> str:
    url = settings.current().db_url
    if url:
        return url
    return f"sqlite:///{workspace.current().root / 'studio.db'}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # first: the statements below may have to wait for a lock
    _wal(cur)
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _wal(cur) -> None:
    """WAL mode (kept in the file, so usually already on). While another process sets up a fresh database, this
    statement can fail at once with "database is locked" instead of waiting through the busy handler (seen with four
    processes opening a new workspace together): it is tried again until the busy timeout has passed."""
    import sqlite3  # the driver under SQLAlchemy's SQLite dialect

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


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
            engine = _create(url)
            try:
                if _read_only and current_revision(engine) is None:
                    where = engine.url.render_as_string(hide_password=True)
                    raise DatabaseProblem(f"The database {where} has no studio tables; nothing was created. Point "
                                          "STUDIO_DB_URL at the studio's database, or set it up with `studio ui`.")
                migrate(engine)
            except DBAPIError as err:
                raise explain(err, engine) or err from None
            _engines[url] = engine
    return _engines[url]


def _create(url: str) -> Engine:
    try:
        engine = create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"))
    except ModuleNotFoundError as err:
        raise DatabaseProblem(f"STUDIO_DB_URL asks for a database whose driver is not installed ({err.name}); for "
                              "PostgreSQL run `pip install -e '.[postgres]'` and use a postgresql+psycopg:// URL.") \
            from None
    if engine.dialect.name == "sqlite":
        _create_private(engine.url.database or "")
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def explain(err: BaseException, engine: Engine | None = None) -> DatabaseProblem | None:
    """The one sentence for a database error a user can act on (no server, damaged file, full disk, busy), or None
    for anything else."""
    if isinstance(err, DatabaseProblem):
        return err
    if not isinstance(err, DBAPIError):
        return None
    engine = engine or _engines.get(database_url())
    detail = str(getattr(err, "orig", err)).strip().splitlines()[0] if str(getattr(err, "orig", err)).strip() else ""
    lower = detail.lower()
    url = engine.url if engine is not None else None
    if url is not None and url.get_backend_name() == "postgresql" and err.connection_invalidated or \
            "connection" in lower and ("refused" in lower or "failed" in lower or "timeout" in lower):
        where = f"{url.host or 'localhost'}:{url.port or 5432}" if url is not None else "the configured server"
        return DatabaseProblem(f"Cannot connect to the database at {where} ({detail[:160]}); check that PostgreSQL "
                               "is running there and that STUDIO_DB_URL is right.")
    if "database or disk is full" in lower or "no space left" in lower:
        return DatabaseProblem("The disk holding the database is full; free some space, then try again (nothing "
                               "was written).")
    if "file is not a database" in lower or "malformed" in lower or "disk i/o error" in lower:
        from engine.store import backup  # backup imports db: imported when needed, not at load

        return DatabaseProblem(backup.damaged_sentence((url.database if url is not None else None) or "?", detail))
    if "database is locked" in lower:
        return DatabaseProblem("The database stayed busy for 15 s (another process holds a long write); try again.")
    return None


def disk_full(err: BaseException) -> bool:
    text_ = str(getattr(err, "orig", err)).lower()
    return isinstance(err, DBAPIError) and ("database or disk is full" in text_ or "no space left" in text_)


def write_with_reserve(write):
    """Run a short database write; when the disk is full, free the workspace's reserve and try once more (so the
    end of the job that filled the disk is still recorded)."""
    try:
        return write()
    except DBAPIError as err:
        if not disk_full(err) or not workspace.Workspace(workspace.root()).release_reserve():
            raise
    return write()


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return _revision(conn)
    except (OperationalError, ProgrammingError) as err:
        if explain(err, engine) is not None:
            raise
        return None


def _revision(conn) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    """Bring the schema to HEAD with Alembic (a no-op when it is already there), holding the database-wide lock."""
    if current_revision(engine) == HEAD:
        return
    from alembic import command  # only a migration needs it
    from alembic.config import Config  # only a migration needs it

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    lock = locks.exclusive(f"{database}.migrate.lock") if database and database != ":memory:" else _null()
    with lock, engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # held until this transaction ends: the other processes wait here, then find the schema at HEAD
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        revision = _revision(conn)
        if revision == HEAD:
            return
        if revision is not None and database:
            from engine.store import backup  # backup imports db: imported when needed, not at load

            backup.backup(f"before-migration-{revision}")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@contextmanager
def _null() -> Iterator[None]:
    yield


_factories: dict[tuple, sessionmaker] = {}


def _factory() -> sessionmaker:
    # Keyed on the variables that choose the database, so the URL (and the workspace folders behind it) are worked
    # out once per process and database, not on every short transaction.
    now = settings.current()
    key = (now.db_url, now.home, os.getcwd())
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


def serialize(s: Session, key: int) -> None:
    """Make transactions that take the same key run one after another (until this one commits). SQLite already runs
    one writer at a time; on PostgreSQL, under READ COMMITTED, two transactions could each check a condition the
    other is about to break (`INSERT ... WHERE NOT EXISTS` both inserting), so they take a transaction-level
    advisory lock first, and the second then sees the first's committed rows."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
