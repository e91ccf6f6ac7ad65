"""Why a run failed, in one sentence: the error kinds shown in the run list and by `studio runs`.

The trainer classifies its own exceptions (and writes them in its final event); the supervisor classifies a process
that died without a final event (a signal, the OOM killer).
"""

from __future__ import annotations

import errno
import signal
import traceback

KINDS = {
    "gpu_oom": "The GPU ran out of memory",
    "host_oom": "The machine ran out of memory and the system killed the trainer",
    "data_error": "The training data could not be used",
    "config_error": "The configuration cannot run here",
    "model_error": "The base model could not be loaded",
    "disk_full": "The disk is full",
    "crashed": "The trainer crashed",
    "killed": "The trainer was killed",
}


class DataError(Exception):
    """The data cannot be trained on (unreadable, empty, or containing locked test records)."""


class RunConfigError(Exception):
    """The configuration cannot run on this machine (e.g. QLoRA without CUDA)."""


class ModelLoadError(Exception):
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
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return "disk_full", f"{KINDS['disk_full']}: free space or lower save_total_limit, then resume."
    last = traceback.format_exception(err)[-3:]
    where = " ".join(line.strip().replace("\n", " ") for line in last)[-300:]
    return "crashed", f"{KINDS['crashed']} ({text[:200]}). Last lines: {where}"


def classify_exit(returncode: int | None, rss_fraction: float | None = None) -> tuple[str, str]:
    """(error kind, one sentence) for a trainer that ended without writing its final event."""
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
    return "crashed", f"{KINDS['crashed']} with exit code {returncode} and no final record; see the log."
