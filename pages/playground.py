"""Playground: one prompt, the base model's and the fine-tuned model's answers side by side, streamed as they come.
The models run in their own process (engine.evaluate.playground); this page only shows the text."""

import streamlit as st

from engine.evaluate import playground
from ui import session, state
from ui.errors import shown_as_message
from ui.text import md_escape, shown_model

session.require("analyst", "admin")  # reviewers and visitors never run this page
project = state.require_project()
st.title("Playground")
st.caption("Ask both models the same question. Greedy decoding, like the evaluation: the same prompt always gets the "
           "same answer.")

run, _ = state.pick_finished_run(project.id, "playground_run")
run_id = run.id
with st.form("playground_form", border=False):
    system = st.text_area("System prompt", value=playground.default_system(run), height=80,
                          key=f"playground_system_{run_id}", help="Prefilled with the one the run was trained with.")
    prompt = st.text_area("Prompt", key="playground_prompt", height=120,
                          placeholder="A question your users would ask")
    max_new = st.slider("Max new tokens", 16, 1024, 200, step=16, key="playground_max_new")
    asked = st.form_submit_button("Ask both models", type="primary")

left, right = st.columns(2)
left.caption(md_escape(f"Base model · {shown_model(run.config['base_model'])}"))
right.caption(f"Fine-tuned · run {run_id}")
boxes = {"base": left.empty(), "finetuned": right.empty()}
notes = {"base": left.empty(), "finetuned": right.empty()}
if asked:
    with shown_as_message():
        with st.spinner("Loading the models..."):
            answers = playground.stream(run_id, prompt, system, max_new)
            side, text, stats = next(answers)
        while True:
            boxes[side].text(text)  # model text: never rendered as Markdown or HTML
            if stats:
                rate = stats["new_tokens"] / stats["seconds"] if stats["seconds"] else 0.0
                notes[side].caption(f"{stats['new_tokens']} tokens in {stats['seconds']:.2f} s ({rate:.0f} tokens/s)")
            try:
                side, text, stats = next(answers)
            except StopIteration:
                break
