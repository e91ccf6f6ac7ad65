"""Secrets a job needs in its environment only (a teacher's API key entered on the page): held in this process's
memory by the job's request key until the supervisor starts it here, then handed to the job's environment and
forgotten. Never written anywhere; a job started by another process (a restart, another dashboard) does not get it
and says which variable to set."""

from __future__ import annotations

import threading

_HELD: dict[str, dict[str, str]] = {}
_LOCK = threading.Lock()


def hold(request_key: str, env: dict[str, str]) -> None:
    with _LOCK:
        _HELD[request_key] = dict(env)


def take(request_key: str | None) -> dict[str, str]:
    with _LOCK:
        return _HELD.pop(request_key, {}) if request_key else {}
