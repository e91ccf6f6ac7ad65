"""Sign in (local accounts), create the first administrator on a fresh install, or sign in through OIDC when it is
configured."""

import streamlit as st

from engine import users
from ui import session
from ui.errors import shown_as_message

st.title("Finetune Studio")
if session.oidc_configured():
    st.write("Sign in with your organization's account.")
    if st.button("Sign in", type="primary", key="signin_oidc"):
        st.login()
    if getattr(st.user, "is_logged_in", False):
        st.error("Your account has no access to this studio yet; ask an administrator to add your email.")
    st.stop()

if not users.has_users():
    st.subheader("Create the administrator")
    st.caption("This is a fresh install: the first account administers the studio (it can add analysts and "
               "reviewers here or with `studio users add NAME --role reviewer`).")
    with st.form("signin_first_admin"):
        name = st.text_input("User name", key="signin_admin_name")
        password = st.text_input("Password", type="password", key="signin_admin_password",
                                 help=f"At least {users.MIN_PASSWORD} characters.")
        again = st.text_input("Password again", type="password", key="signin_admin_again")
        if st.form_submit_button("Create and sign in", type="primary"):
            with shown_as_message():
                if password != again:
                    st.error("The two passwords differ.")
                    st.stop()
                session.sign_in(users.create_first_admin(name, password))
                st.rerun()
    st.stop()

st.subheader("Sign in")
with st.form("signin_form"):
    name = st.text_input("User name", key="signin_name")
    password = st.text_input("Password", type="password", key="signin_password")
    if st.form_submit_button("Sign in", type="primary"):
        user = users.verify(name, password)
        if user is None:
            st.error("Unknown user name or wrong password.")
        else:
            session.sign_in(user)
            st.rerun()
