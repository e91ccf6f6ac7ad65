"""The run supervisor: run state in the database, trainer processes in their own process groups.

    launch(config, command)   write the job (queued), its config.json and command, then schedule
    schedule()       start queued runs, first in first out, one at a time per device (one on a CPU-only machine)
    reconcile()      refresh the progress of running jobs; finish a job whose process and monitor are both gone (a
                     machine restart); escalate a cancel to SIGKILL after the grace period; then schedule
    record_exit()    called by a job's monitor (engine.jobs.monitor) when the job ends: its outcome, then schedule
    cancel(id)       SIGTERM to the group (the trainer stops at the next step and saves); SIGKILL after the grace
    resume(id)       queue it again; the trainer continues from its last complete checkpoint

Each job runs under a small monitor process that records its end (with the real exit status) and starts the next
queued job, so nothing depends on anyone watching; every reader also runs `reconcile`, and a restarted dashboard
simply reads the state: nothing lives in a process's memory.

With STUDIO_JOB_BACKEND=ray (engine.jobs.ray_backend), training and evaluation jobs are submitted to a Ray cluster
at once (Ray queues them by their resources) and run under the same monitor there; reconcile maps Ray's job states
onto the studio's, and cancel is Ray's stop_job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from engine import settings
from engine.errors import StudioError
from engine.jobs import heartbeat, job_files, processes, ray_backend, secret_env
from engine.jobs.checkpoints import complete_checkpoints
from engine.jobs.event_log import final_event
from engine.jobs.failures import classify_exit
from engine.jobs.job_files import LOG_FILE, log_tail
from engine.store import db, locks, workspace
from engine.store.tables import Run

ACTIVE = ("queued", "running")
_monitors: list[subprocess.Popen] = []  # job monitors this process started (reaped when they end)


class RunError(StudioError, ValueError):
    pass


def grace_seconds() -> float:
    return settings.current().cancel_grace


def now() -> datetime:
    return datetime.now(UTC)


def run_path(run: Run) -> Path:
    """The job's folder (never creates the workspace: a job ending after its workspace was deleted must not bring it
    back)."""
    return workspace.root() / run.run_dir


def launch(config, command: list[str], project_id: int | None = None, request_key: str | None = None,
           run_dir: Path | None = None, device: str | None = None, kind: str = "train",
           target_run_id: int | None = None, then_command: list[str] | None = None) -> Run:
    """Register a job (queued) with its config.json and command, then schedule. The same request_key returns the
    same job. then_command runs once the job has succeeded ("{python}" and "{run_id}" filled in), with nobody
    watching: the hand-over a stage asks for (a retraining run registers its model version).

    config: the job's typed config (a pydantic model with name, device, max_steps; saved as config.json). command:
    what runs it, with "{python}" and "{run_dir}" placeholders; a resumed job gets "--resume" appended. The stage
    that launches the job knows its command (engine.train.launcher, engine.evaluate.job); the supervisor does not.
    """
    key = request_key or uuid.uuid4().hex
    with db.session() as s:
        existing = s.scalar(select(Run).where(Run.request_key == key))
        if existing is not None:
            return existing
    backend = ray_backend.backend_for(kind)
    if backend == "ray":  # a cluster that cannot take it is one sentence now, not a failed job later
        problems = ray_backend.check(db.get_engine().dialect.name, workspace.current().root)
        if problems:
            raise ray_backend.RayError(" ".join(problems))
    ws = workspace.current()
    if run_dir is not None:  # the user's own folder (studio train --out): stored as an absolute path
        folder = Path(run_dir).resolve()
        if folder.exists() and any(folder.iterdir()):
            raise RunError(f"The run folder {folder} is not empty.")
        rel = folder
    else:
        prefix = "" if kind == "train" else f"{kind}-"
        rel = Path("runs") / f"{prefix}{now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"
        folder = ws.root / rel
    folder.mkdir(parents=True, exist_ok=True)
    config.save(folder / "config.json")
    device = device or default_device(config)
    try:
        with db.session() as s:
            run = Run(project_id=project_id, name=config.name, status="queued", run_dir=str(rel),
                      config=json.loads(config.model_dump_json()), request_key=key, device=device, resume=False,
                      attempts=0, step=0, max_steps=max(config.max_steps, 0), kind=kind,
                      target_run_id=target_run_id, command=list(command), backend=backend,
                      then_command=list(then_command) if then_command else None)
            s.add(run)
            s.flush()
            run_id = run.id
    except IntegrityError:  # a concurrent launch with the same key won the race
        with db.session() as s:
            return s.scalars(select(Run).where(Run.request_key == key)).one()
    schedule()
    return get_run(run_id)


def default_device(config) -> str:
    """The device slot a run occupies: 'cpu', or 'cuda' (one run per GPU set at a time)."""
    if config.device == "cpu":
        return "cpu"
    if config.device == "cuda":
        return "cuda"
    return "cuda" if processes.cuda_count() > 0 else "cpu"


def get_run(run_id: int) -> Run:
    with db.session() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise RunError(f"There is no run {run_id}.")
        return run


def list_runs(project_id: int | None = None, kind: str | None = "train") -> list[Run]:
    """Newest first; kind "train" (the default), "eval", or None for every job."""
    with db.session() as s:
        q = select(Run).order_by(Run.id.desc())
        if project_id is not None:
            q = q.where(Run.project_id == project_id)
        if kind is not None:
            q = q.where(Run.kind == kind)
        return list(s.scalars(q))


@contextmanager
def scheduler_lock(create: bool = True):
    """One scheduler at a time across processes (dashboard, CLI, finishing trainers). create=False is for a job's
    monitor, which runs with nobody watching: a workspace deleted meanwhile is not made again (WorkspaceMissing)."""
    root = workspace.current().root if create else workspace.root()
    with ExitStack() as held:
        try:
            (root / "runs").mkdir(parents=create, exist_ok=True)
            held.enter_context(locks.exclusive(root / "runs" / ".scheduler.lock", create_folder=False))
        except FileNotFoundError:
            raise workspace.WorkspaceMissing(f"There is no workspace at {root} any more; nothing was created.") \
                from None
        yield


def schedule(create: bool = True) -> list[int]:
    """Start the oldest queued run of every free device. Returns the ids started. create: as for scheduler_lock."""
    started = []
    with scheduler_lock(create):
        with db.session() as s:
            busy = set(s.scalars(select(Run.device).where(Run.status == "running", Run.backend == "local")))
            queued = list(s.scalars(select(Run).where(Run.status == "queued").order_by(Run.id)))
        for run in queued:
            if run.backend == "ray":  # Ray's own queue decides when it starts
                if run.backend_job is None:
                    _submit_ray(run)
                    started.append(run.id)
                continue
            if run.device in busy:
                continue
            _start(run)
            busy.add(run.device)
            started.append(run.id)
    return started


def job_command(run: Run, folder: Path) -> list[str]:
    """The job's stored command with its placeholders filled ("--resume" appended for a resumed job)."""
    filled = [part.replace("{python}", sys.executable).replace("{run_dir}", str(folder)) for part in run.command or []]
    return filled + (["--resume"] if run.resume else [])


