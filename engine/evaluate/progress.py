"""How far an evaluation job is and how long it has left, read from its events (the page and the CLI poll it)."""

from __future__ import annotations

import time
from pathlib import Path

from engine.evaluate.options import STEPS
from engine.jobs.event_log import read_events


def read_progress(folder: Path, now: float | None = None) -> tuple[float, str]:
    """(fraction done, label with the time left) of a job from its events. The time left counts down between
    progress events (it is estimated at the last event, then the time since is taken off), and when a step runs
    longer than that estimate it is estimated again from the time spent so far, so it never sits still."""
    events = read_events(folder)
    starts = [e for e in events if e["event"] == "start"]
    steps = [e for e in events if e["event"] == "progress"]
    if not steps:
        return 0.0, "starting"
    last = steps[-1]
    fraction = float(last.get("fraction", last["step"] / STEPS))
    label = last.get("label", "")
    if starts and 0.05 <= fraction < 1:
        left = time_left(starts[-1]["time"], last["time"], fraction, time.time() if now is None else now)
        label += f" · about {_duration(left)} left"
    return fraction, label


def time_left(started: float, last_event: float, fraction: float, now: float) -> float:
    """Seconds left: the estimate at the last event minus the time since; past that, the time spent so far scaled
    to what is left (rough: phases differ in speed)."""
    at_event = (last_event - started) * (1 - fraction) / fraction
    counted_down = at_event - (now - last_event)
    if counted_down >= 5:
        return counted_down
    return max((now - started) * (1 - fraction) / fraction, 5.0)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
