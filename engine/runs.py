"""The run supervisor: run state in the database, trainer processes in their own process groups.

    launch(config)   write the run (queued) and its config.json, then schedule
    schedule()       start queued runs, first in first out, one at a time per device (one on a CPU-only machine)
    reconcile()      mark runs whose process is gone (or whose pid was reused) as failed/cancelled/succeeded, with
                     the reason; escalate a cancel to SIGKILL after the grace period; then schedule
    cancel(id)       SIGTERM to the group (the trainer stops at the next step and saves); SIGKILL after the grace
    resume(id)       queue it again; the trainer continues from its last complete checkpoint

Every caller (the dashboard's timer, each CLI command, a trainer that just finished) runs `reconcile`, so the state is
right whoever is watching, and a restarted dashboard simply reads it: nothing lives in a process's memory.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from engine import db, workspace
from engine.failures import classify_exit
from engine.metrics import final_event, latest_step, read_events
from engine.run_config import RunConfig
from engine.tables import Run

ACTIVE = ("queued", "running")
LOG_FILE = "train.log"
_children: dict[int, subprocess.Popen] = {}  # processes this process started (to collect their exit codes)


class RunError(ValueError):
    pass


def grace_seconds() -> float:
    return float(os.environ.get("STUDIO_CANCEL_GRACE", "20"))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def run_path(run: Run) -> Path:
    return workspace.current().root / run.run_dir


def launch(config, project_id: int | None = None, request_key: str | None = None,
           run_dir: Path | None = None, device: str | None = None, kind: str = "train",
           target_run_id: int | None = None) -> Run:
    """Register a job (queued) with its config.json, then schedule. The same request_key returns the same job.

    kind "train": config is a RunConfig; kind "eval": an engine.eval_job.EvalOptions, target_run_id the run evaluated.
    """
    key = request_key or uuid.uuid4().hex
    with db.session() as s:
        existing = s.scalar(select(Run).where(Run.request_key == key))
        if existing is not None:
            return existing
    ws = workspace.current()
    if run_dir is not None:  # the user's own folder (studio train --out): stored as an absolute path
        folder = Path(run_dir).resolve()
        if folder.exists() and any(folder.iterdir()):
            raise RunError(f"The run folder {folder} is not empty.")
        rel = folder
    else:
        prefix = "eval-" if kind == "eval" else ""
        rel = Path("runs") / f"{prefix}{_now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"
        folder = ws.root / rel
    folder.mkdir(parents=True, exist_ok=True)
    config.save(folder / "config.json")
    device = device or default_device(config)
    try:
        with db.session() as s:
            run = Run(project_id=project_id, name=config.name, status="queued", run_dir=str(rel),
                      config=json.loads(config.model_dump_json()), request_key=key, device=device, resume=False,
                      attempts=0, step=0, max_steps=max(config.max_steps, 0), kind=kind,
                      target_run_id=target_run_id)
            s.add(run)
            s.flush()
            run_id = run.id
    except IntegrityError:  # a concurrent launch with the same key won the race
        with db.session() as s:
            return s.scalar(select(Run).where(Run.request_key == key))
    schedule()
    return get_run(run_id)


def default_device(config) -> str:
    """The device slot a run occupies: 'cpu', or 'cuda' (one run per GPU set at a time)."""
    if config.device == "cpu":
        return "cpu"
    if config.device == "cuda":
        return "cuda"
    return "cuda" if _cuda_count() > 0 else "cpu"


def _cuda_count() -> int:
    # nvidia-smi's absence is the common case here; no torch import on this path.
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return len(list(Path("/dev").glob("nvidia[0-9]*")))


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
def _scheduler_lock():
    """One scheduler at a time across processes (dashboard, CLI, finishing trainers)."""
    path = workspace.current().root / "runs" / ".scheduler.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def schedule() -> list[int]:
    """Start the oldest queued run of every free device. Returns the ids started."""
    started = []
    with _scheduler_lock():
        with db.session() as s:
            busy = set(s.scalars(select(Run.device).where(Run.status == "running")))
            queued = list(s.scalars(select(Run).where(Run.status == "queued").order_by(Run.id)))
        for run in queued:
            if run.device in busy:
                continue
            _start(run)
            busy.add(run.device)
            started.append(run.id)
    return started


def trainer_command(config: RunConfig, run_dir: Path, resume: bool) -> list[str]:
    """The command that trains: the module itself, or `accelerate launch` for more than one GPU."""
    tail = [str(run_dir)] + (["--resume"] if resume else [])
    if config.num_gpus > 1:
        return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(config.num_gpus),
                "--mixed_precision", "bf16" if config.precision in ("auto", "bf16") else "no",
                "-m", "engine.train", *tail]
    return [sys.executable, "-m", "engine.train", *tail]


def job_command(run: Run, folder: Path) -> list[str]:
    if run.kind == "eval":
        return [sys.executable, "-m", "engine.eval_job", str(folder)]
    return trainer_command(RunConfig.model_validate(run.config), folder, run.resume)


def _start(run: Run) -> None:
    import psutil

    folder = run_path(run)
    ws = workspace.current()
    env = {**os.environ, **ws.library_env(), "STUDIO_HOME": str(ws.root), "TMPDIR": str(ws.tmp),
           "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    with (folder / LOG_FILE).open("ab") as log:
        proc = subprocess.Popen(job_command(run, folder), cwd=folder, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    _children[proc.pid] = proc
    try:
        created = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        created = None
    with db.session() as s:
        s.execute(update(Run).where(Run.id == run.id).values(
            status="running", pid=proc.pid, proc_start=created, started_at=_now(), heartbeat=_now(),
            attempts=Run.attempts + 1, exit_code=None, error_kind=None, error_message=None, finished_at=None))


def _alive(run: Run) -> bool:
    import psutil

    if not run.pid:
        return False
    try:
        proc = psutil.Process(run.pid)
        if run.proc_start is not None and abs(proc.create_time() - run.proc_start) > 0.01:
            return False  # the pid now belongs to another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _exit_code(pid: int) -> int | None:
    """The exit status when this process started the trainer (reaping it); None otherwise."""
    proc = _children.pop(pid, None)
    if proc is not None:
        try:
            return proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if done else None


def _attempt_events(folder: Path) -> list[dict]:
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


def _heartbeat(folder: Path) -> dict:
    try:
        return json.loads((folder / "heartbeat.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def reconcile() -> None:
    """Bring every running run's state in line with its process, then start what can start."""
    with db.session() as s:
        running = list(s.scalars(select(Run).where(Run.status == "running")))
    for run in running:
        folder = run_path(run)
        events = read_events(folder)
        beat = _heartbeat(folder)
        values = {"step": latest_step(events)}
        steps = [e.get("max_steps") for e in events if e.get("max_steps")]
        if steps:
            values["max_steps"] = int(steps[-1])
        if beat.get("time"):
            values["heartbeat"] = datetime.fromtimestamp(beat["time"], timezone.utc)
        if _alive(run):
            if run.cancel_requested_at and (_now() - _aware(run.cancel_requested_at)).total_seconds() > grace_seconds():
                _signal_group(run.pid, signal.SIGKILL)
            else:
                with db.session() as s:
                    s.execute(update(Run).where(Run.id == run.id).values(**values))
                continue
        code = _exit_code(run.pid) if run.pid else None
        final = final_event(_attempt_events(folder))
        if final is not None:
            status = {"succeeded": "succeeded", "cancelled": "cancelled"}.get(final.get("outcome"), "failed")
            kind, message = final.get("error_kind"), final.get("message")
        elif run.cancel_requested_at:
            status, kind, message = "cancelled", None, "Cancelled; the trainer did not stop in time and was killed."
        else:
            status = "failed"
            kind, message = classify_exit(code, beat.get("rss_fraction"))
        with db.session() as s:
            s.execute(update(Run).where(Run.id == run.id, Run.status == "running").values(
                **values, status=status, exit_code=code, error_kind=kind, error_message=message,
                log_tail=log_tail(folder), finished_at=_now()))
    schedule()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the trainer leads its own session, so its pgid is its pid
    except (ProcessLookupError, PermissionError):
        pass


