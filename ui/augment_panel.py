"""The Quality page's Augment section: a teacher model's paraphrases, synthetic conversations or back-translations of
the train part, generated as a job (its progress, what the filters dropped and why), then opened for review."""

from __future__ import annotations

import streamlit as st

from engine.augment import gate, methods, options
from engine.data import split
from engine.jobs import event_log, supervisor
from engine.store import users
from ui.errors import shown_as_message
from ui.text import md_escape

LABELS = {"paraphrase": "Paraphrase (reword each request, keep the answer)",
          "synthetic": "Synthetic (new conversations on a topic, in the style of your records)",
          "backtranslate": "Back-translation (each request through another language and back)"}


def render(user, project, version) -> None:
    st.subheader("Augment", anchor="augment")
    st.caption("Short of examples? A teacher model behind any OpenAI-compatible endpoint (a provider, a local vLLM "
               "or llama.cpp server, or a model this studio serves) writes new records from the train part of a "
               "split. The studio drops duplicates, copies of the locked test set or the validation set, personal "
               "data and replies of the wrong shape; reviewers then accept, edit or reject each candidate, and only "
               "accepted records become a new version.")
    made = next(iter(split.list_splits(version.id)), None)
    if made is None:
        st.info("Split this version first: augmentation works on the train part of a split only.")
        return
    with st.form("augment_form", enter_to_submit=False):
        method = st.radio("Method", list(LABELS), format_func=LABELS.get, key="augment_method")
        c1, c2, c3 = st.columns(3)
        url = c1.text_input("Teacher base URL", placeholder="http://127.0.0.1:8000/v1", key="augment_url")
        model = c2.text_input("Teacher model name", key="augment_model")
        key = c3.text_input("API key", type="password", key="augment_key",
                            help="Kept in this dashboard's memory only until the job starts, then in the job's "
                                 "environment; never stored. Empty: the dashboard's OPENAI_API_KEY.")
        per_record = c1.number_input("Rewordings per record", 1, 10, 2, key="augment_per_record")
        count = c2.number_input("Synthetic conversations", 1, 100_000, 50, key="augment_count")
        language = c3.text_input("Language in between", "French", key="augment_language")
        topic = st.text_input("Topic of the synthetic conversations", key="augment_topic", max_chars=2000)
        price = st.number_input("Price per million tokens (optional, for the cost shown)", 0.0, 10_000.0, 0.0,
                                key="augment_price")
        concurrency = c1.number_input("Requests at once", 1, 64, 4, key="augment_concurrency")
        budget = c2.number_input("Request budget", 1, 1_000_000, 1000, key="augment_budget")
        tokens = c3.number_input("Token budget", 1, 1_000_000_000, 2_000_000, key="augment_tokens")
        with st.expander("Prompt templates ($text, $user, $assistant, $topic, $examples, $language)"):
            templates = {name: st.text_area(name.replace("_", " "), value=text, key=f"augment_tpl_{name}")
                         for name, text in methods.TEMPLATES.items()}
        go = st.form_submit_button("Generate candidates", type="primary")
    if go:
        with shown_as_message():
            opts = options.build(name=f"augment v{version.version} ({method})", version_id=version.id,
                                 split_id=made.id, method=method, per_record=int(per_record), count=int(count),
                                 topic=topic, language=language, templates=templates, budget_requests=int(budget),
                                 budget_tokens=int(tokens), price_per_million_tokens=float(price),
                                 teacher={"base_url": url.strip(), "model": model.strip(),
                                          "concurrency": int(concurrency)})
            planned = options.plan(opts)
            job = options.launch(user, opts, project.id, key=key or None)
            cost = f" (at most {planned['max_cost']:,.2f} at your price)" if planned["max_cost"] else ""
            st.success(f"Augmentation job {job.id} is {job.status}: {planned['tasks']:,} tasks, up to "
                       f"{planned['requests']:,} requests and {planned['max_tokens']:,} tokens{cost}; the time left "
                       "shows below once the first answers are in.")
    jobs = [j for j in supervisor.list_runs(project.id, kind="augment") if j.config.get("version_id") == version.id]
    if jobs:
        _jobs(user, [j.id for j in jobs[:3]], any(j.status in supervisor.ACTIVE for j in jobs))


def _jobs(user, job_ids: list[int], active: bool) -> None:
    @st.fragment(run_every="2s" if active else None)
    def show() -> None:
        for job_id in job_ids:
            job = supervisor.get_run(job_id)
            events = event_log.read_events(supervisor.run_path(job))
            final = event_log.final_event(events) or {}
            last = next((e for e in reversed(events) if e["event"] == "progress"), None)
            with st.container(border=True):
                st.write(md_escape(f"Augmentation job {job.id}: {job.status}" +
                                   (f": {job.error_message}" if job.error_message else "")))
                if job.status in supervisor.ACTIVE and last:
                    st.progress(min(1.0, last["step"] / max(last["max_steps"], 1)), text=md_escape(last["label"]))
                if final.get("kept") is not None:
                    dropped = ", ".join(f"{n} {r}" for r, n in final["dropped"].items()) or "none"
                    st.text(f"{final['kept']:,} candidates kept for review of {final['candidates']:,}; dropped: "
                            f"{dropped}. {final['requests']:,} requests ({final['retries']:,} retries, "
                            f"{final['errors']:,} failed), {final['tokens']:,} tokens.")
                    if final["kept"]:
                        _open_review(user, job.id)
    show()


def _open_review(user, job_id: int) -> None:
    people = [u for u in users.list_users() if u.role == "reviewer"]
    chosen = st.multiselect("Reviewers", [u.id for u in people], key=f"augment_reviewers_{job_id}",
                            format_func=lambda i: next(u.name for u in people if u.id == i))
    if st.button("Open the candidates for review", key=f"augment_review_{job_id}", disabled=not chosen):
        with shown_as_message():
            campaign = gate.open_review(user, job_id, chosen)
            st.success(f"Review campaign {campaign.id} is in the reviewers' queues; accept the reviewed records on "
                       "the Review page.")
