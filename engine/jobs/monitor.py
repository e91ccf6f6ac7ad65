"""The monitor of one job: it starts the job, waits for it, records how it ended and starts the next queued job, so
nothing depends on a dashboard or a command being open (the role Ray's job supervisor actor plays for a Ray job).

    python -m engine.jobs.monitor RUN_ID RUN_DIR -- COMMAND ...

The supervisor (engine.jobs.supervisor) starts it in a session of its own; the monitor starts the job in another session (a
cancel signals the job's process group, never the monitor), prints the job's pid on stdout for the supervisor and
closes it, then waits. As the job's parent it gets the real exit status, even for a `kill -9`. It is small: no ML
import, a few MB of memory for the job's lifetime.

On a Ray node (engine.jobs.ray_backend submits this monitor as the job's entrypoint) it also records the job's pid and
node itself, and a SIGTERM (Ray's stop_job) is passed to the job's process group, escalated to SIGKILL after the
cancel grace, as the supervisor does locally.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import update

from engine import settings
from engine.jobs import job_files, processes, supervisor
from engine.jobs.job_files import LOG_FILE
from engine.store import db, workspace
from engine.store.tables import Run

PROGRESS_SECONDS = 5.0


def record_start(run_id: int, pid: int, node: str) -> None:
    """Called by a job's monitor on a Ray node when the job has started: its pid and node."""
    import psutil  # only process checks need it

    with db.session() as s:
        s.execute(update(Run).where(Run.id == run_id, Run.status.in_(supervisor.ACTIVE)).values(
            status="running", pid=pid, proc_start=processes.create_time(psutil, pid), node=node[:120],
            started_at=supervisor.now(), heartbeat=supervisor.now()))


def record_progress(run_id: int, pid: int) -> None:
    """The monitor's periodic update of a running job's step and heartbeat; a failure is left for the next one."""
    try:
        if not workspace.exists():
            return
        with db.session() as s:
            run = s.get(Run, run_id)
            if run is not None and run.status == "running" and run.pid == pid:
                for key, value in job_files.progress(supervisor.run_path(run)).items():
                    setattr(run, key, value)
    except Exception:  # noqa: BLE001 - a busy or full database must not end the monitor (record_exit retries)
        pass


def record_exit(run_id: int, pid: int, code: int) -> None:
    """Called by a job's monitor when the job has exited: record its end, then start the next queued job. Does
    nothing when the workspace (or its database) is gone: nothing may be recreated behind the user's back."""
    if not workspace.exists():
        return
    try:  # the workspace may also go while this runs: the lock then refuses to create it again
        with supervisor.scheduler_lock(create=False):  # the supervisor that started this job has written its pid
            pass
        run = supervisor.get_run(run_id)
        if run.status == "running" and run.pid == pid:
            supervisor.finish_job(run, code)
        supervisor.schedule(create=False)
    except workspace.WorkspaceMissing:
        return


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 4 or argv[2] != "--":
        print("usage: python -m engine.jobs.monitor RUN_ID RUN_DIR -- COMMAND ...", file=sys.stderr)
        return 2
    run_id, folder, command = int(argv[0]), Path(argv[1]), argv[3:]
    with (folder / LOG_FILE).open("ab") as log:
        proc = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    for sig in (signal.SIGINT, signal.SIGHUP):  # after the start: the job keeps the default handlers
        signal.signal(sig, signal.SIG_IGN)
    stopping: list[float] = []

    def stop(signum, frame) -> None:  # passed on to the job, which saves and ends; escalated in the loop below
        stopping.append(time.monotonic())
        processes.signal_group(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    if settings.current().on_ray:
        record_start(run_id, proc.pid, socket.gethostname())
    sys.stdout.write(f"{proc.pid}\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # nobody reads the pipe after the pid: never block on it
    while True:
        try:
            code = proc.wait(timeout=PROGRESS_SECONDS)
            break
        except subprocess.TimeoutExpired:
            record_progress(run_id, proc.pid)  # the database follows the job even with nobody watching
            if stopping and time.monotonic() - stopping[0] > supervisor.grace_seconds():
                processes.signal_group(proc.pid, signal.SIGKILL)
    # What the job started and left behind (a serving job's engine server when the job is killed with kill -9, a
    # data loader's workers) goes with it: nothing of a job outlives the job.
    processes.signal_group(proc.pid, signal.SIGKILL)
    record_exit(run_id, proc.pid, code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
