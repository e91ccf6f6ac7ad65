"""Turn engine errors into one sentence on the page; unexpected ones are logged to the workspace, never shown as a
traceback."""

from __future__ import annotations

import traceback
from contextlib import contextmanager

import streamlit as st

from engine import workspace
from engine.ab_traffic import TrafficError
from engine.evaluate import EvalError
from engine.fixes import FixError
from engine.playground import PlaygroundError
from engine.projects import ProjectError
from engine.readers import InputError
from engine.review import ReviewError
from engine.runs import RunError
from engine.split import LockedTestError, SplitError
from engine.tokens import TokenizerError
from engine.users import UserError
from ui.text import md_escape

USER_ERRORS = (InputError, FixError, ProjectError, SplitError, LockedTestError, TokenizerError, EvalError, RunError,
               PlaygroundError, UserError, ReviewError, TrafficError)


@contextmanager
def shown_as_message():
    """Run a block; an engine error becomes st.error with its sentence and the page keeps working."""
    try:
        yield
    except USER_ERRORS as err:
        st.error(md_escape(err))
    except Exception as err:  # noqa: BLE001 - last line of defence: no traceback reaches the user
        log = workspace.current().root / "logs" / "ui-errors.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as f:
            f.write("".join(traceback.format_exception(err)) + "\n")
        st.error(f"Something went wrong ({type(err).__name__}); the details are in {log}.")
