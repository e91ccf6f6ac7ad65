"""Turn engine errors into one sentence on the page; unexpected ones are logged to the workspace, never shown as a
traceback."""

from __future__ import annotations

import traceback
from contextlib import contextmanager

import streamlit as st

from engine.store import db

from engine.store import workspace
from engine.review.ab_traffic import TrafficError
from engine.evaluate.comparison import EvalError
from engine.evaluate.code_checks import SandboxUnavailable
from engine.data.fixes import FixError
from engine.train.launcher import LaunchRefused
from engine.train.config import ConfigError
from engine.store.workspace import WorkspaceMissing
from engine.evaluate.playground import PlaygroundError
from engine.store.projects import ProjectError
from engine.data.readers import InputError
from engine.review.campaigns import ReviewError
from engine.jobs.supervisor import RunError
from engine.data.split import LockedTestError, SplitError
from engine.data.tokens import TokenizerError
from engine.store.users import UserError
from ui.text import hide_paths, md_escape

USER_ERRORS = (InputError, FixError, ProjectError, SplitError, LockedTestError, TokenizerError, EvalError, RunError,
               PlaygroundError, UserError, ReviewError, TrafficError, LaunchRefused, ConfigError, SandboxUnavailable,
               WorkspaceMissing)


@contextmanager
def shown_as_message():
    """Run a block; an engine error becomes st.error with its sentence and the page keeps working."""
    try:
        yield
    except USER_ERRORS as err:
        st.error(md_escape(hide_paths(err)))
    except Exception as err:  # noqa: BLE001 - last line of defence: no traceback reaches the user
        problem = db.explain(err)
        if problem is not None:
            st.error(md_escape(hide_paths(problem)))
            return
        st.error(f"Something went wrong (error {log_unexpected(err)}); an administrator finds the details under "
                 "that id in the workspace's logs/ui-errors.log.")


def log_unexpected(err: BaseException) -> str:
    """Write the traceback under a short id (the page shows the id, never a path or a traceback)."""
    import secrets

    error_id = secrets.token_hex(4)
    try:
        log = workspace.root() / "logs" / "ui-errors.log"
        log.parent.mkdir(mode=0o700, exist_ok=True)
        with log.open("a", encoding="utf-8") as f:
            f.write(f"--- error {error_id}\n" + "".join(traceback.format_exception(err)) + "\n")
    except OSError:
        pass
    return error_id
