"""Register a succeeded run as the next version of its model, as a hand-over after the run (a retraining run queued
by the monitor registers itself this way, with nobody watching).

    python -m engine.models.register_job RUN_ID
"""

from __future__ import annotations

import sys

from engine.models import lifecycle
from engine.store import users, workspace


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    workspace.apply_library_env(workspace.current())
    version = lifecycle.register(users.SYSTEM, int(argv[0]))
    print(f"Registered run {argv[0]} as {version.label} ({version.bump_reason}).", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
