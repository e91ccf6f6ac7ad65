"""Data: upload (or try the sample), detected format and override, column mapping, paged preview, plots, verdict."""

import streamlit as st

from engine.data import demo_project, uploads, versions
from engine.data.quality import report_for_version
from engine.data.readers import max_file_bytes
from engine.data.shapes import SHAPES, suggest_column
from ui import charts, session, state
from ui.errors import shown_as_message
from ui.progress import progress_bar

MAPPING_LABELS = {"prompt": "prompt", "completion": "answer", "system": "system prompt"}

session.require("analyst", "admin")  # reviewers and visitors never run this page
project = state.require_project()
st.title("Data")
st.caption("Upload examples in any common shape: OpenAI messages, ShareGPT, Alpaca, prompt/completion, input/output "
           "(JSONL, JSON, CSV, Parquet). Each upload becomes an immutable dataset version.")

left, right = st.columns([3, 1])
uploaded = left.file_uploader("Upload a dataset", type=["jsonl", "json", "csv", "tsv", "parquet"],
                              key="data_upload", max_upload_size=max_file_bytes() // (1024 * 1024))
with right:
    st.write("")
    st.write("No data at hand?")
    if st.button("Try the sample", help="~600 generated customer-support conversations with a few planted flaws"):
        with shown_as_message():
            version = demo_project.import_sample(project.id)
            state.set_version(version.id)
            st.rerun()

if uploaded is not None:
    with shown_as_message():
        if uploaded.size > max_file_bytes():
            st.error(f"The file is {uploaded.size / 1e6:.1f} MB, over the {max_file_bytes() / 1e6:.0f} MB limit.")
            st.stop()
        staged = uploads.stage_upload(uploaded.getvalue(), uploaded.name)
        preview = uploads.inspect_file(staged)
        with st.container(border=True):
            st.text(f"File: {versions.display_name(uploaded.name)} ({uploaded.size:,} bytes, {preview.container})")
            proposed = preview.proposed_mapping
            detected = (SHAPES[preview.detected_shape] if preview.detected_shape else
                        "columns recognized by name" if proposed else "not recognized")
            st.write(f"Detected format: **{detected}**")
            if proposed:
                st.text("Columns: " + ", ".join(f"{MAPPING_LABELS[k]} = {v}" for k, v in proposed.items())
                        + " (choose “Map columns myself” to change them)")
            options = ["auto", *[s for s in SHAPES if s != "columns"], "columns"]
            labels = {"auto": "Use the detected format", "columns": "Map columns myself", **SHAPES}
            needs_mapping = preview.detected_shape is None and not proposed
            choice = st.selectbox("Format", options, index=options.index("columns") if needs_mapping else 0,
                                  format_func=labels.get, key="data_format")
            mapping = None
            if choice == "columns":
                cols = preview.columns
                if not cols:
                    st.error("The records have no fields to map.")
                    st.stop()
                st.caption("Which column holds what:")
                c1, c2, c3 = st.columns(3)
                guess = {k: suggest_column(cols, k) for k in ("prompt", "completion", "system")}
                prompt = c1.selectbox("Prompt (user)", cols, index=cols.index(guess["prompt"]) if guess["prompt"]
                                      else None, key="data_map_prompt", placeholder="Choose the column")
                completion = c2.selectbox("Answer (assistant)", cols, index=cols.index(guess["completion"])
                                          if guess["completion"] else None, key="data_map_completion",
                                          placeholder="Choose the column")
                system = c3.selectbox("System prompt (optional)", ["(none)", *cols],
                                      index=1 + cols.index(guess["system"]) if guess["system"] else 0,
                                      key="data_map_system")
                mapping = {"prompt": prompt, "completion": completion}
                if system != "(none)":
                    mapping["system"] = system
            incomplete = choice == "columns" and None in (mapping or {}).values()
            if incomplete:
                st.info("Choose the prompt and the answer columns to import.")
            if st.button("Import as a dataset version", type="primary", disabled=incomplete):
                shape = None if choice in ("auto", "columns") else choice
                version = versions.import_file(project.id, staged, uploaded.name, shape=shape, mapping=mapping)
                state.set_version(version.id)
                st.success(f"Imported {version.records:,} records as version v{version.version}.")

st.divider()
version = state.pick_version(project.id, "data_version")
if version is None:
    st.info("No dataset yet: upload a file or try the sample.")
    st.stop()

with shown_as_message():
    with progress_bar("Checking the data") as report_progress:
        report = report_for_version(version, progress=report_progress)
    stats = report.stats
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Records", f"{report.records:,}")
    c2.metric("Usable examples", f"{stats.get('usable_examples', 0):,}",
              help="Records without errors, exact duplicates counted once.")
    c3.metric("Errors", len(report.errors), help="Errors block training; see Quality.")
    c4.metric("Warnings", len(report.warnings), help="Warnings explain a risk and offer a one-click fix.")
    st.text(f"Format: {SHAPES.get(version.shape, version.shape)} ({version.container})")

    verdict = report.readiness
    box = {"prompt_engineering": st.warning, "borderline": st.warning}.get(verdict["verdict"], st.success)
    box(f"**{verdict['label']}**\n\n" + "\n".join(f"- {r}" for r in verdict["reasons"]))

    st.subheader("Preview")
    size = 25
    pages = max(1, -(-report.records // size))
    page = st.columns(4)[0].number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, value=1,
                                         key="data_page")
    st.dataframe(versions.preview_rows(version, (page - 1) * size, size), hide_index=True, width="stretch",
                 column_config={"location": st.column_config.NumberColumn("#", help="Line, record or row number")})

    hist = stats.get("histograms", {})
    if hist.get("tokens_per_example", {}).get("counts"):
        st.subheader("Shape of the data")
        p1, p2 = st.columns(2)
        for col, key, title, unit in ((p1, "tokens_per_example", "Tokens per example", "tokens"),
                                      (p2, "messages_per_example", "Messages per example", "messages")):
            marker = stats["max_length"] if key == "tokens_per_example" else None
            col.plotly_chart(charts.histogram(hist.get(key), title, unit, marker, "max length"),
                             key=f"data_plot_{key}")
        t = stats["tokens_per_example"]
        st.caption(f"Tokens ({stats['tokenizer']} tokenizer): median {t['median']:g}, p95 {t['p95']:g}, max {t['max']:,}"
                   f"; {stats['training_tokens_per_epoch']:,} training tokens per epoch at max length "
                   f"{stats['max_length']:,}.")
    st.page_link("pages/quality.py", label="Review the warnings and fix them in Quality",
                 icon=":material/arrow_forward:")