def cancel(run_id: int) -> Run:
    """Ask a run to stop: a queued run is cancelled at once; a running one gets SIGTERM (SIGKILL after grace)."""
    run = get_run(run_id)
    if run.status == "queued":
        with db.session() as s:
            s.execute(update(Run).where(Run.id == run_id, Run.status == "queued").values(
                status="cancelled", finished_at=_now(), error_message="Cancelled before it started."))
    elif run.status == "running":
        if run.cancel_requested_at is None:
            with db.session() as s:
                s.execute(update(Run).where(Run.id == run_id).values(cancel_requested_at=_now()))
        if run.pid and _alive(run):
            _signal_group(run.pid, signal.SIGTERM)
    return get_run(run_id)


def resume(run_id: int) -> Run:
    """Queue a failed or cancelled run again; it continues from its last complete checkpoint."""
    from engine.train import complete_checkpoints

    run = get_run(run_id)
    if run.kind != "train":
        raise RunError(f"Job {run_id} is an evaluation; start the evaluation again instead of resuming it.")
    if run.status not in ("failed", "cancelled"):
        raise RunError(f"Run {run_id} is {run.status}; only a failed or cancelled run can be resumed.")
    if not complete_checkpoints(run_path(run)):
        raise RunError(f"Run {run_id} has no complete checkpoint to resume from; launch it again instead.")
    with db.session() as s:
        s.execute(update(Run).where(Run.id == run_id).values(
            status="queued", resume=True, cancel_requested_at=None, error_kind=None, error_message=None,
            finished_at=None))
    schedule()
    return get_run(run_id)


def wait(run_id: int, timeout: float | None = None, poll: float = 0.5) -> Run:
    """Reconcile until the run has ended (for the foreground CLI and tests)."""
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        reconcile()
        run = get_run(run_id)
        if run.status not in ACTIVE:
            return run
        if deadline is not None and time.monotonic() > deadline:
            return run
        time.sleep(poll)
