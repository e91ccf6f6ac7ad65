"""My reviews: the reviewer's queue, one item at a time. Answers are shown blind (A/B, never a model name) and as
plain text; every submit is saved at once (and only once), so a reviewer can stop at any moment and resume later."""

import json

import streamlit as st

from engine.review import campaigns
from ui import session
from ui.errors import shown_as_message

user = session.require("reviewer", "analyst", "admin")
st.title("My reviews")
mine = campaigns.my_campaigns(user)
if not mine:
    st.info("Nothing to review yet: an analyst will add you to a campaign.")
    st.stop()
by_id = {c["id"]: c for c in mine}
# The campaign the reviewer works on stays chosen: its label never changes as items are done (a label that changed
# made the box fall back to the first campaign after every save), and the address carries it across a refresh.
wanted = st.query_params.get("campaign", "")
if "reviews_campaign" not in st.session_state and wanted.isdigit() and int(wanted) in by_id:
    st.session_state["reviews_campaign"] = int(wanted)
if st.session_state.get("reviews_campaign") not in by_id:
    st.session_state.pop("reviews_campaign", None)
cid = st.selectbox("Campaign", list(by_id), key="reviews_campaign", format_func=lambda i: by_id[i]["name"])
st.query_params["campaign"] = str(cid)
st.caption(" · ".join(f"{c['name']}: {c['done']}/{c['total']} done" for c in mine))
entries = campaigns.queue(user, cid)
done = sum(e.done for e in entries)
st.progress(done / len(entries), text=f"{done} of {len(entries)} done")

pos_key = f"reviews_position_{cid}"
if pos_key not in st.session_state:  # resume where the reviewer left off
    first_open = campaigns.next_open(entries)
    st.session_state[pos_key] = first_open.position if first_open else 1
position = min(max(1, st.session_state[pos_key]), len(entries))
entry = entries[position - 1]

nav = st.columns([1, 1, 4])
if nav[0].button("← Previous", disabled=position == 1, key="reviews_prev"):
    st.session_state[pos_key] = position - 1
    st.rerun()
if nav[1].button("Next →", disabled=position == len(entries), key="reviews_next"):
    st.session_state[pos_key] = position + 1
    st.rerun()
jump_key = f"reviews_jump_{cid}"
st.session_state[jump_key] = position  # the picker follows Previous/Next/Save instead of pulling back


def jump_to() -> None:
    st.session_state[pos_key] = st.session_state[jump_key]


nav[2].selectbox("Go to item", [e.position for e in entries], key=jump_key, on_change=jump_to,
                 format_func=lambda p: f"{p} {'✓' if entries[p - 1].done else '·'}", label_visibility="collapsed")

if done == len(entries):
    st.success("All done, thank you. You can still go back and change any answer.")

aid = entry.assignment_id  # in every widget key: each item starts from its own saved answer, not the last one's
view = campaigns.task(user, aid)
st.subheader(f"Item {position}" + (" (answered: you can change your answer)" if entry.done else ""))
for message in view["prompt"]:
    st.caption(message["role"].capitalize())
    st.text(message["content"])
if view["reference"]:
    with st.expander("Reference answer (what a good answer contains)"):
        st.text(view["reference"])

previous = view["previous"] or {}


def advance() -> None:
    later = [e for e in campaigns.queue(user, cid) if not e.done]
    st.session_state[pos_key] = later[0].position if later else position


if view["kind"] == "augment":
    st.caption("Generated candidate (above: the record it was made from)")
    for message in view["answers"]["candidate"]:
        st.caption(message["role"].capitalize())
        st.text(message["content"])
    labels = {"accept": "Accept", "edit": "Accept with my edit", "reject": "Reject"}
    was = "edit" if previous.get("correction") else previous.get("vote")
    with st.form(f"reviews_augment_{entry.assignment_id}"):
        st.caption("Accept it if it is correct, natural and worth training on; edit it if it is nearly right. Tab "
                   "and the arrow keys move between the choices.")
        decision = st.radio("Decision", list(labels), format_func=labels.get, horizontal=True,
                            key=f"reviews_decision_{aid}", index=list(labels).index(was) if was else None)
        edited = st.text_area("Edited record (JSON messages; used with 'Accept with my edit')",
                              value=previous.get("correction") or json.dumps(view["answers"]["candidate"], indent=1,
                                                                           ensure_ascii=False),
                              height=220, key=f"reviews_edit_{aid}")
        comment = st.text_area("Comment (optional)", value=previous.get("comment", ""), key=f"reviews_comment_{aid}")
        if st.form_submit_button("Save and next", type="primary"):
            if decision is None:
                st.error("Choose accept, accept with my edit, or reject.")
            else:
                with shown_as_message():
                    campaigns.submit(user, entry.assignment_id, vote="reject" if decision == "reject" else "accept",
                                     correction=edited if decision == "edit" else None, comment=comment)
                    advance()
                    st.rerun()
