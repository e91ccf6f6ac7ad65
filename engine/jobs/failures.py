"""Why a run failed, in one sentence: the error kinds shown in the run list and by `studio runs`.

The trainer classifies its own exceptions (and writes them in its final event); the supervisor classifies a process
that died without a final event (a signal, the OOM killer).
"""

from __future__ import annotations

import errno
import signal
import traceback

from engine.errors import StudioError

KINDS = {
    "gpu_oom": "The GPU ran out of memory",
    "host_oom": "The machine ran out of memory and the system killed {the_job}",
    "data_error": "The training data could not be used",
    "config_error": "The configuration cannot run here",
    "model_error": "The base model could not be loaded",
    "disk_full": "The disk is full",
    "crashed": "{The_job} crashed",
    "killed": "{The_job} was killed",
    "workspace_missing": "The workspace folder was deleted",
}
# What each kind of job is called in its sentences, and what to do after it died without saving.
JOBS = {"train": ("The trainer", "resume from the last checkpoint"),
        "eval": ("The evaluation", "start the evaluation again"),
        "serve": ("The server", "start serving again"),
        "augment": ("The augmentation", "start it again (accepted records are kept)")}
# The exit status a job uses for each kind, so the kind is known even when its final event could not be written (a
# full disk, a deleted folder). sysexits.h where one fits; 28 is ENOSPC.
EXIT_CODES = {"data_error": 65, "model_error": 66, "workspace_missing": 69, "gpu_oom": 71, "host_oom": 72,
              "config_error": 78, "disk_full": 28, "crashed": 1}
_KIND_OF_EXIT = {code: kind for kind, code in EXIT_CODES.items() if kind != "crashed"}


class DataError(StudioError):
    """The data cannot be trained on (unreadable, empty, or containing locked test records)."""


class RunConfigError(StudioError):
    """The configuration cannot run on this machine (e.g. QLoRA without CUDA)."""


class ModelLoadError(StudioError):
    """The base model cannot be loaded (missing folder, hub id not cached and no network)."""


def said(kind: str, job: str = "train") -> str:
    """The kind's sentence opening, naming the job ("The evaluation crashed", "The server was killed")."""
    noun = JOBS.get(job, JOBS["train"])[0]
    return KINDS[kind].format(The_job=noun, the_job=noun[0].lower() + noun[1:])


def classify_exception(err: BaseException, job: str = "train") -> tuple[str, str]:
    """(error kind, one sentence) for an exception raised inside a job of kind `job`."""
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, DataError):
        return "data_error", f"{said('data_error')}: {err}"
    if isinstance(err, RunConfigError):
        return "config_error", f"{said('config_error')}: {err}"
    if isinstance(err, ModelLoadError):
        return "model_error", f"{said('model_error')}: {err}"
    if "OutOfMemoryError" in type(err).__name__ or "CUDA out of memory" in str(err):
        return "gpu_oom", (f"{said('gpu_oom')}: lower the batch size or max length, turn on gradient "
                           "accumulation, or use QLoRA.")
    if isinstance(err, MemoryError):
        return "host_oom", f"{said('host_oom', job)}: lower the batch size or max length."
    if is_disk_full(err):
        return "disk_full", f"{said('disk_full')}: free space or lower save_total_limit, then resume."
    last = traceback.format_exception(err)[-3:]
    where = " ".join(line.strip().replace("\n", " ") for line in last)[-300:]
    return "crashed", f"{said('crashed', job)} ({text[:200]}). Last lines: {where}"


def is_disk_full(err: BaseException | None) -> bool:
    """ENOSPC anywhere in the chain (torch and safetensors wrap it in their own errors)."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC or "No space left on device" in str(err):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def classify_exit(returncode: int | None, rss_fraction: float | None = None, job: str = "train") -> tuple[str, str]:
    """(error kind, one sentence) for a job that ended without writing its final event; `job` is the run's kind."""
    again = JOBS.get(job, JOBS["train"])[1]
    unsaved = " before it could save" if job == "train" else ""
    if returncode is not None and returncode < 0:
        sig = -returncode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        if sig == signal.SIGKILL and rss_fraction is not None and rss_fraction > 0.9:
            return "host_oom", (f"{said('host_oom', job)} ({name} while using {rss_fraction:.0%} of memory): lower "
                                "the batch size or max length.")
        return "killed", f"{said('killed', job)} by {name}{unsaved}; {again}."
    if returncode is None:
        return "killed", f"{said('killed', job)}: its process is gone and left no final record; {again}."
    kind = _KIND_OF_EXIT.get(returncode)
    if kind == "disk_full":
        return kind, f"{said(kind)}: the job could not write its results; free space, then {again}."
    if kind == "workspace_missing":
        return kind, f"{said(kind)} while the job ran, so it stopped itself."
    if kind is not None:
        return kind, f"{said(kind, job)} (exit status {returncode}); the log has the details."
    return "crashed", f"{said('crashed', job)} with exit code {returncode} and no final record; see the log."


def write_failure(writer, kind: str, message: str) -> int:
    """Write a failed job's final event (to its engine.jobs.event_log.MetricsWriter) and return its exit status: the status
    alone tells the kind when the event cannot be written (a full disk)."""
    try:
        writer.write("final", outcome="failed", error_kind=kind, message=message)
    except (OSError, ValueError):
        pass
    return EXIT_CODES.get(kind, 1)
