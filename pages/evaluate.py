"""Evaluate: a fine-tuned run against its base model on the locked test split: metrics with intervals and verdicts,
and every example side by side, largest regression first."""

import json

import pandas as pd
import streamlit as st

from engine.data import uploads
from engine.evaluate import code_checks, queue, results, sandbox
from engine.evaluate.forgetting import RETAINED
from engine.evaluate.options import EvalOptions
from engine.jobs import supervisor
from ui import charts, session, state
from ui.errors import shown_as_message
from ui.text import shown_model

session.require("analyst", "admin")  # reviewers and visitors never run this page
project = state.require_project()
st.title("Evaluate")
st.caption("Both models answer every example of the locked test split (never used in training). Each figure is the "
           "fine-tuned model minus the base model with a 95% bootstrap interval: only an interval that excludes zero "
           "is a difference.")

left, right = st.columns(2)
run, by_id = state.pick_finished_run(project.id, "evaluate_run", left)
run_id = run.id
peers = [r.id for r in results.comparable_runs(run, by_id.values())]
baseline = right.selectbox("Compared with", ["base", *[str(i) for i in peers]], key=f"evaluate_baseline_{run_id}",
                           format_func=lambda b: f"its base model ({shown_model(run.config['base_model'])})" if b == "base"
                           else f"run {b} · {by_id[int(b)].name}",
                           help="The baseline: the base model (does fine-tuning help?) or another run trained on "
                                "the same split (which run is better?).")
job = queue.job_state(queue.latest_job(run_id, baseline))
report = results.load_report(run, baseline)

with st.expander("Options"):
    o1, o2 = st.columns(2)
    max_new = o1.number_input("Max new tokens per answer", 8, 2048, 128, step=8, key="evaluate_max_new")
    limit = o2.number_input("Examples (0 = the whole test split)", 0, 100000, 0, key="evaluate_limit")
    general = st.file_uploader("Your own general-skills set for the forgetting check (chat JSONL; default: the "
                               "built-in 100 probes)", type=["jsonl"], key="evaluate_general")
    schema = st.file_uploader("A JSON Schema the answers should match (structured output)", type=["json"],
                              key="evaluate_schema")
    weak = False
    if project.task_type == "code":
        level = sandbox.level()
        if level == "python-level":
            st.warning(code_checks.DISABLED)
            weak = st.checkbox("Run code tests without a sandbox anyway (Python-level limits only; the code can read "
                               "what the studio can read)", key="evaluate_allow_weak")
        else:
            st.caption(f"Code tests run in a sandbox ({level}): own PID, mount and network namespaces, a read-only "
                       "Python, an unprivileged user, CPU and memory limits.")
    also = st.multiselect("Also evaluate these runs against the same baseline (queued one after another)",
                          [i for i in by_id if i != run_id and str(i) != baseline], key="evaluate_also",
                          format_func=lambda i: f"run {i} · {by_id[i].name}")

label = "Evaluate again" if report else "Run the evaluation"
if st.button(label, type="primary" if not report else "secondary", disabled=job["state"] in supervisor.ACTIVE,
             key=f"evaluate_start_{run_id}"):
    with shown_as_message():
        common = dict(baseline=baseline, max_new_tokens=int(max_new), limit=int(limit) or None,
                      general=str(uploads.stage_upload(general.getvalue(), general.name)) if general else None,
                      json_schema=str(uploads.stage_upload(schema.getvalue(), schema.name)) if schema else None,
                      allow_weak_sandbox=weak)
        for rid in (run_id, *also):
            queue.queue(EvalOptions(run_id=rid, **common))
        st.rerun()


@st.fragment(run_every="1s" if job["state"] in supervisor.ACTIVE else None)
def progress_panel() -> None:
    current = queue.job_state(queue.latest_job(run_id, baseline))
    if current["state"] in supervisor.ACTIVE:
        st.progress(current["progress"], text=f"Evaluating: {current['label']}")
        if st.button("Cancel the evaluation", key=f"evaluate_cancel_{run_id}"):
            supervisor.cancel(current["job"])
            st.rerun()
    elif current["state"] == "cancelled" and job["state"] in supervisor.ACTIVE:
        st.info("The evaluation was cancelled; the previous results (if any) are unchanged.")
    elif current["state"] == "succeeded" and job["state"] in supervisor.ACTIVE:
        st.rerun()  # the report just arrived: show it
    elif current["state"] == "failed":
        st.error(f"The evaluation stopped: {current['label']}")


progress_panel()
if report is None:
    st.stop()

