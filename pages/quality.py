"""Quality: errors and warnings with the offending records and one-click fixes, version history, and the split."""

import pandas as pd
import streamlit as st

from engine.data import split, uploads, versions
from engine.data.quality import DEFAULT_MAX_LENGTH, CheckOptions, report_for_version
from ui import session, state
from ui.errors import shown_as_message
from ui.findings import render_finding
from ui.progress import progress_bar
from ui.text import md_escape, shown_path

session.require("analyst", "admin")  # reviewers and visitors never run this page
project = state.require_project()
st.title("Quality")
st.caption("Errors block training. Warnings explain a risk, show the records, and offer a fix that creates a new "
           "dataset version (the old one is kept).")

version = state.pick_version(project.id, "quality_version")
if version is None:
    st.info("No dataset yet: add one on the Data page.")
    st.page_link("pages/data.py", label="Open Data", icon=":material/arrow_forward:")
    st.stop()

with st.expander("Check settings"):
    max_length = st.number_input("Max length (tokens)", min_value=16, max_value=1_000_000, value=DEFAULT_MAX_LENGTH,
                                 step=256, key="quality_max_length",
                                 help="Training max length: longer conversations are cut off, so they are flagged.")
    tokenizer = st.text_input("Tokenizer (model folder)", key="quality_tokenizer",
                              help="A local model folder with tokenizer.json. Empty: the demo model's tokenizer.")
options = CheckOptions(max_length=int(max_length), tokenizer=tokenizer.strip() or None, task=project.task_type)

if message := st.session_state.pop("quality_last_fix", None):
    st.success(md_escape(message))

with shown_as_message():
    with progress_bar("Checking the data") as report_progress:
        report = report_for_version(version, options, progress=report_progress)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Records", f"{report.records:,}")
    c2.metric("Errors", len(report.errors), help="Errors block training.")
    c3.metric("Warnings", len(report.warnings))
    c4.metric("Usable examples", f"{report.stats.get('usable_examples', 0):,}")
    if report.errors:
        st.error("This version has errors that block training. Fix them below (each fix makes a new version).")
    elif not report.warnings:
        st.success("No errors and no warnings.")
    common_prompt = project.system_prompt
    for finding in report.errors + report.warnings:
        render_finding(finding, version, report, common_prompt)

st.subheader("Version history")
project_versions = versions.list_versions(project.id)
by_id = {v.id: v for v in project_versions}
history = pd.DataFrame([{
    "version": f"v{v.version}", "name": v.name, "records": v.records, "removed": v.removed,
    "parent": f"v{by_id[v.parent_id].version}" if v.parent_id in by_id else "",
    "fixes": ", ".join(f["id"] for f in v.fixes), "sha256": v.sha256[:12], "created": v.created_at,
} for v in project_versions])
st.dataframe(history, hide_index=True, width="stretch")
e1, e2 = st.columns(2)
e1.download_button("Download this version (OpenAI JSONL)", key="quality_export_jsonl",
                   data=lambda: versions.export_jsonl(version, versions.export_path(version, "jsonl")).read_bytes(),
                   file_name=f"dataset-v{version.version}.jsonl", mime="application/jsonl")
if e2.button("Export as a datasets folder", key="quality_export_hf"):
    with shown_as_message():
        folder = versions.export_hf_dataset(version, versions.export_path(version, "hf"))
        st.text(f"Saved to {shown_path(folder)} (load it with versions.load_from_disk).")

st.subheader("Split")
st.caption("Near-duplicates and records with the same prompt always stay on one side, so no test example has a copy "
           "in train. The test split is locked: it is never used for training or model selection.")
with st.form("quality_split_form"):
    r1, r2, r3, r4 = st.columns(4)
    train_r = r1.number_input("Train", 0.0, 1.0, 0.8, 0.05)
    val_r = r2.number_input("Validation", 0.0, 1.0, 0.1, 0.05)
    test_r = r3.number_input("Test", 0.01, 1.0, 0.1, 0.05)
    seed = r4.number_input("Seed", 0, 2**31 - 1, 0)
    if st.form_submit_button("Split this version", type="primary"):
        with shown_as_message():
            with progress_bar("Splitting without leakage") as split_progress:
                made = split.create_split(version, (train_r, val_r, test_r), int(seed), progress=split_progress)
            st.success(f"Split into train {made.counts['train']:,}, validation {made.counts['validation']:,}, "
                       f"test {made.counts['test']:,}.")
            if made.overlap.get("kept_in_test"):
                st.info(f"{made.overlap['kept_in_test']:,} records stayed on the test side: they are copies or near "
                        "copies of this project's locked test records (from the versions this one derives from), so "
                        "the locked test set stays locked.")

splits = split.list_splits(version.id)
if splits:
    st.dataframe(pd.DataFrame([{
        "split": s.id, "seed": s.seed, "ratios": " / ".join(f"{r:g}" for r in s.ratios),
        "train": s.counts["train"], "validation": s.counts["validation"], "test": s.counts["test"],
        "test near/exact copies in train": f"{s.overlap['near']} / {s.overlap['exact']}",
        "status": "test locked", "test sha256": s.test_sha256[:12],
    } for s in splits]), hide_index=True, width="stretch")
    with st.expander("Check your own test file for contamination"):
        target = st.selectbox("Against the train part of split", [s.id for s in splits], key="quality_contam_split")
        test_file = st.file_uploader("Test file", type=["jsonl", "json", "csv", "tsv", "parquet"],
                                     key="quality_contam_upload")
        if test_file is not None:
            with shown_as_message():
                staged = uploads.stage_upload(test_file.getvalue(), test_file.name)
                result = split.check_test_file(next(s for s in splits if s.id == target), staged)
                c1, c2, c3 = st.columns(3)
                c1.metric("Exact copies in train", len(result["exact"]))
                c2.metric("Near copies in train", len(result["near"]))
                c3.metric("Sharing a 13-word sequence", len(result["ngram13"]))
                if result["clean"]:
                    st.success(f"Clean: none of the {result['test_records']:,} test records appears in train.")
                else:
                    st.warning("Contaminated records (locations in your test file): "
                               + ", ".join(str(x) for x in sorted(set(result["exact"] + result["near"]
                                                                     + result["ngram13"]))[:50]))
