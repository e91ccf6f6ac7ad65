"""Run metrics: one flushed JSON line per event in <run>/metrics.jsonl, the source of truth for the curves.

Written by the trainer's callback (it survives `kill -9`: every line is flushed, so it is in the kernel's page cache
when the process dies; the start and the final event are also fsynced, which a machine crash needs), read by the
pages and the CLI. A truncated last line (a write cut by a kill) is skipped. After a resume, steps logged again replace the
earlier lines of the same step, so curves continue instead of doubling back.

Events: {"event": "start" | "log" | "eval" | "final", "time", "step", ...}
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
SYNCED = ("start", "final")


class MetricsWriter:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / METRICS_FILE
        self._f = self.path.open("a", encoding="utf-8")

    def write(self, event: str, **fields) -> None:
        record = {"event": event, "time": round(time.time(), 3), **fields}
        self._f.write(json.dumps(record, default=_plain) + "\n")
        self._f.flush()
        if event in SYNCED:  # not every line: an fsync can take milliseconds (network and sandboxed filesystems)
            os.fsync(self._f.fileno())

    def close(self) -> None:
        try:
            self._f.close()
        except OSError:  # a full disk fails the last flush; the job's exit status still says why
            pass


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_events(run_dir: Path) -> list[dict]:
    """Every complete event line; a partial or damaged line is skipped, never fatal."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    events = []
    with path.open("r", encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # the last line was cut mid-write
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict) and "event" in value:
                events.append(value)
    return events


def curves(events: list[dict]) -> dict[str, list[dict]]:
    """Train ("log") and validation ("eval") points by step; a step logged again (after a resume) replaces the old."""
    out: dict[str, dict[int, dict]] = {"log": {}, "eval": {}}
    for e in events:
        if e["event"] in out and "step" in e:
            out[e["event"]][int(e["step"])] = e
    return {kind: [points[s] for s in sorted(points)] for kind, points in out.items()}


def final_event(events: list[dict]) -> dict | None:
    finals = [e for e in events if e["event"] == "final"]
    return finals[-1] if finals else None


def latest_step(events: list[dict]) -> int:
    steps = [int(e["step"]) for e in events if "step" in e]
    return max(steps) if steps else 0


def perplexity(loss: float | None) -> float | None:
    if loss is None:
        return None
    return math.exp(min(loss, 50.0))


def overfitting_alarm(events: list[dict], window: int = 3) -> str | None:
    """Validation loss rising for `window` evaluations while training loss falls: the classic overfitting sign."""
    c = curves(events)
    evals = [e["eval_loss"] for e in c["eval"] if e.get("eval_loss") is not None]
    if len(evals) < window + 1:
        return None
    recent = evals[-(window + 1):]
    rising = all(b > a for a, b in zip(recent, recent[1:]))
    first_eval_step = c["eval"][-(window + 1)]["step"]
    train = [e["loss"] for e in c["log"] if e.get("loss") is not None and e["step"] >= first_eval_step]
    falling = len(train) >= 2 and train[-1] < train[0]
    if rising and falling:
        best = min(evals)
        return (f"Validation loss has risen for {window} evaluations (best {best:.3f}, now {evals[-1]:.3f}) while "
                "training loss keeps falling: the model is memorizing. Keep early stopping on (it restores the best "
                "checkpoint), or lower the epochs or learning rate, or add data.")
    return None


PREFERENCE_DROP = 0.1  # validation reward accuracy this far below its best, with the training margin still growing


def preference_alarm(events: list[dict]) -> str | None:
    """A preference run over-optimising: the training reward margin keeps growing while validation reward accuracy
    (the share of held-out pairs the model prefers the right way) has fallen from its best."""
    c = curves(events)
    evals = [e for e in c["eval"] if e.get("eval_reward_accuracy") is not None]
    if len(evals) < 3:
        return None
    best = max(evals, key=lambda e: e["eval_reward_accuracy"])
    last = evals[-1]
    if last["eval_reward_accuracy"] > best["eval_reward_accuracy"] - PREFERENCE_DROP:
        return None
    margins = [e for e in c["log"] if e.get("reward_margin") is not None]
    before = [e["reward_margin"] for e in margins if e["step"] <= best["step"]][-2:]
    after = [e["reward_margin"] for e in margins if e["step"] > best["step"]][-2:]
    if not before or not after or sum(after) / len(after) <= sum(before) / len(before):
        return None
    return (f"The training reward margin keeps growing ({sum(before) / len(before):.2f} -> "
            f"{sum(after) / len(after):.2f}) while validation reward accuracy fell from "
            f"{best['eval_reward_accuracy']:.0%} (step {best['step']}) to {last['eval_reward_accuracy']:.0%}: the "
            "model is over-optimising the training pairs. Keep early stopping on (it restores the best checkpoint), "
            "raise beta or lower the learning rate, or add pairs.")
