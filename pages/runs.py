"""Runs: every run with its status and progress; live curves of the selected one; cancel, resume, logs, W&B;
comparison of several supervisor."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from engine.jobs import ray_backend, supervisor
from engine.train.summary import config_diff, summarize
from ui import charts, session, state
from ui.errors import shown_as_message
from ui.text import hide_paths, md_escape

session.require("analyst", "admin")  # reviewers and visitors never run this page
project = state.require_project()
st.title("Runs")
st.caption("Runs live in their own processes and in the database: a refresh, a second browser or a restarted "
           "dashboard shows the same state. Stopped runs can be resumed from their last checkpoint.")

supervisor.reconcile()
all_runs = supervisor.list_runs(project.id)
if not all_runs:
    st.info("No runs yet: configure one on the Train page.")
    st.page_link("pages/train.py", label="Open Train", icon=":material/arrow_forward:")
    st.stop()

ICONS = {"queued": "⏳", "running": "▶", "succeeded": "✓", "failed": "✗", "cancelled": "■"}


def table(rows) -> pd.DataFrame:
    out = []
    for r in rows:
        s = summarize(r)
        out.append({"run": r.id, "name": r.name, "status": f"{ICONS.get(r.status, '')} {r.status}",
                    "progress": s.progress, "step": f"{r.step}/{r.max_steps or '?'}",
                    "ETA": str(timedelta(seconds=int(s.eta_seconds))) if s.eta_seconds else "",
                    "error": r.error_kind or "", "pid": r.pid,
                    "where": "local" if r.backend == "local" else f"ray {r.node or '(waiting)'}",
                    "started": r.started_at})
    return pd.DataFrame(out)


def curve_chart(summary, title: str, series: list[tuple[str, str, str]], y_log: bool = False):
    return charts.curves([(label, summary.curves[kind], key, kind == "eval") for kind, key, label in series], title,
                         summary.best_step if summary.stopped_early else None, y_log)


def render(run) -> None:
    summary = summarize(run)
    eta = f" · about {timedelta(seconds=int(summary.eta_seconds))} left" if summary.eta_seconds else ""
    st.progress(summary.progress, text=f"{run.status} · step {run.step}/{run.max_steps or '?'}{eta}")
    if run.error_message:
        (st.error if run.status == "failed" else st.info)(md_escape(hide_paths(run.error_message)))
    if summary.alarm:
        st.warning(summary.alarm)
    for note in summary.notes:
        st.caption(md_escape(note))
    if summary.loss:
        st.caption("Loss: " + md_escape(summary.loss.get("message", "")))
    if not summary.curves["log"]:
        st.write("No metrics yet (the trainer is starting).")
        return
    a, b = st.columns(2)
    a.plotly_chart(curve_chart(summary, "Loss", [("log", "loss", "train"), ("eval", "eval_loss", "validation")]),
                   key=f"runs_loss_{run.id}")
    b.plotly_chart(curve_chart(summary, "Perplexity", [("log", "perplexity", "train"),
                                                       ("eval", "eval_perplexity", "validation")], y_log=True),
                   key=f"runs_ppl_{run.id}")
    a.plotly_chart(curve_chart(summary, "Learning rate", [("log", "learning_rate", "learning rate")]),
                   key=f"runs_lr_{run.id}")
    b.plotly_chart(curve_chart(summary, "Throughput (non-padding tokens/s)",
                               [("log", "tokens_per_second", "tokens/s")]), key=f"runs_tps_{run.id}")
    if any(p.get("reward_margin") is not None for p in summary.curves["log"]):  # a preference (DPO) run
        a.plotly_chart(curve_chart(summary, "Rewards", [("log", "rewards_chosen", "chosen (train)"),
                                                        ("log", "rewards_rejected", "rejected (train)"),
                                                        ("eval", "eval_rewards_chosen", "chosen (validation)"),
                                                        ("eval", "eval_rewards_rejected", "rejected (validation)")]),
                       key=f"runs_rewards_{run.id}")
        b.plotly_chart(curve_chart(summary, "Reward margin and accuracy", [
            ("log", "reward_margin", "margin (train)"), ("eval", "eval_reward_margin", "margin (validation)"),
            ("log", "reward_accuracy", "accuracy (train)"), ("eval", "eval_reward_accuracy", "accuracy (validation)")]),
            key=f"runs_margin_{run.id}")


def any_active() -> bool:
    jobs = supervisor.list_runs(project.id, kind=None)
    return any(j.status in supervisor.ACTIVE for j in jobs)


was_active = any_active()


@st.fragment(run_every="2s" if was_active else None)
def live_panel() -> None:
    """The table, the picker, the selected run and its buttons: all refreshed together while a job is active, so a
    finished run never shows "running 0%" and Resume is enabled as soon as a cancel has landed."""
    supervisor.reconcile()
    current = supervisor.list_runs(project.id)
    if ray_backend.configured() == "ray":
        with shown_as_message():
            gpus = ray_backend.cluster_gpus(supervisor.list_runs(kind=None))
            st.caption(f"Jobs run on the Ray cluster at {md_escape(ray_backend.address())}: {gpus['nodes']} "
                       f"node(s), {gpus['gpus']:g} GPU(s), {gpus['free']:g} free for the studio's jobs.")
    for job in [j for j in supervisor.list_runs(project.id, kind="eval") if j.status in supervisor.ACTIVE]:
        st.caption(f"Evaluation job {job.id} ({md_escape(job.name)}) is {job.status} at {job.step}% and shares the "
                   "device queue with training runs (one job per device).")
    st.dataframe(table(current), hide_index=True, width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0,
                                                                            max_value=1.0)})
    by_id = {r.id: r for r in current}
    # The label never changes with the run's status (a changed label made the box fall back to the first run);
    # ?run=ID (the Train page's link) picks the run.
    wanted = st.query_params.get("run", "")
    if wanted.isdigit() and int(wanted) in by_id and st.session_state.get("runs_from_link") != wanted:
        st.session_state["runs_selected"], st.session_state["runs_from_link"] = int(wanted), wanted
    if st.session_state.get("runs_selected") not in by_id:
        st.session_state.pop("runs_selected", None)
    selected = st.selectbox("Run", list(by_id), key="runs_selected",
                            format_func=lambda i: f"run {i} · {by_id[i].name}")
    run = by_id[selected]
    with shown_as_message():
        render(run)
    c1, c2, _ = st.columns([1, 1, 4])
    if c1.button("Cancel", disabled=run.status not in supervisor.ACTIVE, key=f"runs_cancel_{selected}",
                 help="The trainer stops at the next step and saves a checkpoint (killed after a grace period)."):
        with shown_as_message():
            supervisor.cancel(selected)
            st.rerun(scope="fragment")
    if c2.button("Resume", disabled=run.status not in ("failed", "cancelled"), key=f"runs_resume_{selected}",
                 help="Continues from the last complete checkpoint, with the same step count and curves."):
        with shown_as_message():
            supervisor.resume(selected)
            st.rerun()
    if any_active() != was_active:
        st.rerun()  # a job started or ended: the whole page (and its timer) follows


live_panel()
run = supervisor.get_run(st.session_state.get("runs_selected") or all_runs[0].id)
ids = [r.id for r in all_runs]

summary = summarize(run)
with st.expander("Log (last lines)"):
    st.code(hide_paths(summary.log) if summary.log else "(empty)", language=None)
with st.expander("Weights & Biases"):
    if summary.wandb_url:
        st.link_button("Open the W&B run", summary.wandb_url)
    elif summary.wandb_sync:
        st.write("The run is logged offline. Upload it where a network exists with (from the folder that holds the "
                 "workspace):")
        st.code(hide_paths(summary.wandb_sync), language="bash")
    else:
        st.write("W&B logging is off for this run.")
with st.expander("Configuration"):
    st.json({k: hide_paths(v) if isinstance(v, str) else v for k, v in run.config.items()}, expanded=False)

st.subheader("Compare runs")
chosen = st.multiselect("Runs to compare", ids, default=ids[:2] if len(ids) > 1 else ids, key="runs_compare")
if len(chosen) >= 2:
    picked = [r for r in all_runs if r.id in chosen]
    series = [(f"run {r.id} {label}", summarize(r).curves[kind], key, kind == "eval") for r in picked
              for kind, key, label in (("log", "loss", "train"), ("eval", "eval_loss", "validation"))]
    st.plotly_chart(charts.curves(series, "Loss", height=350), key="runs_compare_chart")
    diff = config_diff(picked)
    st.dataframe(pd.DataFrame(diff) if diff else pd.DataFrame([{"setting": "(identical configs)"}]),
                 hide_index=True, width="stretch")