elif view["kind"] == "correction":
    st.caption("The model's answer (a user rated it low)")
    st.text(view["answers"]["answer"])
    with st.form(f"reviews_correction_{entry.assignment_id}"):
        st.caption("Write the answer the model should have given. Keep what was right; it becomes training data.")
        text = st.text_area("Corrected answer", value=previous.get("correction") or view["answers"]["answer"],
                            height=200, key=f"reviews_correction_{aid}")
        comment = st.text_area("Comment (optional)", value=previous.get("comment", ""), key=f"reviews_comment_{aid}")
        if st.form_submit_button("Save and next", type="primary"):
            with shown_as_message():
                campaigns.submit(user, entry.assignment_id, correction=text, comment=comment)
                advance()
                st.rerun()
elif view["kind"] == "rating":
    st.caption("Answer")
    st.text(view["answers"]["answer"])
    with st.form(f"reviews_rating_{entry.assignment_id}"):
        st.caption("1 = very poor, 5 = excellent. Tab and the arrow keys move between the choices.")
        scores = {}
        old = previous.get("scores") or {}
        for c in campaigns.CRITERIA:
            scores[c] = st.radio(c.capitalize(), [1, 2, 3, 4, 5], horizontal=True, key=f"reviews_{c}_{aid}",
                                 index=(old[c] - 1) if c in old else None)
        flag = st.checkbox("Unsafe content (flag for the team)", value=previous.get("safety_flag", False),
                           key=f"reviews_flag_{aid}")
        comment = st.text_area("Comment (optional)", value=previous.get("comment", ""), key=f"reviews_comment_{aid}")
        if st.form_submit_button("Save and next", type="primary"):
            if any(v is None for v in scores.values()):
                st.error("Give every criterion a score from 1 to 5.")
            else:
                with shown_as_message():
                    campaigns.submit(user, entry.assignment_id, scores=scores, safety_flag=flag, comment=comment)
                    advance()
                    st.rerun()
else:
    a, b = st.columns(2)
    a.caption("Answer A")
    a.text(view["answers"]["A"])
    b.caption("Answer B")
    b.text(view["answers"]["B"])
    labels = {"A": "A is better", "B": "B is better", "tie": "Tie", "both_bad": "Both are bad"}
    with st.form(f"reviews_pair_{entry.assignment_id}"):
        vote = st.radio("Which answer is better?", list(labels), format_func=labels.get, horizontal=True,
                        key=f"reviews_vote_{aid}", index=list(labels).index(previous["vote"]) if previous.get("vote")
                        else None)
        per = {}
        if view["per_criterion"]:
            old = previous.get("criterion_votes") or {}
            for c in campaigns.CRITERIA:
                per[c] = st.radio(c.capitalize(), ["A", "B", "tie"], horizontal=True, key=f"reviews_vote_{c}_{aid}",
                                  index=["A", "B", "tie"].index(old[c]) if c in old else None)
        comment = st.text_area("Comment (optional)", value=previous.get("comment", ""), key=f"reviews_comment_{aid}")
        if st.form_submit_button("Save and next", type="primary"):
            if vote is None:
                st.error("Choose A better, B better, tie or both bad.")
            else:
                with shown_as_message():
                    campaigns.submit(user, entry.assignment_id, vote=vote, comment=comment,
                                  criterion_votes={c: v for c, v in per.items() if v is not None})
                    advance()
                    st.rerun()
