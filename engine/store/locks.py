"""The one inter-process lock of the studio: an exclusive flock(2) on a file, held for a `with` block (the scheduler,
a project's log imports, a database migration). The kernel drops it when its holder dies, even by kill -9, so a crash
never leaves a stale lock behind.

Written on flock rather than with the filelock package (which the studio used for two of these): filelock makes the
lock file's missing parent folders, and a job's monitor that takes the scheduler lock after the user deleted the
workspace must not make the workspace again (engine.jobs.supervisor.scheduler_lock(create=False))."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import StudioError

POLL_SECONDS = 0.05


class LockTimeout(StudioError, TimeoutError):
    """The lock was held by another process for the whole of the wait."""


@contextmanager
def exclusive(path: Path | str, timeout: float | None = None, create_folder: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the block. `timeout` seconds of waiting at most
    (None: wait as long as it takes), else LockTimeout. create_folder=False: a missing folder is FileNotFoundError,
    never made."""
    path = Path(path)
    if create_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:  # "a": never truncates a file another holder may be reading
        _acquire(f, timeout)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _acquire(f, timeout: float | None) -> None:
    if timeout is None:
        fcntl.flock(f, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeout(f"{f.name} is still locked after {timeout:g} s") from None
            time.sleep(POLL_SECONDS)
