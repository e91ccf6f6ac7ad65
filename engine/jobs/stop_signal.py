"""SIGTERM (a cancel) for jobs that stop by exception (evaluation, serving), delivered only where the job can record it.

A handler that raised at once could fire anywhere: during the module's own imports or while the job sets up its event
log, where nothing catches it, and the job then died with a traceback and exit status 1 and was recorded as *failed*
although the user had cancelled it (CI saw exactly that). So a cancel that arrives outside the guarded region is kept
and raised when the region is entered; inside it, it is raised at once; after it (the job is writing its outcome), it
changes nothing. One cancel is raised once: a second SIGTERM while the first is being recorded does not interrupt that.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Deferred:
    """Raise `error` for a SIGTERM, but only inside `guarded()`; a signal that came earlier is raised on entry."""

    def __init__(self, error: type[BaseException]) -> None:
        self.error = error
        self.pending = False
        self.armed = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.armed:
            self.armed = False
            raise self.error()
        self.pending = True

    @contextmanager
    def guarded(self) -> Iterator[None]:
        self.armed = True  # armed before the look at `pending`: a signal between the two is not lost
        if self.pending:
            self.armed = self.pending = False
            raise self.error()
        try:
            yield
        finally:
            self.armed = False
