"""The trainer's stop request: set by SIGTERM (a cancel), read at the end of each step, which saves and stops."""

import threading

STOP = threading.Event()


def request_stop(signum, frame) -> None:
    STOP.set()
