"""Evaluate: a fine-tuned run against its base model on the locked test split: metrics with intervals and verdicts,
and every example side by side, largest regression first."""

import json

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from engine import evaluate, runs
from ui import state
from ui.errors import shown_as_message

project = state.require_project()
st.title("Evaluate")
st.caption("Both models answer every example of the locked test split (never used in training). Each figure is the "
           "fine-tuned model minus the base model with a 95% bootstrap interval: only an interval that excludes zero "
           "is a difference.")

done = [r for r in runs.list_runs(project.id) if r.status == "succeeded" and r.config.get("split_id")]
if not done:
    st.info("No finished run yet: train one first.")
    st.page_link("app_pages/train.py", label="Open Train", icon=":material/arrow_forward:")
    st.stop()
by_id = {r.id: r for r in done}
run_id = st.selectbox("Run", list(by_id), key="evaluate_run",
                      format_func=lambda i: f"run {i} · {by_id[i].name} · base {by_id[i].config['base_model']}")
run = by_id[run_id]
job = evaluate.background_state(run)
report = evaluate.load_report(run)

label = "Evaluate again" if report else "Run the evaluation"
if st.button(label, type="primary" if not report else "secondary", disabled=job["state"] == "running",
             key=f"evaluate_start_{run_id}"):
    with shown_as_message():
        evaluate.start_background(run_id)
        st.rerun()


@st.fragment(run_every="1s" if job["state"] == "running" else None)
def progress_panel() -> None:
    current = evaluate.background_state(runs.get_run(run_id))
    if current["state"] == "running":
        st.progress(current["progress"], text=f"Evaluating: {current['label']}")
        if st.button("Cancel the evaluation", key=f"evaluate_cancel_{run_id}"):
            evaluate.cancel_background(runs.get_run(run_id))
            st.rerun()
    elif current["state"] == "cancelled" and job["state"] == "running":
        st.info("The evaluation was cancelled; the previous results (if any) are unchanged.")
    elif current["state"] == "done" and job["state"] == "running":
        st.rerun()  # the report just arrived: show it
    elif current["state"] == "failed":
        st.error(f"The evaluation stopped: {current['label']}")


progress_panel()
if report is None:
    st.stop()

st.subheader(f"Metrics on {report['n_examples']} test examples")
VERDICT = {"better": "✓ better", "worse": "✗ worse", "no detectable difference": "= no detectable difference",
           "shorter": "shorter", "longer": "longer"}
table = pd.DataFrame([{"metric": name, "base": m["base"], "fine-tuned": m["finetuned"], "difference": m["diff"],
                       "95% interval": f"[{m['ci_low']:+.3f}, {m['ci_high']:+.3f}]",
                       "verdict": VERDICT.get(m["verdict"], m["verdict"])}
                      for name, m in report["metrics"].items()])
st.dataframe(table, hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(format="%.4f") for c in ("base", "fine-tuned",
                                                                                       "difference")})
st.caption("ROUGE-L, chrF and BLEU: higher is better. Perplexity of the reference answers: lower is better. Length: "
           "words per answer. " + " ".join(f"{n} signature: {s}." for n, s in report.get("signatures", {}).items()))

names = [n for n in report["metrics"] if n != "length"]
fig = go.Figure()
for name in names:
    m = report["metrics"][name]
    scale = abs(m["base"]) or 1.0  # relative change, so metrics of different scales share one chart
    color = {"better": "#16a34a", "worse": "#dc2626"}.get(m["verdict"], "#9ca3af")
    fig.add_trace(go.Bar(x=[name], y=[100 * m["diff"] / scale], name=name, marker_color=color,
                         error_y=dict(type="data", symmetric=False, array=[100 * (m["ci_high"] - m["diff"]) / scale],
                                      arrayminus=[100 * (m["diff"] - m["ci_low"]) / scale])))
fig.update_layout(title="Change against the base model (% of the base value, 95% interval; green better, red worse, "
                        "grey no detectable difference; perplexity: lower is better)", showlegend=False,
                  height=320, margin=dict(l=10, r=10, t=40, b=10), yaxis_title="%")
st.plotly_chart(fig, key="evaluate_chart")

forgetting = report.get("forgetting")
if forgetting:
    st.subheader("Forgetting check")
    st.caption(f"General skills the base model had: {forgetting['probes']} general questions (chrF against their "
               "references) and the perplexity of a general text sample. Retention = fine-tuned / base (for "
               "perplexity, base / fine-tuned), with its 95% interval.")
    c1, c2 = st.columns(2)
    for col, key, title in ((c1, "probe_chrf", "General questions (chrF)"),
                            (c2, "general_text_perplexity", "General text (perplexity)")):
        r = forgetting[key]
        col.metric(title, f"{r['retention']:.0%} retained", f"[{r['ci_low']:.0%}, {r['ci_high']:.0%}]",
                   delta_color="off")
    if forgetting["warning"]:
        st.warning(forgetting["warning"] + "\n\n" + "\n".join(f"- {r}" for r in forgetting["remedies"]))
    else:
        st.success("No sign of forgetting: the fine-tuned model keeps at least 90% of the base model's general skills.")

routing = report.get("routing")
if routing:
    st.subheader("Hybrid routing")
    st.caption("Answer with the fine-tuned model; when its confidence (the mean probability of its own answer's "
               "tokens) is below a threshold, fall back to the base model prompted with a few training examples. "
               "Quality is the mean ROUGE-L of the routed answers on the test split.")
    pts = routing["points"]
    best = routing["recommended"]
    fig = go.Figure(go.Scatter(x=[100 * p["fallback_rate"] for p in pts], y=[p["quality"] for p in pts],
                               mode="lines+markers", text=[f"threshold {p['threshold']}" for p in pts],
                               name="thresholds 0 to 1"))
    fig.add_trace(go.Scatter(x=[100 * best["fallback_rate"]], y=[best["quality"]], mode="markers",
                             marker=dict(size=14, color="#16a34a"), name=f"recommended: {best['threshold']}"))
    fig.update_layout(xaxis_title="fallback rate (%)", yaxis_title="quality (ROUGE-L)", height=320,
                      margin=dict(l=10, r=10, t=30, b=10))
    st.plotly_chart(fig, key="evaluate_routing")
    st.write(f"Recommended threshold **{best['threshold']}**: {best['fallback_rate']:.0%} of the questions go to the "
             f"fallback, quality {best['quality']:.3f} (fine-tuned only {routing['only_finetuned']:.3f}, few-shot "
             f"base only {routing['only_fallback']:.3f}).")
    st.download_button("Download the routing rule (JSON)", json.dumps(routing["rule"], indent=2),
                       file_name=f"routing-rule-run-{run_id}.json", mime="application/json", key="evaluate_rule")

st.subheader("Examples, largest regression first")
rows = evaluate.per_example(run)
st.dataframe(pd.DataFrame([{k: r[k] for k in ("example", "rougeL_base", "rougeL_finetuned", "change", "question")}
                           for r in rows]), hide_index=True, width="stretch")
choice = st.selectbox("Look at one example", [r["example"] for r in rows], index=0, key=f"evaluate_example_{run_id}",
                      help="In the order of the table: the largest regression first.")
row = next(r for r in rows if r["example"] == choice)
st.caption("Question")
st.text(row["question"])
st.caption("Reference answer")
st.text(row["reference"])
a, b = st.columns(2)
a.caption(f"Base model (ROUGE-L {row['rougeL_base']:.3f})")
a.text(row["base_answer"])
b.caption(f"Fine-tuned (ROUGE-L {row['rougeL_finetuned']:.3f})")
b.text(row["finetuned_answer"])
