"""A progress bar that engine functions can drive through their `progress(fraction, label)` callback."""

from __future__ import annotations

from contextlib import contextmanager

import streamlit as st


@contextmanager
def progress_bar(title: str):
    """Yields a callback; the bar appears on the first call (cached results never flash one) and goes at the end."""
    bar = None

    def update(fraction: float, label: str) -> None:
        nonlocal bar
        if bar is None:
            bar = st.progress(0.0, text=title)
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=f"{title}: {label}")

    try:
        yield update
    finally:
        if bar is not None:
            bar.empty()
