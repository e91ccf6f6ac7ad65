"""Evaluation jobs: queued with the supervisor like training runs (one job per device, after any training run on
it), found again by run and baseline, and their state in words for the page and the CLI."""

from __future__ import annotations

from sqlalchemy import select

from engine.evaluate.comparison import baseline_run, check_run, general_set, load_schema
from engine.evaluate.options import EvalOptions
from engine.evaluate.progress import read_progress
from engine.jobs import supervisor
from engine.store import db, projects
from engine.store.tables import Run


def queue(options, request_key: str | None = None) -> Run:
    """Queue an evaluation job with the supervisor (one job per device, after any training run on it)."""
    options = EvalOptions.model_validate(options.model_dump() if hasattr(options, "model_dump") else options)
    run, _ = check_run(options.run_id)
    baseline_run(run, options.baseline)
    if options.json_schema:
        load_schema(options.json_schema)
    if options.general:
        general_set(options.general)
    active = latest_job(run.id, options.baseline)
    if active is not None and active.status in supervisor.ACTIVE:
        return active  # a second click while it runs starts nothing
    if options.task == "chat" and run.project_id:
        options.task = projects.get_project(run.project_id).task_type or "chat"
    options.name = options.name or (f"eval of run {run.id}" + ("" if options.baseline == "base"
                                                              else f" vs run {options.baseline}"))
    return supervisor.launch(options, ["{python}", "-m", "engine.evaluate.job", "{run_dir}"], run.project_id,
                             request_key=request_key, kind="eval", target_run_id=run.id, device=run.device)


def latest_job(run_id: int, baseline: str | int = "base", succeeded: bool = False) -> Run | None:
    """The newest evaluation job of the run against that baseline (only a succeeded one: the job whose report and
    answers are the stored ones; a later cancelled or failed job leaves them untouched)."""
    with db.session() as s:
        jobs = list(s.scalars(select(Run).where(Run.kind == "eval", Run.target_run_id == run_id)
                              .order_by(Run.id.desc())))
    return next((j for j in jobs if str(j.config.get("baseline", "base")) == str(baseline)
                 and (not succeeded or j.status == "succeeded")), None)


def job_state(job: Run | None) -> dict:
    """{"state": none|queued|running|succeeded|failed|cancelled, "progress", "label"} of an evaluation job."""
    if job is None:
        return {"state": "none", "progress": 0.0, "label": ""}
    progress, label = read_progress(supervisor.run_path(job))
    if job.status == "queued":
        label = "waiting for the device (a training run or another evaluation is using it)"
    elif job.status in ("failed", "cancelled"):
        label = job.error_message or job.status
    return {"state": job.status, "progress": progress, "label": label, "job": job.id}
