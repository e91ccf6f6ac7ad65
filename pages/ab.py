"""A/B: the blind pairwise votes of a review campaign (win rate with a Wilson interval, sign test, length bias,
per-criterion tests), and a production traffic log (lift with intervals, sample-ratio check, guardrails, decision)."""

import pandas as pd
import streamlit as st

from engine.data import uploads
from engine.review import ab_traffic, campaigns, stats
from ui import charts, session, state
from ui.errors import shown_as_message
from ui.text import md_escape

user = session.require("analyst", "admin")
project = state.require_project()
st.title("A/B")

st.subheader("Pairwise votes")
pairwise = [c for c in campaigns.list_campaigns(project.id) if c.kind == "pairwise"]
if not pairwise:
    st.info("No pairwise campaign yet: create one on the Review page.")
else:
    by_id = {c.id: c for c in pairwise}
    cid = st.selectbox("Campaign", list(by_id), key="ab_campaign", format_func=lambda i: f"{i} · {by_id[i].name}")
    r = stats.campaign_results(user, cid)
    if not r["n"]:
        st.info("No votes yet.")
    else:
        (st.success if r["ci_low"] > 0.5 else st.warning if r["ci_high"] < 0.5 else st.info)(r["verdict"])
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Fine-tuned win rate", f"{r['win_rate']:.0%}", f"95% [{r['ci_low']:.0%}, {r['ci_high']:.0%}]",
                  delta_color="off", delta_arrow="off",
                  help="(wins + ties/2) / votes; 'both bad' counts as a tie. Wilson interval.")
        c2.metric("Sign test p", f"{r['sign_test_p']:.3g}" if r["sign_test_p"] is not None else "n/a",
                  help="Two-sided exact binomial test on the decisive votes (ties left out).")
        c3.metric("Ties", f"{r['tie_share']:.0%}")
        c4.metric("Both bad", f"{r['both_bad_share']:.0%}")
        st.write(f"{r['wins']} wins, {r['losses']} losses, {r['ties']} ties and {r['both_bad']} 'both bad' over "
                 f"{r['n']} votes.")
        rows = [{"what": "overall", "win": r["win_rate"], "low": r["ci_low"], "high": r["ci_high"]}]
        rows += [{"what": c, "win": v["win_rate"], "low": v["ci_low"], "high": v["ci_high"]}
                 for c, v in r["per_criterion"].items()]
        st.plotly_chart(charts.forest(rows), key="ab_forest")
        if r["per_criterion"]:
            st.dataframe(pd.DataFrame([{"criterion": c, **v} for c, v in r["per_criterion"].items()]),
                         hide_index=True, width="stretch")
            st.caption("Per criterion: Wilcoxon signed-rank test of the paired votes (+1, -1, ties dropped), "
                       "Holm-corrected over the criteria (p_holm).")
        lb = r["length_bias"]
        if lb["warning"]:
            st.warning(lb["warning"])
        elif lb["share"] is not None:
            st.caption(f"Length bias check: the longer answer won {lb['share']:.0%} of {lb['decisive_votes']} "
                       f"decisive votes (p = {lb['p_value']:.3g}): no sign that length decides.")
        target = st.slider("Win rate to detect", 0.51, 0.95, 0.60, step=0.01, key="ab_target",
                           help="The smallest real win rate you want a campaign to be able to show.")
        need = stats.votes_needed(target)
        observed = r["votes_needed"].get("at_observed_win_rate")
        st.caption(f"To detect a {target:.0%} win rate against 50% with 80% power (two-sided, 5% level) takes about "
                   f"{need} votes; this campaign has {r['n']}"
                   + (f" (at the observed rate, about {observed} would be needed)." if observed else "."))
        if r["gold"]:
            st.caption("Gold items: how often each reviewer gave the known answer")
            st.dataframe(pd.DataFrame(r["gold"]), hide_index=True, width="stretch")

st.subheader("Production traffic")
st.caption("A log of requests from the live A/B split (CSV or JSONL): a variant column, a user or session id, a "
           "timestamp, and metrics such as satisfaction, resolved, latency and error. Users are the unit: metrics are "
           "averaged per user before the variants are compared.")
