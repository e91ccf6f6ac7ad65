"""What the Runs page and `studio runs` show about a run, computed from the database row and the run folder."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.jobs import event_log
from engine.jobs.job_files import log_tail
from engine.jobs.supervisor import run_path
from engine.store.tables import Run


@dataclass
class RunSummary:
    run: Run
    curves: dict[str, list[dict]]
    progress: float
    eta_seconds: float | None
    alarm: str | None
    best_step: int | None
    stopped_early: bool
    wandb_url: str | None
    wandb_sync: str | None
    notes: list[str] = field(default_factory=list)
    log: str = ""
    loss: dict | None = None  # how the loss was put on the tokens (the trainer's "loss" event)


def summarize(run: Run) -> RunSummary:
    folder = run_path(run)
    events = event_log.read_events(folder)
    c = event_log.curves(events)
    final = event_log.final_event(events) or {}
    last_log = c["log"][-1] if c["log"] else {}
    max_steps = run.max_steps or last_log.get("max_steps") or 0
    progress = min(run.step / max_steps, 1.0) if max_steps else 0.0
    if run.status == "succeeded":
        progress = 1.0
    wandb = next((e for e in reversed(events) if e["event"] == "wandb"), None)
    url = wandb.get("url") if wandb else None
    sync = f"wandb sync {wandb['dir']}" if wandb and wandb.get("mode") == "offline" else None
    evals = [e for e in c["eval"] if e.get("eval_loss") is not None]
    best_step = final.get("best_step")
    if best_step is None and evals:
        best_step = min(evals, key=lambda e: e["eval_loss"])["step"]
    return RunSummary(
        run=run, curves=c, progress=progress,
        eta_seconds=last_log.get("eta_seconds") if run.status == "running" else None,
        alarm=event_log.overfitting_alarm(events) or event_log.preference_alarm(events), best_step=best_step,
        stopped_early=bool(final.get("stopped_early")), wandb_url=url, wandb_sync=sync,
        notes=[e["message"] for e in events if e["event"] == "note"],
        log=run.log_tail if run.status != "running" and run.log_tail else log_tail(folder),
        loss=next((e for e in reversed(events) if e["event"] == "loss"), None),
    )


def best_run(summaries: list[RunSummary]) -> tuple[RunSummary, float] | None:
    """The run with the lowest validation loss at any evaluation, and that loss (None when no run was validated).
    The validation loss, not the test set: the locked test set never chooses a model."""
    scored = []
    for s in summaries:
        losses = [p["eval_loss"] for p in s.curves["eval"] if p.get("eval_loss") is not None]
        if losses:
            scored.append((min(losses), s))
    if not scored:
        return None
    loss, best = min(scored, key=lambda pair: pair[0])
    return best, loss


def best_validation(runs: list[Run]) -> tuple[RunSummary, float] | None:
    """The project's best validation loss so far, from every run that has one: it appears with a run's first
    validation point, whether that run is still training, finished, or was stopped (its checkpoints are kept)."""
    return best_run([summarize(r) for r in runs if r.status != "queued"])


def config_diff(runs: list[Run]) -> list[dict]:
    """The config keys whose values differ between the runs (one row per key, one column per run)."""
    keys = sorted({k for r in runs for k in r.config})
    rows = []
    for key in keys:
        values = [r.config.get(key) for r in runs]
        if any(v != values[0] for v in values[1:]):
            rows.append({"setting": key, **{f"run {r.id}": str(v) for r, v in zip(runs, values)}})
    return rows

