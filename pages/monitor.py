"""Monitor: production logs of the project's model versions: requests, latency, errors and satisfaction per day, drift
against the training data with its bands, alerts, and the retraining recommendation with its button."""

import pandas as pd
import streamlit as st

from engine.data import uploads
from engine.monitor import drift, feedback, ingest, report, retrain
from engine.store import users
from ui import charts, session, state
from ui.errors import shown_as_message
from ui.text import md_escape

user = session.require("analyst", "admin")
project = state.require_project()
st.title("Monitor")
st.caption("Production request logs per model version. Drift compares production requests with the model's training "
           "data (PSI: under 0.10 stable, 0.10-0.20 moderate, over 0.20 significant).")

with st.expander("Import a production log", expanded=not report.models_seen(project.id)):
    st.write("JSONL, CSV/TSV or Parquet with a time, a request (prompt or messages) and a response; optional model "
             "version, latency, error flag, rating/thumbs/resolved, user. Personal data and secrets are masked before "
             "anything is stored; a file (or a row) imported twice counts once, while a row that repeats inside one file is a request of its own.")
    log = st.file_uploader("Log file", type=["jsonl", "json", "csv", "tsv", "parquet"], key="monitor_log")
    served_by = st.text_input("Model version that served it (when the log has no such column)",
                              key="monitor_model").strip()
    if log is not None and st.button("Import", key="monitor_import", type="primary"):
        with shown_as_message(), st.spinner("Importing..."):
            saved = uploads.stage_upload(log.getvalue(), log.name)
            result = ingest.import_log(project.id, saved, served_by or None, name=log.name)
            if result.skipped_file:
                st.info("This file was imported before; nothing changed.")
            else:
                st.success(md_escape(result.summary(warn=False)))
                if result.unknown_versions:
                    st.warning(md_escape(result.unknown_warning().strip()))
                for line in result.bad_lines:
                    st.text(line)

seen = report.models_seen(project.id)
if not seen:
    st.info("No production logs yet.")
    st.stop()
with shown_as_message():
    default = report.default_model(project.id)
    model = st.selectbox("Model version", seen, index=seen.index(default) if default in seen else 0,
                         key="monitor_version")
    found = report.report(project.id, model)
    st.subheader(md_escape(f"{model} · last {found['window']['days']} days of its logs"))
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Requests", f"{found['requests']:,}")
    lat = found["latency"]
    c2.metric("Latency", f"{lat['mean']:.0f} ms" if lat["mean"] is not None else "-",
              f"p95 {lat['p95']:.0f} ms" if lat["p95"] is not None else None, delta_color="off", delta_arrow="off")
    err, sat = found["error_rate"], found["satisfaction"]
    c3.metric("Error rate", f"{err['value']:.2%}" if err else "-",
              f"95% [{err['ci_low']:.2%}, {err['ci_high']:.2%}]" if err else None, delta_color="off",
              delta_arrow="off")
    c4.metric("Satisfaction", f"{sat['value']:.3g}" if sat else "-",
              f"{sat['kind']}, 95% [{sat['ci_low']:.3g}, {sat['ci_high']:.3g}]" if sat else None, delta_color="off",
              delta_arrow="off")
    fallback, rule = found["fallback_rate"], found["routing"]
    if fallback:
        expected = f"; the evaluation expected {rule['expected']:.1%}" if rule else ""
        st.metric("Fallback rate (hybrid routing)", f"{fallback['value']:.1%}",
                  f"95% [{fallback['ci_low']:.1%}, {fallback['ci_high']:.1%}]{expected}", delta_color="off",
                  delta_arrow="off")
    for alert in found["alerts"]:
        st.warning(md_escape(alert["sentence"]))

    daily = pd.DataFrame(found["daily"])
    if len(daily):
        left, right = st.columns(2)
        left.plotly_chart(charts.daily_series(daily, "requests", "Requests per day"), key="monitor_requests")
        right.plotly_chart(charts.daily_series(daily, "satisfaction", "Satisfaction per day", band=True),
                           key="monitor_satisfaction")
        left.plotly_chart(charts.daily_series(daily, "latency_p95", "Latency p95 per day (ms)"), key="monitor_latency")
        right.plotly_chart(charts.daily_series(daily, "error_rate", "Error rate per day"), key="monitor_errors")

    st.subheader("Drift")
    d = found["drift"]
    if d is None:
        st.info("Drift is measured for registered model versions (their training data is the reference).")
    else:
        st.plotly_chart(charts.psi_bars(d["features"], drift.STABLE, drift.SIGNIFICANT, d.get("noise")),
                        key="monitor_drift")
        st.text(f"{d['sentence']} {d['sampled']:,} requests sampled.")
        grew = d["grew"][d["feature"]]
        st.caption(md_escape(f"The bin that grew the most: {grew['bin']} ({grew['training_share']:.0%} of the "
                             f"training requests, {grew['production_share']:.0%} in production). Examples:"))
        for text in grew["examples"]:
            st.text(text[:500])

    st.subheader("Retraining")
    if found["retrain_recommended"]:
        st.error("Retraining is recommended. " + md_escape(" ".join(found["reasons"])))
        st.write("The candidate: production requests from the drifted bins whose answers got good feedback (and the "
                 "answers reviewers corrected), added to the training data as a new dataset version (quality-checked, "
                 "split with the locked test set kept), and a run with the production model's settings, which "
                 "registers itself as the next minor version.")
        with st.form("monitor_corrections"):
            st.caption("Optional, first: send the low-rated answers of the drifted bins to reviewers, who write the "
                       "answer that should have been given.")
            reviewers = {u.name: u.id for u in users.list_users()}
            chosen = st.multiselect("Reviewers", list(reviewers), key="monitor_reviewers")
            limit = st.number_input("Answers to send", 1, 1000, feedback.DEFAULT_LIMIT, key="monitor_limit")
            if st.form_submit_button("Send low-rated answers for correction"):
                campaign = feedback.send_for_correction(user, project.id, model, [reviewers[n] for n in chosen],
                                                        int(limit))
                st.success(f"Campaign {campaign.id} created; reviewers find it under My reviews.")
        if st.button("Build the retraining candidate and start its run", key="monitor_retrain", type="primary"):
            made = retrain.build(user, project.id, model, confirmed=True)
            st.success(f"Dataset version {made['dataset_version']} ({made['added_examples']} production examples "
                       f"added, {made['corrected_examples']} of them corrected by reviewers); run {made['run']} is "
                       "queued.")
    else:
        st.success("No retraining needed: drift is under 0.20 and satisfaction is not below the first week.")
    st.caption("The same figures: `studio monitor report --json`.")
