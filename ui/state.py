"""The current project and dataset version: kept in the URL (?project=&version=) so a refresh or a shared link shows
the same selection; st.session_state only mirrors it for widgets."""

from __future__ import annotations

import streamlit as st

from engine.data import versions
from engine.store import projects
from ui.text import shown_model


def _param_int(name: str) -> int | None:
    value = st.query_params.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def project_id() -> int | None:
    known = [p.id for p in projects.list_projects()]
    pid = _param_int("project")
    if pid in known:
        return pid
    return known[0] if known else None


def set_project(pid: int) -> None:
    st.query_params["project"] = str(pid)
    st.query_params.pop("version", None)


def require_project():
    pid = project_id()
    if pid is None:
        st.info("Create a project in the sidebar to start.")
        st.stop()
    return projects.get_project(pid)


def version_id(pid: int) -> int | None:
    project_versions = versions.list_versions(pid)
    vid = _param_int("version")
    if vid in {v.id for v in project_versions}:
        return vid
    return project_versions[0].id if project_versions else None


def set_version(vid: int) -> None:
    st.query_params["version"] = str(vid)


def pick_version(pid: int, key: str):
    """Selectbox of the project's dataset versions (newest first); the choice goes to the URL. None if no data."""
    project_versions = versions.list_versions(pid)
    if not project_versions:
        return None
    by_id = {v.id: v for v in project_versions}
    vid = version_id(pid)
    chosen = st.selectbox("Dataset version", list(by_id), index=list(by_id).index(vid), key=f"{key}_{vid}",
                          format_func=lambda i: f"v{by_id[i].version} · {by_id[i].name} · {by_id[i].records:,} records")
    if chosen != vid:
        set_version(chosen)
        st.rerun()
    return by_id[chosen]


def pick_finished_run(project_id: int, key: str, container=st):
    """Selectbox of the project's succeeded runs trained on a split (newest first), or a pointer to Train and a stop.
    Returns (the chosen run, every such run by id)."""
    from engine.jobs import supervisor

    done = {r.id: r for r in supervisor.list_runs(project_id) if r.status == "succeeded" and r.config.get("split_id")}
    if not done:
        st.info("No finished run yet: train one first.")
        st.page_link("pages/train.py", label="Open Train", icon=":material/arrow_forward:")
        st.stop()
    run_id = container.selectbox(
        "Run", list(done), key=key, format_func=lambda i: f"run {i} · {done[i].name} · base {shown_model(done[i].config['base_model'])}")
    return done[run_id], done