base_label = "base" if baseline == "base" else f"run {baseline}"
st.subheader(f"Metrics on {report['n_examples']} test examples")
VERDICT = {"better": "✓ better", "worse": "✗ worse", "no detectable difference": "= no detectable difference",
           "shorter": "shorter", "longer": "longer"}
table = pd.DataFrame([{"metric": name, base_label: m["base"], "fine-tuned": m["finetuned"], "difference": m["diff"],
                       "95% interval": f"[{m['ci_low']:+.3f}, {m['ci_high']:+.3f}]",
                       "verdict": VERDICT.get(m["verdict"], m["verdict"])}
                      for name, m in report["metrics"].items()])
st.dataframe(table, hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(format="%.4f") for c in (base_label, "fine-tuned",
                                                                                       "difference")})
st.caption("ROUGE-L, chrF and BLEU: higher is better. Perplexity of the reference answers: lower is better. Length: "
           "words per answer. Latency: seconds per answer (each batch's time shared by its answers); lower is better. "
           + " ".join(report.get("notes", [])) + " "
           + " ".join(f"{n} signature: {s}." for n, s in report.get("signatures", {}).items()))

charted = {n: m for n, m in report["metrics"].items() if n not in ("length", "latency_s", "tokens_per_second")}
st.plotly_chart(charts.metric_changes(charted, base_label), key="evaluate_chart")

gap = report.get("train_test_gap")
if gap:
    st.subheader("Train-test gap")
    st.caption("Perplexity of the reference answers on unseen test examples divided by the perplexity on as many "
               "training examples. The baseline never trained on these examples, so its ratio is the control; a "
               "fine-tuned ratio far above it is memorization.")
    g1, g2 = st.columns(2)
    for col, key, title in ((g1, "base", f"Baseline ({base_label})"), (g2, "finetuned", "Fine-tuned")):
        r = gap[key]
        col.metric(title, f"{r['ratio']:.2f}x", f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]  test "
                   f"{r['test_perplexity']:.2f} / train {r['train_perplexity']:.2f}", delta_color="off",
                   delta_arrow="off")
    if gap["warning"]:
        st.warning(gap["warning"])

code = report.get("code")
if code:
    st.subheader("Code")
    st.write(f"Compile checks on {code['compile_checked']} examples (languages with a compiler here: "
             f"{', '.join(code['languages_checked'])}); tests run for {code['with_tests']} examples in a sandbox "
             f"(isolation: {code['isolation']}).")
    if code.get("tests_disabled"):
        st.warning(code["tests_disabled"])
    for name in ("base", "finetuned"):
        failures = code.get("test_failures", {}).get(name)
        if failures:
            with st.expander(f"Why {base_label if name == 'base' else 'the fine-tuned model'}'s tests failed (first "
                             f"{len(failures)})"):
                st.dataframe(pd.DataFrame({"reason": failures}), hide_index=True, width="stretch")

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
                   delta_color="off", delta_arrow="off")
    verdict = forgetting.get("verdict", "forgetting" if forgetting["warning"] else "retained")
    if verdict == "forgetting":
        st.warning(forgetting["warning"] + "\n\n" + "\n".join(f"- {r}" for r in forgetting["remedies"]))
    elif verdict == "possible_forgetting":
        st.info(forgetting["warning"])
    else:
        st.success(RETAINED)

routing = report.get("routing")
if routing:
    st.subheader("Hybrid routing")
    st.caption("Answer with the fine-tuned model; when its confidence (the mean probability of its own answer's "
               "tokens) is below a threshold, fall back to the base model prompted with a few training examples. "
               "Quality is the mean ROUGE-L of the routed answers on the test split.")
    pts = routing["points"]
    best = routing["recommended"]
    st.plotly_chart(charts.routing_curve(pts, best), key="evaluate_routing")
    if "gain" in routing:
        st.write("Recommendation: " + results.routing_sentence(routing))
    else:  # a report from before the recommendation followed its interval
        st.write(f"Best threshold {best['threshold']}: {best['fallback_rate']:.0%} fallback, quality "
                 f"{best['quality']:.3f}.")
    st.download_button("Download the routing rule (JSON)", json.dumps(routing["rule"], indent=2),
                       file_name=f"routing-rule-run-{run_id}.json", mime="application/json", key="evaluate_rule")

st.subheader("Examples, largest regression first")
rows = results.per_example(run, baseline)
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
a.caption(f"{'Base model' if baseline == 'base' else f'Run {baseline}'} (ROUGE-L {row['rougeL_base']:.3f})")
a.text(row["base_answer"])
b.caption(f"Fine-tuned (ROUGE-L {row['rougeL_finetuned']:.3f})")
b.text(row["finetuned_answer"])
