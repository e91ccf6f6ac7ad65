"""Safe text: anything that may carry user or model text is escaped before it reaches Markdown or a chart.

Streamlit renders Markdown (links and images included) in titles, messages, captions and widget labels, and Plotly
renders a little HTML (links too) in legends, ticks and hover text. User-provided names, file names and model output
go through these helpers, or through elements that never render (st.text, st.code, st.dataframe, st.json).
"""

from __future__ import annotations

import html
import re

from engine.markdown import md_escape

__all__ = ["md_escape", "plot_text", "shown_path", "hide_paths", "shown_model"]


def plot_text(text: object) -> str:
    """Text for a Plotly label, legend or tick: its pseudo-HTML (links included) shown as characters."""
    return html.escape(str(text), quote=True)


# An absolute path in a message (after a space, a quote or a bracket): the page never shows where the server keeps
# its files.
_ABS_PATH = re.compile(r"(?<![\w:/.])/(?:[\w.@+-]+/)*[\w.@+-]+")


def shown_path(path: object) -> str:
    """A path as a page may show it: inside the workspace relative to it ("workspace/..."), else its last part."""
    from pathlib import Path

    from engine.store import workspace

    p = Path(str(path))
    try:
        return "workspace/" + str(p.resolve().relative_to(workspace.root()))
    except ValueError:
        return p.name or str(path)


def hide_paths(message: object) -> str:
    """A message with every absolute server path replaced by shown_path()."""
    return _ABS_PATH.sub(lambda m: shown_path(m.group(0)), str(message))


def shown_model(name_or_path: str) -> str:
    """A base model as pages name it: a hub id as it is, a local folder by shown_path()."""
    return shown_path(name_or_path) if str(name_or_path).startswith("/") else str(name_or_path)
