"""Models: registered versions of the project's model with their stage, lineage, evidence for production, model card,
export, serving, and audit log."""

import pandas as pd
import streamlit as st

from engine.evaluate import results
from engine.jobs import supervisor
from engine.models import card, evidence, export, lifecycle, registry, serve_status, serving
from engine.models.registry import STAGES
from engine.review import ab_traffic
from ui import lineage, session, state
from ui.errors import shown_as_message
from ui.text import md_escape, shown_path

user = session.require("analyst", "admin")
project = state.require_project()
st.title("Models")
st.caption("A model version is a succeeded run with its whole lineage: data, split, settings, evaluations, reviews "
           "and A/B decisions. Production needs evidence; every change is in the audit log.")

versions_now = registry.list_versions(project.id)
registered_runs = {v.run_id for v in versions_now}
candidates = [r for r in supervisor.list_runs(project.id) if r.status == "succeeded" and r.id not in registered_runs]
with st.expander("Register a run", expanded=not versions_now):
    if not candidates:
        st.write("Every succeeded run of this project is registered (or none has finished yet).")
    else:
        by_id = {r.id: r for r in candidates}
        run_id = st.selectbox("Run", list(by_id), key="models_register_run",
                              format_func=lambda i: md_escape(f"run {i} · {by_id[i].name}"))
        name = st.text_input("Model name (empty: from the project's name)", key="models_register_name").strip()
        with shown_as_message():
            bump = registry.proposal(run_id, name or None)
            st.write(md_escape(f"Proposed number {'.'.join(map(str, bump.number))}: {bump.reason}."))
            number = st.text_input("A higher number instead (optional)", key="models_register_number").strip()
            if st.button("Register", key="models_register", type="primary"):
                made = lifecycle.register(user, run_id, name or None, number or None)
                st.success(md_escape(f"Registered {made.label}."))
                st.rerun()

if not versions_now:
    st.info("No model version yet: register a succeeded run above.")
    st.stop()

rows = [registry.summary_row(v) for v in versions_now]
st.dataframe(pd.DataFrame([{"version": r["version"], "stage": r["stage"], "run": r["run_id"],
                            "registered": r["created_at"][:16], "by": r["created_by"], "why this number":
                            r["bump_reason"]} for r in rows]), hide_index=True, width="stretch")
by_label = {v.label: v for v in versions_now}
label = st.selectbox("Version", list(by_label), key="models_version")
version = by_label[label]
found = registry.current_lineage(version)

st.subheader(md_escape(f"{label} · {version.stage}"))
left, right = st.columns(2)
with left:
    st.markdown("**Stage**")
    to = st.selectbox("Move to", [s for s in STAGES if s != version.stage], key=f"models_to_{version.id}")
    reason = st.text_input("Reason (stored in the audit log)", key=f"models_reason_{version.id}")
    if to == "production":
        proof = evidence.for_production(version)
        for check in proof.checks:
            (st.success if check.ok else st.error)(md_escape(check.sentence))
        override = False
        if not proof.ok and user.role == "admin":
            override = st.checkbox("Override the missing evidence (administrators; the reason is stored and shown)",
                                   key=f"models_override_{version.id}")
    if st.button("Apply", key=f"models_apply_{version.id}"):
        with shown_as_message():
            lifecycle.promote(user, version.id, to, reason, override if to == "production" else False)
            st.rerun()
with right:
    current = registry.production(project.id)
    st.markdown("**Production**")
    st.write(md_escape(f"{current.label} is in production." if current else "No version is in production."))
    if current is not None and st.button("Roll back to the previous production version", key="models_rollback"):
        with shown_as_message():
            back = lifecycle.rollback(user, project.id, reason)
            st.success(md_escape(f"{back.label} is in production again."))
            st.rerun()

st.subheader("Lineage")
st.graphviz_chart(lineage.dot(label, version.stage, found))

with st.expander("Model card"):
    with shown_as_message():
        st.code(card.render(version), language="markdown", wrap_lines=True)

st.subheader("Export")
fmt = st.radio("Format", export.FORMATS, horizontal=True, key=f"models_format_{version.id}",
               help="adapter: the PEFT adapter as trained; merged: one model folder (safetensors, tokenizer, chat "
                    "template) that loads with from_pretrained alone.")
if st.button("Export into the workspace", key=f"models_export_{version.id}"):
    with shown_as_message(), st.spinner("Exporting..."):
        out = export.export_in_workspace(user, version.id, fmt)
        st.success(md_escape(f"Exported to {shown_path(out)}, with its model card and lineage."))

st.subheader("Serve")
c1, c2, c3 = st.columns(3)
port = c1.number_input("Port", 1024, 65535, 8000, key=f"models_port_{version.id}")
engine_choice = c2.selectbox("Engine", serving.ENGINES, key=f"models_engine_{version.id}",
                             help="auto: vLLM where it is installed and a CUDA GPU is present, else transformers serve")
if c3.button("Start serving", key=f"models_serve_{version.id}"):
    with shown_as_message():
        job = serving.serve(user, version.id, int(port), engine_choice)
        st.success(f"Serving job {job.id} is {job.status}: its address, smoke test and a command to call it appear "
                   "below as soon as the server answers.")
jobs = [j for j in supervisor.list_runs(project.id, kind="serve") if j.target_run_id == version.run_id]


@st.fragment(run_every="2s" if any(j.status in supervisor.ACTIVE for j in jobs) else None)
def serving_jobs(job_ids: list[int]) -> None:
    """Each serving job's phase, address, smoke result and the command to call it, refreshed while one is active."""
    for job_id in job_ids:
        job = supervisor.get_run(job_id)
        status = serve_status.status_of(job)
        with st.container(border=True):
            cols = st.columns([5, 1])
            cols[0].write(md_escape(f"Serving job {job.id}: {status.phase}"))
            if status.active and cols[1].button("Stop", key=f"models_stop_{job.id}"):
                supervisor.cancel(job.id)
                st.rerun()
            if status.url:
                st.text(f"Address: {status.url} (OpenAI-compatible; model name {status.model})")
            if status.smoke:
                (st.success if status.smoke_passed else st.warning)(md_escape(status.smoke))
            if status.call:
                st.caption("Call it")
                st.code(status.call, language="bash")


serving_jobs([j.id for j in jobs[:5]])

with st.expander("Serve it elsewhere"):
    for title, command in serving.elsewhere(version).items():
        st.caption(md_escape(title))
        st.code(command, language="bash")
    report = results.load_report(registry.run_of(version))
    if report and report.get("routing"):
        st.caption("Hybrid routing rule (from the evaluation)")
        st.json(report["routing"]["rule"])
    decisions = found.get("ab_decisions", [])
    if decisions:
        st.caption("A/B routing snippet (the same user always gets the same model)")
        st.code(ab_traffic.routing_snippet(0.1), language="python")

st.subheader("Audit log")
st.dataframe(pd.DataFrame([{"when": e.at.isoformat()[:19], "what": e.kind, "who": e.actor, "from": e.from_stage,
                            "to": e.to_stage, "override": e.override, "reason": e.reason}
                           for e in registry.events(version.id)]), hide_index=True, width="stretch")
