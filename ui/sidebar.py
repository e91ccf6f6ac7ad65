"""The shared sidebar: workspace, project picker and the form for a new project."""

from __future__ import annotations

import streamlit as st

from engine.jobs import supervisor
from engine.store import projects
from ui import state
from ui.errors import shown_as_message
from ui.text import md_escape


def render(user=None) -> None:
    from ui import session

    with st.sidebar:
        if user is not None:
            st.caption("Signed in as")
            st.text(f"{user.name} ({user.role})")
            if st.button("Sign out", key="sidebar_sign_out"):
                session.sign_out()
                st.rerun()
        if user is None or user.role not in session.ANALYST_ROLES:
            return  # reviewers and visitors see no workspace, project or run
        if created := st.session_state.pop("sidebar_created", None):
            st.success(md_escape(f"Created the project {created} and selected it."))
        all_projects = projects.list_projects()
        if (pending := st.session_state.pop("sidebar_select_next", None)) is not None:
            st.session_state["sidebar_project"] = pending  # before the widget exists in this run
        if all_projects:
            ids = [p.id for p in all_projects]
            names = {p.id: p.name for p in all_projects}
            current = state.project_id()
            chosen = st.selectbox("Project", ids, index=ids.index(current) if current in ids else 0,
                                  format_func=names.get, key="sidebar_project")
            if chosen != current or "project" not in st.query_params:
                state.set_project(chosen)
        _active_runs()
        with st.expander("New project", expanded=not all_projects):
            with st.form("sidebar_new_project", clear_on_submit=True):
                name = st.text_input("Name", max_chars=120)
                task = st.selectbox("Task type", projects.TASK_TYPES,
                                    help="Decides which metrics and data volumes apply.")
                prompt = st.text_area("Production system prompt", help="The prompt the model will run with.")
                if st.form_submit_button("Create project"):
                    with shown_as_message():
                        project = projects.create_project(name, task, prompt)
                        state.set_project(project.id)
                        # the picker keeps its own value across reruns: point it at the new project on the next one
                        st.session_state["sidebar_select_next"] = project.id
                        st.session_state["sidebar_created"] = project.name
                        st.rerun()


@st.fragment(run_every="3s")
def _active_runs() -> None:
    """The supervisor's timer while the dashboard is open: a dead trainer is marked failed within seconds, and the
    next queued run starts, whichever page is showing."""
    active = [r for r in supervisor.list_runs(kind=None) if r.status in supervisor.ACTIVE]
    if active:
        supervisor.reconcile()
        active = [r for r in supervisor.list_runs(kind=None) if r.status in supervisor.ACTIVE]
        st.caption(f"{len(active)} job{'s' if len(active) != 1 else ''} active (training or evaluation)")
