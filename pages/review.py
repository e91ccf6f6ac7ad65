"""Review: create human-review campaigns from stored evaluation outputs, follow the reviewers' progress, send
disagreements to one more reviewer, export, and read the rating results with their agreement."""

import pandas as pd
import streamlit as st

from engine.augment import gate
from engine.data import uploads
from engine.evaluate import results
from engine.jobs import supervisor
from engine.review import campaigns, preferences, ratings_export, stats
from engine.store import users
from ui import charts, session, state
from ui.errors import shown_as_message

user = session.require("analyst", "admin")
project = state.require_project()
st.title("Review")
st.caption("Reviewers rate answers blind (they never see which model wrote what), in their own random order. Each "
           "item can go to several reviewers, so agreement can be measured.")

evaluated = [(r, results.evaluated_baselines(r)) for r in supervisor.list_runs(project.id) if r.status == "succeeded"]
evaluated = [(r, b) for r, b in evaluated if b]
reviewers = users.list_users()
with st.expander("New campaign", expanded=not campaigns.list_campaigns(project.id)):
    if not evaluated:
        st.info("Evaluate a run first: campaigns review its stored test-set answers.")
    elif not [u for u in reviewers if u.role == "reviewer"]:
        st.info("Add reviewers first (Users page, or `studio users add NAME --role reviewer`).")
    else:
        with st.form("review_new"):
            by_key = {f"{r.id}:{b}": (r, b) for r, bs in evaluated for b in bs}
            key = st.selectbox("Evaluation", list(by_key), key="review_source",
                               format_func=lambda k: f"run {by_key[k][0].id} · {by_key[k][0].name} against "
                               + ("its base model" if by_key[k][1] == "base" else f"run {by_key[k][1]}"))
            kind = st.radio("Kind", ["rating", "pairwise"], horizontal=True, key="review_kind",
                            format_func={"rating": "Rate single answers (1-5 on five criteria)",
                                         "pairwise": "Blind pairwise votes (A better / B better / tie / both bad)"}.get)
            c1, c2 = st.columns(2)
            sample = c1.number_input("Examples to review", 1, 5000, 150, key="review_sample",
                                     help="Rating campaigns show each example twice, once per model.")
            overlap = c2.number_input("Reviewers per item", 1, 20, 2, key="review_overlap",
                                      help="Two or more let the results measure agreement.")
            chosen = st.multiselect("Reviewers", [u.id for u in reviewers], key="review_reviewers",
                                    format_func=lambda i: next(f"{u.name} ({u.role})" for u in reviewers if u.id == i))
            per_criterion = st.checkbox("Pairwise: also vote per criterion", key="review_per_criterion")
            gold_text = st.text_input("Gold items (optional)", key="review_gold",
                                      help="Example numbers with a known answer, to check reviewers: "
                                           "pairwise '3:finetuned, 7:tie'; ratings '3:5' (expected accuracy).")
            name = st.text_input("Name (analysts only see it)", key="review_name")
            if st.form_submit_button("Create the campaign", type="primary"):
                with shown_as_message():
                    run, baseline = by_key[key]
                    made = campaigns.create_campaign(user, run.id, kind, chosen, int(sample), int(overlap), baseline,
                                                  name or None, per_criterion, campaigns.parse_gold(gold_text, kind),
                                                  project_id=project.id)
                    st.success(f"Campaign {made.id} created.")

project_campaigns = campaigns.list_campaigns(project.id)
voted = [c for c in project_campaigns if c.kind in ("pairwise", campaigns.CORRECTION)]
with st.expander("Preference data for DPO, ORPO and KTO"):
    st.caption("Decided pairwise votes (the answer reviewers chose over the other) and reviewer corrections (the "
               "corrected answer over the model's) become one preference dataset, each pair with its provenance. "
               "Ties, both-bad and contested items are dropped and counted. Pairs train with DPO (or ORPO); "
               "unpaired, each pair is a good and a bad answer for KTO.")
    with st.form("review_prefs"):
        labels = {c.id: f"{c.id} · {c.name} ({c.kind})" for c in voted}
        sources = st.multiselect("Campaigns", list(labels), key="review_prefs_campaigns", format_func=labels.get)
        extra = st.file_uploader("Preference file (optional)", type=["jsonl", "json", "csv", "parquet"],
                                 key="review_prefs_file")
        name = st.text_input("Dataset name", "preferences", key="review_prefs_name")
        unpaired = st.checkbox("Unpaired feedback for KTO", key="review_prefs_unpaired",
                               help="Each pair's chosen answer labelled good and its rejected one bad.")
        if st.form_submit_button("Build the preference dataset"):
            with shown_as_message():
                named = [f"campaign:{i}" for i in sources]
                if extra is not None:
                    named.append(str(uploads.stage_upload(extra.getvalue(), extra.name)))
                built = preferences.build(user, project.id, named, name or "preferences",
                                          unpaired=[] if unpaired else None)
                st.success(built.summary())
if not project_campaigns:
    st.stop()
by_id = {c.id: c for c in project_campaigns}
cid = st.selectbox("Campaign", list(by_id), key="review_campaign",
                   format_func=lambda i: f"{i} · {by_id[i].name} ({by_id[i].kind})")
