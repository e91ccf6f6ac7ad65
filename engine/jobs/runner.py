"""One way every job runs inside its process: training, evaluation, serving and augmentation all open their event log,
beat their heartbeat, write their start event, and end in exactly one final event with one of the outcomes the
supervisor knows (succeeded, cancelled, failed with an error kind and one sentence), through `run` below. The
supervisor (engine.jobs.supervisor) then turns that final event into the run's row, the same way for every kind.

    return runner.run(folder, "eval", body, stopped=(Cancelled,), stopped_message="Cancelled; ...")

`body(writer)` does the job's work and returns the final event's fields (at least "outcome").
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.jobs import heartbeat
from engine.jobs.event_log import MetricsWriter
from engine.jobs.failures import classify_exception, write_failure

OUTCOMES = ("succeeded", "cancelled", "failed")  # what a final event says; the run's status is the same word


def run(folder: Path, job: str, body: Callable[[MetricsWriter], dict[str, Any]], *, resume: bool = False,
        start: dict[str, Any] | None = None, events_dir: Path | None = None,
        stopped: tuple[type[BaseException], ...] = (), stopped_message: str = "Cancelled.",
        own_errors: tuple[type[BaseException], ...] = (), own_kind: str = "config_error") -> int:
    """Run `body` as job kind `job` in run folder `folder`; returns the process's exit status.

    `stopped`: exceptions that mean the user stopped the job (a final "cancelled" event, exit 0). `own_errors`: the
    job's own refusals, whose message is already a sentence for the user (kind `own_kind`); anything else is
    classified (engine.jobs.failures) and its traceback goes to the job's log. `events_dir`: where this process writes
    its events when not in the run folder itself (the other ranks of a distributed run)."""
    writer = MetricsWriter(events_dir or folder)
    heartbeat.start(folder, writer)
    writer.write("start", pid=os.getpid(), resume=resume, **(start or {}))
    try:
        final = body(writer)
        if final.get("outcome") not in OUTCOMES:
            raise ValueError(f"a job body returned the outcome {final.get('outcome')!r}")
        writer.write("final", **final)
        return 0
    except stopped:
        writer.write("final", outcome="cancelled", message=stopped_message)
        return 0
    except BaseException as err:  # noqa: BLE001 - every failure ends in a final event with one sentence
        kind, message = classify_exception(err, job)
        if isinstance(err, own_errors) and kind == "crashed":
            kind, message = own_kind, str(err)
        else:
            try:
                traceback.print_exc()
            except OSError:  # the log is on the same full disk
                pass
        return write_failure(writer, kind, message)
    finally:
        writer.close()
