"""The monitor of one job: it starts the job, waits for it, records how it ended and starts the next queued job, so
nothing depends on a dashboard or a command being open (the role Ray's job supervisor actor plays for a Ray job).

    python -m engine.jobs.monitor RUN_ID RUN_DIR -- COMMAND ...

The supervisor (engine.jobs.supervisor) starts it in a session of its own; the monitor starts the job in another session (a
cancel signals the job's process group, never the monitor), prints the job's pid on stdout for the supervisor and
closes it, then waits. As the job's parent it gets the real exit status, even for a `kill -9`. It is small: no ML
import, a few MB of memory for the job's lifetime.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from engine.jobs import supervisor
from engine.jobs.supervisor import LOG_FILE

PROGRESS_SECONDS = 5.0


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
    sys.stdout.write(f"{proc.pid}\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # nobody reads the pipe after the pid: never block on it
    while True:
        try:
            code = proc.wait(timeout=PROGRESS_SECONDS)
            break
        except subprocess.TimeoutExpired:
            supervisor.record_progress(run_id, proc.pid)  # the database follows the job even with nobody watching
    supervisor.record_exit(run_id, proc.pid, code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
