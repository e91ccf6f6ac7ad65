"""Half-written artifacts: every export, served model, GGUF import and monitor file is written under a temporary name
that carries the writer's host and pid (`NAME.part-HOST-PID`) and renamed when whole. A writer killed with `kill -9`
cannot clean up after itself, so whoever writes next into the same folder sweeps the leftovers of writers of this host
that are gone (a writer on another host sharing the workspace is left alone: its pid means nothing here); a leftover
is never listed, served or registered in the meantime (only whole names are)."""

from __future__ import annotations

import os
import re
import shutil
import socket
from functools import cache
from pathlib import Path

_PART = re.compile(r"\.part-([A-Za-z0-9_.-]{1,64})-(\d{1,10})$")


@cache
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:64] or "host"


def part_of(final: Path) -> Path:
    """The temporary name this process writes `final` under."""
    return final.with_name(f"{final.name}.part-{_host()}-{os.getpid()}")


def is_part(path: Path) -> bool:
    return _PART.search(path.name) is not None


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, not ours to judge
        return True
    return True


def sweep(folder: Path) -> list[Path]:
    """Remove the leftovers in `folder` of writers that no longer run; returns what was removed. A pid reused by a
    new process keeps its leftover until a later sweep: nothing is ever removed under a live writer."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:  # no folder yet (or unreadable): nothing to sweep
        return removed
    for entry in entries:
        found = _PART.search(entry.name)
        if found is None or found.group(1) != _host() or _writer_alive(int(found.group(2))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
