"""Backups of the SQLite database, and the way back from a damaged one.

    studio db backup            a consistent copy (SQLite's online backup API) in <workspace>/backups/
    studio db restore [FILE]    put back the newest backup (or FILE); the damaged database is kept beside it

A copy is taken before every migration and by `studio ui` when the newest is a day old; the last KEEP are kept.
PostgreSQL has its own tools (pg_dump, base backups); these commands are for the default SQLite database.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from engine import settings
from engine.errors import StudioError
from engine.store import workspace

KEEP = 5
FOLDER = "backups"


class BackupError(StudioError):
    """A backup or restore cannot be done as asked (one sentence)."""


def _database() -> Path:
    if settings.current().db_url:
        raise BackupError("STUDIO_DB_URL points at another database: back it up with its own tools (pg_dump for "
                          "PostgreSQL).")
    return workspace.root() / "studio.db"


def _folder() -> Path:
    return _database().parent / FOLDER


def backups() -> list[Path]:
    """Existing backups, newest first."""
    folder = _folder()
    return sorted(folder.glob("studio-*.db"), reverse=True) if folder.is_dir() else []


def backup(reason: str = "manual") -> Path:
    database = _database()
    if not database.is_file():
        raise BackupError(f"There is no database at {database} to back up.")
    folder = _folder()
    folder.mkdir(mode=0o700, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    target = folder / f"studio-{stamp}-{''.join(c for c in reason if c.isalnum() or c == '-')[:40]}.db"
    fd = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)  # it holds password hashes too
    os.close(fd)
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    dest = sqlite3.connect(target)
    try:
        source.backup(dest)  # consistent even while the studio writes (it copies a snapshot)
    finally:
        dest.close()
        source.close()
    for old in backups()[KEEP:]:
        old.unlink(missing_ok=True)
    return target


def backup_if_stale(hours: float = 24) -> Path | None:
    try:
        newest = backups()[:1]
        if newest and (datetime.now().timestamp() - newest[0].stat().st_mtime) < hours * 3600:
            return None
        return backup("daily") if _database().is_file() else None
    except (BackupError, OSError, sqlite3.Error):
        return None  # a failed routine backup must not stop the dashboard; `studio db backup` says why


def restore(source: Path | None = None) -> tuple[Path, Path | None]:
    """Copy a backup over the database; the current file (and its WAL) is renamed to studio.db.damaged-<time>.
    Returns (the backup used, where the old database now is)."""
    database = _database()
    chosen = Path(source) if source else next(iter(backups()), None)
    if chosen is None:
        raise BackupError(f"There is no backup in {_folder()}; give the file to restore from.")
    if not chosen.is_file():
        raise BackupError(f"{chosen} does not exist.")
    try:
        check = sqlite3.connect(f"file:{chosen}?mode=ro", uri=True)
        ok = check.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        check.close()
    except sqlite3.Error:
        ok = False
    if not ok:
        raise BackupError(f"{chosen} is not a readable SQLite database either; choose another backup.")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    kept = None
    if database.exists():
        kept = database.with_name(f"studio.db.damaged-{stamp}")
        database.rename(kept)
        for suffix in ("-wal", "-shm"):
            side = database.with_name(database.name + suffix)
            if side.exists():
                side.rename(kept.with_name(kept.name + suffix))
    tmp = database.with_name("studio.db.restoring")
    shutil.copyfile(chosen, tmp)
    os.chmod(tmp, 0o600)
    tmp.replace(database)
    return chosen, kept


def damaged_sentence(path: str, detail: str) -> str:
    """What to tell a user whose database file is damaged: what is wrong, where the backup (and WAL) is, what to run."""
    wal = Path(f"{path}-wal")
    wal_note = f" Its write-ahead log {wal} is kept with it." if wal.is_file() else ""
    try:
        newest = next(iter(backups()), None)
    except BackupError:
        newest = None
    if newest is not None:
        when = datetime.fromtimestamp(newest.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (f"The database {path} is damaged ({detail}). Stop the studio, then run `studio db restore` to put back "
                f"the last good backup ({newest}, {when}); the damaged file is kept beside it.{wal_note}")
    return (f"The database {path} is damaged ({detail}) and there is no backup. Salvage what SQLite can still read "
            f"with `sqlite3 {path} .recover | sqlite3 recovered.db`, then `studio db restore recovered.db`.{wal_note}")
