"""Turn engine errors into one sentence on the page; unexpected ones are logged to the workspace, never shown as a
traceback."""

from __future__ import annotations

from contextlib import contextmanager

import streamlit as st

from engine.errors import StudioError
from engine.errors import log_unexpected as _log
from engine.store import db, workspace
from ui.text import hide_paths, md_escape


@contextmanager
def shown_as_message():
    """Run a block; an engine error becomes st.error with its sentence and the page keeps working."""
    try:
        yield
    except StudioError as err:
        st.error(md_escape(hide_paths(err)))
    except Exception as err:  # noqa: BLE001 - last line of defence: no traceback reaches the user
        problem = db.explain(err)
        if problem is not None:
            st.error(md_escape(hide_paths(problem)))
            return
        st.error(unexpected_message(err))


def unexpected_message(err: BaseException) -> str:
    """Log the traceback under a short id and say so with the id (never a path or a traceback)."""
    try:
        error_id = _log(err, workspace.root() / "logs" / "ui-errors.log")
    except OSError:
        return ("Something went wrong, and the workspace's error log could not be written either; an administrator "
                "should check that the workspace folder is writable.")
    return (f"Something went wrong (error {error_id}); an administrator finds the details under that id in the "
            "workspace's logs/ui-errors.log.")