log = st.file_uploader("Traffic log", type=["csv", "jsonl"], key="ab_log")
c1, c2 = st.columns(2)
# No preset: an uploaded log's planned share is something only the person who set up the router knows, and a
# wrong guess makes the sample-ratio test call a healthy 50/50 split broken.
split = c1.number_input("Planned share of users sent to the new model (as the router was set)", 0.01, 0.99,
                        value=None, step=0.01, key="ab_split", placeholder="e.g. 0.5 for a 50/50 split")
treatment = c2.text_input("The new model's variant name (blank: detect)", key="ab_treatment")
if log is not None:
    with shown_as_message():
        staged = uploads.stage_upload(log.getvalue(), log.name)
        columns, found = ab_traffic.detected_columns(staged)
        st.caption("Columns (found by their usual names; choose others if the log names them differently):")
        m1, m2, m3 = st.columns(3)
        mapping = {}
        for box, key, label in ((m1, "variant", "Variant"), (m2, "user", "User or session"), (m3, "time", "Time")):
            chosen = box.selectbox(label, columns, index=columns.index(found[key]) if found[key] else None,
                                   key=f"ab_map_{key}", placeholder="Choose the column")
            if chosen is not None:
                mapping[key] = chosen
        if len(mapping) < 3:
            st.info("Choose the variant, user and time columns to analyze the log.")
            st.stop()
        seen = ab_traffic.observed_users(staged, treatment.strip() or None, mapping=mapping)
        st.write(f"Observed: {seen['n']['control']:,} users in {seen['control']}, {seen['n']['treatment']:,} in "
                 f"{seen['treatment']} ({seen['share']:.1%} in the new model).")
        if split is None:
            st.info("Enter the planned share of users the router sends to the new model: the sample-ratio test "
                    "checks the observed share against it.")
            st.stop()
        result = ab_traffic.analyze(staged, float(split), treatment.strip() or None, mapping=mapping)
        decision = result["decision"]
        box = {"ship": st.success, "keep collecting": st.info, "do not ship": st.error}[decision]
        box(md_escape(f"Decision: {decision}. " + " ".join(result["reasons"])))
        n, s = result["n"], result["srm"]
        st.write(f"Users: control {n['control']:,}, treatment {n['treatment']:,}; observed treatment share "
                 f"{s['observed_share']:.2%} against {s['expected_share']:.0%} planned (sample-ratio test "
                 f"p = {ab_traffic.p_text(s['p_value'])}).")
        if s["alert"]:
            st.error("Sample ratio mismatch: the split is not what was planned, so the assignment is broken.")
        issues = result["data_issues"]
        d1, d2 = st.columns(2)
        d1.metric("Exact duplicate rows dropped", f"{issues['duplicate_rows_dropped']:,}",
                  help="Rows identical in every column, counted once.")
        d2.metric("Users in both variants, left out", f"{issues['users_in_both_variants']:,}",
                  f"{issues['rows_of_those_users_excluded']:,} rows", delta_color="off", delta_arrow="off",
                  help="Their outcome mixes both models, so they count for neither.")
        st.dataframe(pd.DataFrame([{"metric": k, **{c: v[c] for c in ("control", "treatment", "diff", "ci_low",
                                                                        "ci_high", "relative_lift")},
                                    "p": ab_traffic.p_text(v["p_value"])}  # the same figure as in the text
                                   for k, v in result["metrics"].items()]), hide_index=True, width="stretch")
        st.caption("diff = treatment - control on per-user means, with Welch's 95% interval; relative lift = "
                   "treatment / control - 1 (delta-method interval in the JSON and CLI output).")
        g = {k: v for k, v in result["guardrails"].items() if k != "breached"}
        if g:
            st.caption(md_escape("Guardrails: " + ", ".join(f"{k} {v:.4g}" for k, v in g.items())))
        if result["primary"]:
            st.plotly_chart(charts.cumulative_lift(result["cumulative"], result["primary"]), key="ab_cumulative")
        st.caption("Route users deterministically (the same user always gets the same model):")
        st.code(result["routing_snippet"], language="python")
