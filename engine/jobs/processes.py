"""Process facts the supervisor relies on: how many GPUs are visible, whether a pid is still the process it was (a
reused pid is not), and signalling a job's process group."""

from __future__ import annotations

import os
from pathlib import Path


def cuda_count() -> int:
    """GPUs visible to this process (CUDA_VISIBLE_DEVICES, else /dev/nvidiaN)."""
    # nvidia-smi's absence is the common case here; no torch import on this path.
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return len(list(Path("/dev").glob("nvidia[0-9]*")))


def create_time(psutil, pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def process_alive(pid: int | None, started: float | None) -> bool:
    import psutil  # only process checks need it

    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if started is not None and abs(proc.create_time() - started) > 0.01:
            return False  # the pid now belongs to another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def signal_group(pid: int | None, sig: int) -> None:
    if not pid or pid <= 1:  # never signal our own group (0) or every process (-1, 1)
        return
    try:
        os.killpg(pid, sig)  # the trainer leads its own session, so its pgid is its pid
    except (ProcessLookupError, PermissionError):
        pass
