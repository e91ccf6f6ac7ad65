"""The one error contract: every error meant for the user derives from StudioError, and its message is one sentence
that can be shown as it is (it names no server path and holds no traceback). The dashboard (ui/errors.py) and the CLI
(engine/cli) catch StudioError once; anything else is unexpected, is logged with its traceback under a short id, and
the user sees that id."""

from __future__ import annotations

import secrets
import traceback
from pathlib import Path


class StudioError(Exception):
    """A problem the user can act on; str(error) is the sentence to show."""


def log_unexpected(err: BaseException, log: Path) -> str:
    """Append the traceback to `log` under a short id and return the id. Raises OSError when the log cannot be
    written (the caller says so instead)."""
    error_id = secrets.token_hex(4)
    log.parent.mkdir(mode=0o700, exist_ok=True)
    with log.open("a", encoding="utf-8") as f:
        f.write(f"--- error {error_id}\n" + "".join(traceback.format_exception(err)) + "\n")
    return error_id
