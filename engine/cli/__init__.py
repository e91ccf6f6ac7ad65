"""The `studio` command: the engine headless, with the same results as the dashboard.

The parser is in parser.py, the error boundary and the dispatch in entry.py, and each group of commands in its own
module (data_commands, train_commands, eval_commands, review_commands, admin_commands), imported only when one of
its commands runs, so a light command such as `studio runs` loads nothing it does not use.

    studio ui [--demo]                  the dashboard (--demo seeds the demo project and model first)
    studio check FILE [--json]          the quality report; exit 1 when the data has blocking errors
    studio split FILE --out DIR         a leakage-free split with a locked test part
    studio demo-model DIR               build the tiny offline demo model
    studio sample FILE                  write the built-in sample dataset

Exit codes: 0 ok, 1 the input has blocking problems, 2 the input could not be read or the command was misused.
Errors are one sentence on stderr, never a traceback (unexpected ones are logged to the workspace).
"""

from engine.cli.entry import main

__all__ = ["main"]
