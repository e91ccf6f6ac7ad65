"""A job's heartbeat: <run>/heartbeat.json rewritten every second with the process's memory use, so the supervisor
can tell an out-of-memory kill from any other, and a watch on the run folder: a job whose workspace was deleted
under it stops itself (nothing could record its results, and the studio could no longer see or cancel it).

Used by every job the supervisor starts (the trainer, the evaluation).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from engine.jobs.failures import EXIT_CODES, said

HEARTBEAT_FILE = "heartbeat.json"
SECONDS = 1.0
WATCH_SECONDS = 0.25
GONE_CHECKS = 2  # the run folder gone at two checks in a row: deleted, not a passing hiccup
GONE = threading.Event()  # set at the first check that misses the folder: the trainer saves nothing more


_watched: dict[str, Any] = {}  # run_dir (Path), original (its identities)


def start(run_dir: Path, writer=None) -> threading.Thread:
    run_dir = Path(run_dir)
    _watched.update(run_dir=run_dir, original=_identities(run_dir))
    thread = threading.Thread(target=_loop, args=(run_dir, writer), daemon=True, name="heartbeat")
    thread.start()
    return thread


def _identities(run_dir: Path) -> tuple:
    # The folder's identity, not its name: a save in flight could recreate the path after a delete.
    return _identity(run_dir), _identity(run_dir.parent.parent)


def folder_gone() -> bool:
    """Checked by the trainer before each save (a stat or two): is the run folder still the one it started in?"""
    if "run_dir" in _watched and _identities(_watched["run_dir"]) != _watched["original"]:
        GONE.set()
    return GONE.is_set()


def _remove_residue(run_dir: Path) -> None:
    """If a save in flight recreated the path after the delete, and the recreated tree holds nothing but this run
    folder, remove it: the user deleted the workspace and must not find it back. Anything else is left alone."""

    root = run_dir.parent.parent
    try:
        if _identity(root) is not None and _identity(root) != _watched.get("original", (None, None))[1] and \
                [p.name for p in root.iterdir()] == [run_dir.parent.name] and \
                [p.name for p in run_dir.parent.iterdir()] == [run_dir.name]:
            shutil.rmtree(root)
    except OSError:
        pass


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _loop(run_dir: Path, writer) -> None:
    import psutil  # only process checks need it

    proc = psutil.Process()
    path = run_dir / HEARTBEAT_FILE
    original = _watched.get("original") or _identities(run_dir)
    missing, last_beat = 0, 0.0
    while True:
        time.sleep(WATCH_SECONDS)
        if _identities(run_dir) != original:
            GONE.set()
            missing += 1
            if missing >= GONE_CHECKS:
                message = (f"{said('workspace_missing')}: {run_dir} was deleted while the job ran, so the job "
                           "stopped itself.")
                if writer is not None:
                    try:  # the metrics file is still open: the line lands in it even if nobody can read it now
                        writer.write("final", outcome="failed", error_kind="workspace_missing", message=message)
                    except (OSError, ValueError):
                        pass
                print(message, file=sys.stderr, flush=True)
                _remove_residue(run_dir)
                os._exit(EXIT_CODES["workspace_missing"])
            continue
        missing = 0
        GONE.clear()
        if time.monotonic() - last_beat < SECONDS:
            continue
        last_beat = time.monotonic()
        try:
            rss = proc.memory_info().rss
            tmp = path.with_suffix(".part")
            tmp.write_text(json.dumps({"time": time.time(), "pid": os.getpid(), "rss_mb": rss / 2**20,
                                       "rss_fraction": rss / psutil.virtual_memory().total}))
            tmp.replace(path)
        except OSError:
            pass  # a full disk: the job itself will fail on its next write and say why


def read(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / HEARTBEAT_FILE).read_text())
    except (OSError, ValueError):
        return {}
