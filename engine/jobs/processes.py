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
    """When the process started: on Linux in seconds since boot, from /proc/<pid>/stat, which no step of the wall
    clock changes (psutil's create_time adds the boot time, which the kernel derives from the wall clock: a clock
    step or a resumed virtual machine moved it and made a running trainer look like a reused pid, so a job that was
    still training was recorded as killed); elsewhere psutil's wall-clock time."""
    started = _since_boot(pid)
    if started is not None:
        return started
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _since_boot(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after the command name, which may hold spaces and parentheses
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, in clock ticks since boot


WALL_CLOCK = 1e8  # a start time above this is a wall-clock time (recorded by an earlier version), not since boot


def process_alive(pid: int | None, started: float | None) -> bool:
    import psutil  # only process checks need it

    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if started is not None:
            now = proc.create_time() if started > WALL_CLOCK else create_time(psutil, pid)
            if now is None or abs(now - started) > 0.01:
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
