"""The database: created by Alembic migrations, SQLite in WAL mode with a busy timeout, upgrade is idempotent."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from conftest import sqlite_only
from sqlalchemy import create_engine, inspect

from engine.store import db, projects


@sqlite_only
def test_schema_comes_from_migrations_in_wal_mode(ws):
    projects.create_project("first")
    path = ws.root / "studio.db"
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT version_num FROM alembic_version").fetchone()[0] == db.HEAD
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"projects", "dataset_versions", "splits", "locked_records", "alembic_version"} <= tables
    with db.get_engine().connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.BUSY_TIMEOUT_MS


def test_head_matches_the_newest_migration():
    versions = Path(db.__file__).parent / "migrations" / "versions"
    revisions = {re.search(r'^revision = "(\w+)"', p.read_text(), re.M).group(1): p for p in versions.glob("*.py")}
    downs = {re.search(r"^down_revision = (.+)$", p.read_text(), re.M).group(1).strip('"') for p in
             revisions.values()}
    heads = set(revisions) - downs
    assert heads == {db.HEAD}


def test_migrated_schema_matches_the_models(ws):
    from engine.store.tables import Base

    engine = db.get_engine()
    insp = inspect(engine)
    for table in Base.metadata.sorted_tables:
        assert {c["name"] for c in insp.get_columns(table.name)} == {c.name for c in table.columns}, table.name


def test_any_sqlalchemy_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "ws"))
    monkeypatch.setenv("STUDIO_DB_URL", url)
    projects.create_project("via url")
    names = [r[0] for r in create_engine(url).connect().exec_driver_sql("SELECT name FROM projects")]
    assert names == ["via url"]


def test_project_rules(ws):
    import pytest

    projects.create_project("Support bot", "chat")
    with pytest.raises(projects.ProjectError, match="already exists"):
        projects.create_project("Support  bot")
    with pytest.raises(projects.ProjectError, match="Unknown task type"):
        projects.create_project("x", "poetry")
    with pytest.raises(projects.ProjectError):
        projects.create_project("   ")


def test_processes_opening_a_fresh_database_together_migrate_it_once(ws):
    import subprocess
    import sys
    import time

    from conftest import ROOT

    env = {**__import__("os").environ, "STUDIO_HOME": str(ws.root)}
    # Every process imports first and then waits for the same instant, so the four migrations really overlap.
    start = time.time() + 5
    opener = ("import time, alembic.command, sqlalchemy\nfrom engine.store import projects\n"
              f"time.sleep(max(0, {start} - time.time()))\nprint(len(projects.list_projects()))")
    procs = [subprocess.Popen([sys.executable, "-c", opener], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err for _, err in outs]
    assert [out.strip() for out, _ in outs] == ["0"] * 4
    with db.get_engine().connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall() == [(db.HEAD,)]


@sqlite_only
def test_the_workspace_and_the_database_are_private_to_their_owner(ws):
    projects.create_project("private")
    assert ws.root.stat().st_mode & 0o777 == 0o700
    for path in (ws.root / "studio.db", ws.root / "studio.db-wal"):
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_a_postgresql_url_without_its_driver_names_the_extra(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    (tmp_path / "ws").mkdir()
    code = ("import sys; sys.modules['psycopg'] = None; sys.modules['psycopg2'] = None\n"  # as if not installed
            "from engine import cli; sys.exit(cli.main(['versions']))")
    env = {**__import__("os").environ, "STUDIO_HOME": str(tmp_path / "ws"),
           "STUDIO_DB_URL": "postgresql+psycopg://studio@127.0.0.1:1/studio"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "pip install -e '.[postgres]'" in proc.stderr and proc.stderr.count("\n") == 1


def test_a_database_server_that_is_down_is_one_sentence_with_host_and_port(tmp_path):
    import subprocess
    import sys

    import pytest
    from conftest import ROOT

    pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    (tmp_path / "ws").mkdir()
    env = {**__import__("os").environ, "STUDIO_HOME": str(tmp_path / "ws"),
           "STUDIO_DB_URL": "postgresql+psycopg://studio@127.0.0.1:1/studio"}
    for args in (["versions"], ["split", "nothing.jsonl", "--out", str(tmp_path / "o")]):
        proc = subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith("studio: Cannot connect to the database at 127.0.0.1:1 ("), proc.stderr
