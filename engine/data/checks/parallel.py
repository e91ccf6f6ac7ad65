"""Running a group of checks in a second process while the first runs the rest: the data check uses both cores.

The helper is forked after the records are loaded, so it shares them (copy-on-write) instead of receiving a copy;
it sends back only its findings. Forking is safe only from a process that runs one Python thread (the CLI, a job,
a benchmark): where other threads run (the dashboard's server), the group runs in-process instead, with the same
result.
"""

from __future__ import annotations

import multiprocessing
import threading
import traceback
from collections.abc import Callable
from typing import Any


class Helper:
    """`Helper(work)` starts `work()` in a forked process (or defers it); `result()` returns what it returned."""

    def __init__(self, work: Callable[[], Any]):
        self._work = work
        self._process = None
        self._reader = None
        if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("fork")
            self._reader, writer = ctx.Pipe(duplex=False)
            self._process = ctx.Process(target=_child, args=(work, writer), daemon=True)
            self._process.start()
            writer.close()

    def result(self) -> Any:
        if self._process is None:
            return self._work()
        assert self._reader is not None  # made with the process
        try:
            ok, value = self._reader.recv()
        except EOFError:  # the helper died (killed, out of memory): do the work here
            ok, value = False, None
        finally:
            self._reader.close()
            self._process.join()
        return value if ok else self._work()


def _child(work: Callable[[], Any], writer) -> None:
    try:
        writer.send((True, work()))
    except BaseException:  # noqa: BLE001 - the parent redoes the work and reports any error itself
        traceback.print_exc()
        writer.send((False, None))
    finally:
        writer.close()
