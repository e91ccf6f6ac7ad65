"""The project's notebook: one cell per built step with its state and key figure, linking to its page."""

import streamlit as st

from engine.data import split, versions
from engine.data.quality import cached_report
from engine.evaluate import results
from engine.jobs import supervisor
from engine.models import registry
from engine.review import stats
from engine.train.summary import best_validation
from ui import charts, session, state
from ui.text import md_escape

user = session.require("analyst", "admin")  # reviewers and visitors never run this page
project = state.require_project()
st.title(md_escape(project.name))
st.caption(f"Task: {project.task_type}. Each cell below is a step of the fine-tuning flow; open it to work on it.")

project_versions = versions.list_versions(project.id)
with st.container(border=True):
    st.subheader("1 · Data")
    if not project_versions:
        st.write("No dataset yet. Upload your examples, or try the built-in sample.")
    else:
        latest = project_versions[0]
        c1, c2, c3 = st.columns(3)
        c1.metric("Latest version", f"v{latest.version}")
        c2.metric("Records", f"{latest.records:,}")
        c3.metric("Versions", len(project_versions))
        st.text(f"{latest.name} · {latest.shape}")
    st.page_link("pages/data.py", label="Open Data", icon=":material/arrow_forward:")

with st.container(border=True):
    st.subheader("2 · Quality")
    report = cached_report(project_versions[0]) if project_versions else None
    if report is None:
        st.write("Not checked yet: open Data or Quality to run the check.")
    else:
        c1, c2, c3 = st.columns(3)
        c1.metric("Errors", len(report.errors), help="Errors block training.")
        c2.metric("Warnings", len(report.warnings), help="Warnings explain a risk and offer a fix.")
        c3.metric("Usable examples", f"{report.stats.get('usable_examples', 0):,}")
        st.write(f"Verdict: **{report.readiness['label']}**")
    splits = split.splits_of_project(project.id)
    if splits:
        c = splits[0].counts
        st.write(f"Latest split: train {c['train']:,} · validation {c['validation']:,} · test {c['test']:,} (locked)")
    st.page_link("pages/quality.py", label="Open Quality", icon=":material/arrow_forward:")

with st.container(border=True):
    st.subheader("3 · Train and 4 · Runs")
    project_runs = supervisor.list_runs(project.id)
    if not project_runs:
        st.write("No run yet: configure one with recommended settings on the Train page.")
    else:
        active = [r for r in project_runs if r.status in supervisor.ACTIVE]
        found = best_validation(project_runs)
        c1, c2, c3 = st.columns(3)
        c1.metric("Runs", len(project_runs))
        c2.metric("Active", len(active))
        c3.metric("Best validation loss", f"{found[1]:.3f}" if found else "-",
                  help=(f"Run {found[0].run.id} ({found[0].run.status}), the lowest validation loss of any run so far"
                        if found else "No run has reached its first validation point yet."))
        if found:
            best = found[0]
            st.plotly_chart(charts.curves([("validation", best.curves["eval"], "eval_loss", True)],
                                          f"Best run {best.run.id} ({best.run.status}): validation loss",
                                          height=200),
                            key="home_best_run")
    c1, c2 = st.columns(2)
    with c1:
        st.page_link("pages/train.py", label="Open Train", icon=":material/arrow_forward:")
    with c2:
        st.page_link("pages/runs.py", label="Open Runs", icon=":material/arrow_forward:")

with st.container(border=True):
    st.subheader("5 · Evaluate")
    evaluated = [(r, results.load_report(r)) for r in supervisor.list_runs(project.id) if r.status == "succeeded"]
    evaluated = [(r, rep) for r, rep in evaluated if rep]
    if not evaluated:
        st.write("No evaluation yet: compare a finished run with its base model on the locked test split.")
    else:
        r, rep = evaluated[0]
        main = rep["metrics"].get("rougeL") or next(iter(rep["metrics"].values()))
        st.metric(f"Run {r.id}: ROUGE-L against the base model", f"{main['finetuned']:.3f}",
                  f"{main['diff']:+.3f} [{main['ci_low']:+.3f}, {main['ci_high']:+.3f}] {main['verdict']}")
    st.page_link("pages/evaluate.py", label="Open Evaluate", icon=":material/arrow_forward:")

with st.container(border=True):
    st.subheader("6 · Review and 7 · A/B")
    summary = stats.project_summary(user, project.id)
    if not summary["campaigns"]:
        st.write("No review yet: have people rate the evaluated answers, or vote blind between two models.")
    else:
        c1, c2, c3 = st.columns(3)
        c1.metric("Campaigns", summary["campaigns"])
        c2.metric("Ratings and votes", summary["ratings"])
        latest = summary["latest_pairwise"]
        c3.metric("Fine-tuned win rate", f"{latest['win_rate']:.0%}" if latest else "-",
                  f"95% [{latest['ci_low']:.0%}, {latest['ci_high']:.0%}] over {latest['n']} votes" if latest
                  else None, delta_color="off", delta_arrow="off")
    c1, c2 = st.columns(2)
    with c1:
        st.page_link("pages/review.py", label="Open Review", icon=":material/arrow_forward:")
    with c2:
        st.page_link("pages/ab.py", label="Open A/B", icon=":material/arrow_forward:")

with st.container(border=True):
    st.subheader("8 · Models")
    model_versions = registry.list_versions(project.id)
    in_production = registry.production(project.id)
    if not model_versions:
        st.write("No model version yet: register a succeeded run on the Models page.")
    else:
        c1, c2 = st.columns(2)
        c1.metric("Versions", len(model_versions))
        c2.metric("In production", in_production.label if in_production else "none")
    st.page_link("pages/models.py", label="Open Models", icon=":material/arrow_forward:")
