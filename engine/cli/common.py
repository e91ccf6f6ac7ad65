"""What every `studio` command shares: the exit codes and the misuse error."""

from __future__ import annotations

from engine.errors import StudioError

# 0 ok, 1 the input has blocking problems (or the job failed), 2 the input could not be used or the command was misused
EXIT_OK, EXIT_BLOCKING, EXIT_UNUSABLE = 0, 1, 2


class UsageError(StudioError):
    """The command was called with options that cannot work together; the message says which."""
