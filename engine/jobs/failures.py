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
    "host_oom": "The machine ran out of memory and the system killed the trainer",
    "data_error": "The training data could not be used",
    "config_error": "The configuration cannot run here",
    "model_error": "The base model could not be loaded",
    "disk_full": "The disk is full",
    "crashed": "The trainer crashed",
    "killed": "The trainer was killed",
    "workspace_missing": "The workspace folder was deleted",
}
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


def classify_exception(err: BaseException) -> tuple[str, str]:
    """(error kind, one sentence) for an exception raised inside the trainer."""
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, DataError):
        return "data_error", f"{KINDS['data_error']}: {err}"
    if isinstance(err, RunConfigError):
        return "config_error", f"{KINDS['config_error']}: {err}"
    if isinstance(err, ModelLoadError):
        return "model_error", f"{KINDS['model_error']}: {err}"
    if "OutOfMemoryError" in type(err).__name__ or "CUDA out of memory" in str(err):
        return "gpu_oom", (f"{KINDS['gpu_oom']}: lower the batch size or max length, turn on gradient "
                           "accumulation, or use QLoRA.")
    if isinstance(err, MemoryError):
        return "host_oom", f"{KINDS['host_oom']}: lower the batch size or max length."
    if is_disk_full(err):
        return "disk_full", f"{KINDS['disk_full']}: free space or lower save_total_limit, then resume."
    last = traceback.format_exception(err)[-3:]
    where = " ".join(line.strip().replace("\n", " ") for line in last)[-300:]
    return "crashed", f"{KINDS['crashed']} ({text[:200]}). Last lines: {where}"


def is_disk_full(err: BaseException | None) -> bool:
    """ENOSPC anywhere in the chain (torch and safetensors wrap it in their own errors)."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC or "No space left on device" in str(err):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


# The job each kind of run is, in the sentences of a run that died without its final event, and what to do next.
_JOB_NOUNS = {"eval": ("The evaluation", "start the evaluation again"),
              "serve": ("The server", "start serving again"),
              "augment": ("The augmentation", "start it again (accepted records are kept)")}


def classify_exit(returncode: int | None, rss_fraction: float | None = None, job: str = "train") -> tuple[str, str]:
    """(error kind, one sentence) for a job that ended without writing its final event; `job` is the run's kind."""
    kind, message = _classify_exit(returncode, rss_fraction)
    if job in _JOB_NOUNS:
        noun, again = _JOB_NOUNS[job]
        message = message.replace(" before it could save", "").replace("the trainer", noun.lower()) \
            .replace("The trainer", noun).replace("resume from the last checkpoint", again) \
            .replace("then resume", f"then {again}")
    return kind, message


def _classify_exit(returncode: int | None, rss_fraction: float | None) -> tuple[str, str]:
    if returncode is not None and returncode < 0:
        sig = -returncode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        if sig == signal.SIGKILL and rss_fraction is not None and rss_fraction > 0.9:
            return "host_oom", (f"{KINDS['host_oom']} ({name} while using {rss_fraction:.0%} of memory): lower "
                                "the batch size or max length.")
        return "killed", f"{KINDS['killed']} by {name} before it could save; resume from the last checkpoint."
    if returncode is None:
        return "killed", f"{KINDS['killed']}: its process is gone and left no final record; resume from the last " \
                         "checkpoint."
    kind = _KIND_OF_EXIT.get(returncode)
    if kind == "disk_full":
        return kind, f"{KINDS['disk_full']}: the job could not write its results; free space, then resume."
    if kind == "workspace_missing":
        return kind, f"{KINDS['workspace_missing']} while the job ran, so it stopped itself."
    if kind is not None:
        return kind, f"{KINDS[kind]} (exit status {returncode}); the log has the details."
    return "crashed", f"{KINDS['crashed']} with exit code {returncode} and no final record; see the log."


def write_failure(writer, kind: str, message: str) -> int:
    """Write a failed job's final event (to its engine.jobs.event_log.MetricsWriter) and return its exit status: the status
    alone tells the kind when the event cannot be written (a full disk)."""
    try:
        writer.write("final", outcome="failed", error_kind=kind, message=message)
    except (OSError, ValueError):
        pass
    return EXIT_CODES.get(kind, 1)
