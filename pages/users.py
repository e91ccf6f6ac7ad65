"""Users (administrators only): who can sign in, with which role; add local accounts."""

import pandas as pd
import streamlit as st

from engine.store import throttle, users
from ui import session
from ui.errors import shown_as_message
from ui.text import md_escape

admin = session.require("admin")
st.title("Users")
st.caption("Admins manage users; analysts use every step; reviewers see only their review queue.")
if added := st.session_state.pop("users_added", None):
    st.success(md_escape(added))
st.dataframe(pd.DataFrame([{"name": u.name, "role": u.role, "email": u.email or ""} for u in users.list_users()]),
             hide_index=True, width="stretch")
with st.form("users_add", clear_on_submit=True):
    c1, c2 = st.columns(2)
    name = c1.text_input("User name", key="users_name")
    role = c2.selectbox("Role", users.ROLES, index=2, key="users_role")
    password = st.text_input("Initial password", type="password", key="users_password",
                             help=f"At least {users.MIN_PASSWORD} characters; share it with the person privately.")
    if st.form_submit_button("Add the user", type="primary"):
        with shown_as_message():
            session.require("admin")
            made = users.add_user(name, role, password)
            st.session_state["users_added"] = f"Added {made.name} ({made.role})."
            st.rerun()  # the table above shows the new user at once

st.subheader("Sign-in attempts")
st.caption("The latest attempts with their address (passwords are never stored). After 3 failures an account or an "
           "address must wait longer between attempts; after 10 it is locked for 15 minutes.")
attempts = throttle.recent()
if attempts:
    st.dataframe(pd.DataFrame([{"time": a.at, "user name": a.user_name, "address": a.address, "outcome": a.outcome}
                               for a in attempts]), hide_index=True, width="stretch")
    locked = sorted({a.user_name for a in attempts if a.outcome in ("wrong", "throttled", "locked")})
    if locked:
        with st.form("users_unlock"):
            who = st.selectbox("Clear the failed attempts of", locked, key="users_unlock_name")
            if st.form_submit_button("Unlock"):
                with shown_as_message():
                    session.require("admin")
                    st.success(f"Cleared {throttle.unlock(who)} failed attempts.")
else:
    st.caption("No sign-in attempts yet.")