campaign = by_id[cid]
progress = campaigns.progress(user, cid)
st.dataframe(pd.DataFrame(progress), hide_index=True, width="stretch")
c1, c2, c3 = st.columns(3)
if c1.button("Send disagreements to one more reviewer", key="review_escalate"):
    with shown_as_message():
        sent = campaigns.escalate(user, cid)
        st.success(f"{sent} item{'s' if sent != 1 else ''} sent to one more reviewer.")
# the export is built when the button is pressed, not on every page load
c2.download_button("Export CSV", lambda: ratings_export.export(user, cid, "csv"), file_name=f"campaign-{cid}.csv",
                   mime="text/csv", key="review_csv")
c3.download_button("Export JSON", lambda: ratings_export.export(user, cid, "json"), file_name=f"campaign-{cid}.json",
                   mime="application/json", key="review_json")

if campaign.kind == campaigns.CORRECTION:
    st.info("Reviewers write corrected answers in this campaign; they go into the model's retraining data (Monitor "
            "page). Export the campaign to read them.")
    st.stop()
if campaign.kind == campaigns.AUGMENT:
    decided = gate.decisions(cid)
    accepted = [d for d in decided if d["accepted"]]
    st.write(f"{sum(d['reviewed'] for d in decided)} of {len(decided)} generated candidates reviewed; "
             f"{len(accepted)} accepted ({sum(d['edited'] for d in accepted)} with an edit). An item is accepted when "
             "most of its reviewers accepted it.")
    if st.button("Add the accepted records as a new dataset version", key="review_augment_accept",
                 disabled=not accepted, help="A child version of the augmented one, with each record's provenance; "
                                             "its split keeps the parent's locked test set unchanged."):
        with shown_as_message():
            child = gate.accept(user, cid)
            st.success(f"Dataset version v{child.version} has {child.fixes[-1]['added']} reviewed records added "
                       "(the Quality page shows their share).")
    st.stop()
results = stats.campaign_results(user, cid)
if campaign.kind == "pairwise":
    st.info("Pairwise results (win rate, sign test, length bias) are on the A/B page.")
    st.page_link("pages/ab.py", label="Open A/B", icon=":material/arrow_forward:")
    st.stop()
if not results["n_ratings"]:
    st.info("No ratings yet.")
    st.stop()

st.subheader(f"Ratings ({results['n_ratings']} from {len(results['reviewers'])} reviewers)")


def interval(x: dict) -> str:
    return f"[{x['ci_low']:.2f}, {x['ci_high']:.2f}]" if x["mean"] is not None else ""


rows = []
for c, e in results["criteria"].items():
    b, f = e["models"]["base"], e["models"]["finetuned"]
    paired = e["paired"]
    rows.append({"criterion": c, "base": b["mean"], "base 95%": interval(b), "fine-tuned": f["mean"],
                 "fine-tuned 95%": interval(f), "paired examples": paired["n"],
                 "base (paired)": paired.get("base_mean"), "fine-tuned (paired)": paired.get("finetuned_mean"),
                 "paired diff": paired["mean_diff"], "p (Holm)": paired.get("p_holm"),
                 "agreement": e["agreement"]})
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
             column_config={k: st.column_config.NumberColumn(format="%.3f")
                            for k in ("base", "fine-tuned", "base (paired)", "fine-tuned (paired)", "paired diff",
                                      "p (Holm)")})
st.caption("Means over items (each item's reviewers averaged first) with 95% t intervals. The paired columns are "
           "over the examples both models were rated on: paired diff = fine-tuned (paired) minus base (paired); p "
           "from the Wilcoxon signed-rank test, Holm-corrected over the five criteria. Agreement: Krippendorff's "
           "alpha (ordinal): >= 0.8 reliable, 0.667-0.8 tentative, lower unreliable.")
st.plotly_chart(charts.score_means(results["criteria"], campaigns.CRITERIA), key="review_means")
st.plotly_chart(charts.score_distributions(results["criteria"], campaigns.CRITERIA), key="review_distributions")
flags = results["safety_flags"]
st.write(f"Safety flags: base {flags['base']}, fine-tuned {flags['finetuned']}.")

left, right = st.columns(2)
left.caption("Reviewer bias (their mean minus the others' on the same items)")
left.dataframe(pd.DataFrame(results["reviewer_bias"]), hide_index=True, width="stretch")
kappas = [{"criterion": c, "reviewers": " & ".join(k["reviewers"]), "n": k["n"], "weighted kappa": k["kappa"]}
          for c, e in results["criteria"].items() for k in e["weighted_kappa"]]
right.caption("Quadratic-weighted Cohen's kappa per reviewer pair")
right.dataframe(pd.DataFrame(kappas), hide_index=True, width="stretch")
st.caption("Items with the most disagreement")
st.dataframe(pd.DataFrame(results["most_disagreement"]), hide_index=True, width="stretch")
if results["gold"]:
    st.caption("Gold items: accuracy score within one point of the expected")
    st.dataframe(pd.DataFrame(results["gold"]), hide_index=True, width="stretch")
