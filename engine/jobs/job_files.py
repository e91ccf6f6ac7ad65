"""What a job leaves in its run folder, read for its state: the events of its latest attempt, its progress (step,
max steps, heartbeat) and the tail of its log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.jobs import heartbeat
from engine.jobs.event_log import latest_step, read_events

LOG_FILE = "train.log"  # a job's stdout and stderr, in its run folder (written by its monitor)


def attempt_events(folder: Path) -> list[dict]:
    """Events of the latest attempt (after the last start event)."""
    events = read_events(folder)
    starts = [i for i, e in enumerate(events) if e["event"] == "start"]
    return events[starts[-1]:] if starts else events


def log_tail(folder: Path, lines: int = 40) -> str:
    path = folder / LOG_FILE
    if not path.is_file():
        return ""
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 64 * 1024))
        text = f.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def progress(folder: Path) -> dict:
    events = read_events(folder)
    values: dict[str, Any] = {"step": latest_step(events)}
    steps = [e["max_steps"] for e in events if e.get("max_steps")]
    if steps:
        values["max_steps"] = int(steps[-1])
    beat = heartbeat.read(folder)
    if beat.get("time"):
        values["heartbeat"] = datetime.fromtimestamp(beat["time"], UTC)
    return values
