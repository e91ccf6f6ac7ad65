"""Rendering one quality finding: its explanation, fix buttons, the offending records (escaped) and a viewer."""

from __future__ import annotations

import streamlit as st

from engine.data import fixes, versions
from engine.data.report import Finding, Report
from engine.store.tables import DatasetVersion
from ui import state
from ui.errors import shown_as_message
from ui.text import md_escape

MAX_ROWS = 1000


def render_finding(finding: Finding, version: DatasetVersion, report: Report, default_prompt: str) -> None:
    icon = ":material/error:" if finding.severity == "error" else ":material/warning:"
    count = f"{finding.count:,} record{'s' if finding.count != 1 else ''}" if finding.count else ""
    with st.expander(f"{finding.title} · {count}", icon=icon):
        st.caption(f"Code in the JSON report and the CLI: {finding.code}")
        st.markdown(md_escape(finding.message))
        if finding.code == "too_few_examples":  # the fix for too little data: more data, reviewed
            st.markdown("Short of examples? [Augment this data](#augment) through a teacher model, reviewed record by "
                        "record (the *Augment* section below).")
        _fix_buttons(finding, version, report, default_prompt)
        if finding.locations:
            _records_table(finding, version)


def _fix_buttons(finding: Finding, version: DatasetVersion, report: Report, default_prompt: str) -> None:
    key = f"quality_fix_{version.id}_{finding.code}"
    choices = fixes.choices(finding)
    if not choices:
        return
    prompt = None
    if any(fix_id == "set_system_prompt" for fix_id, _ in choices):
        prompt = st.text_area("System prompt to set", value=default_prompt, key=f"{key}_prompt")
    cols = st.columns(len(choices))
    for col, (fix_id, label) in zip(cols, choices):
        if col.button(label, key=f"{key}_{fix_id}", help="Creates a new dataset version; this one stays as it is."):
            with shown_as_message():
                params = {"prompt": prompt} if fix_id == "set_system_prompt" else {}
                if fix_id == "truncate_too_long":
                    params = {"max_length": report.stats.get("max_length"),
                              "tokenizer": st.session_state.get("quality_tokenizer") or None}
                child = fixes.apply_fix(version, report, fix_id, **params)
                state.set_version(child.id)
                st.session_state["quality_last_fix"] = (
                    f"Created v{child.version} ({child.records:,} records, {child.removed:,} removed in all).")
                st.rerun()


@st.cache_data(max_entries=8, show_spinner=False)
def _display(version_id: int, locations: tuple[int, ...]) -> dict[int, dict]:
    return versions.display_records(versions.get_version(version_id), list(locations))


def _records_table(finding: Finding, version: DatasetVersion) -> None:
    shown = finding.locations[:MAX_ROWS]
    records = _display(version.id, tuple(shown))
    rows = []
    for loc in shown:
        rec = records.get(loc, {})
        msgs = rec.get("messages", [])
        user = next((m["content"] for m in msgs if m["role"] == "user"), "")
        answer = next((m["content"] for m in reversed(msgs) if m["role"] == "assistant"), rec.get("problem", ""))
        rows.append({"#": loc, "why": finding.details.get(loc, ""), "user": user[:200], "answer": answer[:200]})
    if len(finding.locations) > MAX_ROWS:
        st.caption(f"Showing the first {MAX_ROWS:,} of {finding.count:,}.")
    st.dataframe(rows, hide_index=True, width="stretch")
    loc = st.selectbox("Look at one record", shown, key=f"quality_view_{version.id}_{finding.code}")
    st.json(records.get(loc, {}), expanded=2)