def _job_env() -> dict[str, str]:
    ws = workspace.current()
    env = {**ws.library_env(), "STUDIO_HOME": str(ws.root), "TMPDIR": str(ws.tmp), "PYTHONUNBUFFERED": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    root = Path(__file__).resolve().parents[2]  # the folder holding the engine package (never engine/ itself: its
    # modules would shadow the standard library's and other packages' of the same name, as engine/numbers.py once did)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    return env


def _submit_ray(run: Run) -> None:
    """Submit the job to the Ray cluster under its monitor; a cluster that refuses it fails it in one sentence."""
    folder = run_path(run)
    gpus = int(run.config.get("num_gpus") or 1) if run.device == "cuda" else 0
    cpus = float(run.config.get("num_gpus") or 1) if run.config.get("device") == "cpu" else 1.0
    env = ray_backend.job_env({**_job_env(), "STUDIO_ON_RAY": "1"}, grace_seconds())
    values: dict[str, Any] = {"attempts": Run.attempts + 1, "exit_code": None, "error_kind": None,
                              "error_message": None, "finished_at": None, "pid": None, "node": None}
    try:
        values["backend_job"] = ray_backend.submit(run.id, str(folder), job_command(run, folder), env, gpus, cpus)
    except ray_backend.RayError as err:
        values.update(status="failed", error_kind="backend", error_message=str(err), finished_at=now())
    with db.session() as s:
        s.execute(update(Run).where(Run.id == run.id).values(**values))


def _start(run: Run) -> None:
    """Start the job under its monitor (engine.jobs.monitor), which records its end and starts the next one."""
    import psutil  # only process checks need it

    folder = run_path(run)
    env = {**os.environ, **_job_env(), **secret_env.take(run.request_key)}
    with (folder / LOG_FILE).open("ab") as log:
        monitor = subprocess.Popen([sys.executable, "-m", "engine.jobs.monitor", str(run.id), str(folder), "--",
                                    *job_command(run, folder)], cwd=folder, env=env, stdout=subprocess.PIPE,
                                   stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    _monitors.append(monitor)
    assert monitor.stdout is not None  # a pipe
    line = monitor.stdout.readline()
    monitor.stdout.close()
    values: dict[str, Any] = {"attempts": Run.attempts + 1, "exit_code": None, "error_kind": None, "error_message": None,
              "finished_at": None, "started_at": now(), "heartbeat": now(), "monitor_pid": monitor.pid,
              "monitor_start": processes.create_time(psutil, monitor.pid)}
    if line.strip().isdigit():
        pid = int(line)
        values.update(status="running", pid=pid, proc_start=processes.create_time(psutil, pid))
    else:  # the monitor could not start the job: its error is in the log
        monitor.wait()
        values.update(status="failed", pid=None, error_kind="crashed", finished_at=now(), log_tail=log_tail(folder),
                      error_message="The job could not be started; see its log.")
    with db.session() as s:
        s.execute(update(Run).where(Run.id == run.id).values(**values))


def _reap_monitors() -> None:
    """Collect the exit status of monitors this process started, so none lingers as a zombie."""
    _monitors[:] = [m for m in _monitors if m.poll() is None]


def _alive(run: Run) -> bool:
    return processes.process_alive(run.pid, run.proc_start)


def _monitor_alive(run: Run) -> bool:
    return processes.process_alive(run.monitor_pid, run.monitor_start)


def reconcile() -> None:
    """Bring every running job's state in line with its process, then start what can start. A job whose process
    has ended is left to its monitor, which knows the exit status; only a job whose monitor is gone too (killed, or
    the machine restarted) is finished here."""
    _reap_monitors()
    with db.session() as s:
        running = list(s.scalars(select(Run).where(Run.status == "running", Run.backend == "local")))
        on_ray = list(s.scalars(select(Run).where(Run.status.in_(ACTIVE), Run.backend == "ray",
                                                  Run.backend_job.is_not(None))))
    for run in on_ray:
        _reconcile_ray(run)
    for run in running:
        folder = run_path(run)
        if _alive(run):
            if run.cancel_requested_at and (now() - _aware(run.cancel_requested_at)).total_seconds() > grace_seconds():
                processes.signal_group(run.pid, signal.SIGKILL)
            else:
                with db.session() as s:
                    s.execute(update(Run).where(Run.id == run.id).values(**job_files.progress(folder)))
            continue
        if not _monitor_alive(run):
            finish_job(run, None)
    schedule()


def _reconcile_ray(run: Run) -> None:
    """Ray's view of a submitted job: where it runs, and its end when its monitor could not record it (the node
    was lost, or the monitor was killed). A cluster that does not answer leaves the state for the next look."""
    try:
        found = ray_backend.info(str(run.backend_job))
    except ray_backend.RayError:
        return
    values: dict[str, Any] = {"node": found["node"] or run.node}
    if found["state"] == "running" and run.status == "queued":
        values.update(status="running", started_at=now())
    if found["state"] in ACTIVE:
        values.update(job_files.progress(run_path(run)) if found["state"] == "running" else {})
        with db.session() as s:
            s.execute(update(Run).where(Run.id == run.id).values(**values))
        return
    with db.session() as s:  # ended in Ray but not recorded by its monitor: record it from Ray's exit status
        s.execute(update(Run).where(Run.id == run.id, Run.status.in_(ACTIVE)).values(status="running", **values))
    code = found["exit_code"]
    if found["state"] == "cancelled" and code is None:
        code = -signal.SIGTERM
    finish_job(get_run(run.id), code)


def finish_job(run: Run, code: int | None) -> None:
    """Record how a job whose process has ended finished: its final event, or else its exit status."""
    folder = run_path(run)
    final = final_event(job_files.attempt_events(folder))
    if final is not None:
        status = {"succeeded": "succeeded", "cancelled": "cancelled"}.get(str(final.get("outcome")), "failed")
        kind, message = final.get("error_kind"), final.get("message")
    elif run.cancel_requested_at and code == -signal.SIGTERM and run.backend == "local":  # before its handler was set
        status, kind, message = "cancelled", None, "Cancelled while it was starting."
    elif run.cancel_requested_at and (code is None or code < 0):
        status, kind, message = "cancelled", None, "Cancelled; the job did not stop in time and was killed."
    else:
        status = "failed"
        kind, message = classify_exit(code, heartbeat.read(folder).get("rss_fraction"), run.kind)
    values = dict(job_files.progress(folder), status=status, exit_code=code, error_kind=kind, error_message=message,
                  log_tail=log_tail(folder), finished_at=now())

    def write() -> bool:
        with db.session() as s:
            return s.execute(update(Run).where(Run.id == run.id, Run.status == "running").values(**values)
                             .returning(Run.id)).scalar() is not None

    if db.write_with_reserve(write) and status == "succeeded" and run.then_command:
        _hand_over(run)


def _hand_over(run: Run) -> None:
    """Start the job's follow-up command in the background (its output appended to the job's log)."""
    command = [part.replace("{python}", sys.executable).replace("{run_id}", str(run.id))
               for part in run.then_command or []]
    folder = run_path(run)
    with (folder / LOG_FILE).open("ab") as log:
        subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def cancel(run_id: int) -> Run:
    """Ask a run to stop: a queued run is cancelled at once; a running one gets SIGTERM (SIGKILL after grace)."""
    run = get_run(run_id)
    if run.status == "queued":
        with db.session() as s:
            s.execute(update(Run).where(Run.id == run_id, Run.status == "queued").values(
                status="cancelled", finished_at=now(), error_message="Cancelled before it started."))
    elif run.status == "running" or run.backend_job:
        if run.cancel_requested_at is None:
            with db.session() as s:
                s.execute(update(Run).where(Run.id == run_id).values(cancel_requested_at=now()))
        if run.backend == "ray" and run.backend_job:  # SIGTERM to its monitor there, which passes it on
            ray_backend.stop(run.backend_job)
        elif run.pid and _alive(run):
            processes.signal_group(run.pid, signal.SIGTERM)
    return get_run(run_id)


RESUMABLE = ("train", "augment")


def resume(run_id: int) -> Run:
    """Queue a failed or cancelled run again; it continues from its last complete checkpoint (an augmentation from
    its saved results)."""
    run = get_run(run_id)
    if run.kind not in RESUMABLE:
        raise RunError(f"Job {run_id} is a {run.kind} job; start it again instead of resuming it.")
    if run.status not in ("failed", "cancelled"):
        raise RunError(f"Run {run_id} is {run.status}; only a failed or cancelled run can be resumed.")
    if run.kind == "train" and not complete_checkpoints(run_path(run)):
        raise RunError(f"Run {run_id} has no complete checkpoint to resume from; launch it again instead.")
    with db.session() as s:
        s.execute(update(Run).where(Run.id == run_id).values(
            status="queued", resume=True, cancel_requested_at=None, error_kind=None, error_message=None,
            finished_at=None, backend_job=None))
    schedule()
    return get_run(run_id)


def wait(run_id: int, timeout: float | None = None, poll: float = 0.5) -> Run:
    """Reconcile until the run has ended (for the foreground CLI and tests)."""

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        reconcile()
        run = get_run(run_id)
        if run.status not in ACTIVE:
            return run
        if deadline is not None and time.monotonic() > deadline:
            return run
        time.sleep(poll)
