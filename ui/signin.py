"""The sign-in view: local accounts, the first administrator of a fresh install, or the OIDC button when it is
configured. The Sign in page shows it, and so does every other page's address while nobody is signed in: once the
visitor signs in, the same address shows the page itself (a refresh or a typed address leads where it says)."""

from __future__ import annotations

import streamlit as st

from engine.store import addresses, users
from ui import session
from ui.errors import shown_as_message
from ui.text import md_escape


def render() -> None:
    st.title("Finetune Studio")
    if session.oidc_configured():
        st.write("Sign in with your organization's account.")
        if st.button("Sign in", type="primary", key="signin_oidc"):
            st.login()
        if getattr(st.user, "is_logged_in", False):
            st.error(md_escape(session.oidc_refusal() or "Your account has no access to this studio yet; ask an "
                                                         "administrator."))
            if st.button("Sign out", key="signin_oidc_out"):
                st.logout()
        return

    if not users.has_users():
        st.subheader("Create the administrator")
        st.caption("This is a fresh install: the first account administers the studio (it can add analysts and "
                   "reviewers here or with `studio users add NAME --role reviewer`).")
        local = session.request_is_local()
        with st.form("signin_first_admin"):
            name = st.text_input("User name", key="signin_admin_name")
            password = st.text_input("Password", type="password", key="signin_admin_password",
                                     help=f"At least {users.MIN_PASSWORD} characters.")
            again = st.text_input("Password again", type="password", key="signin_admin_again")
            token = None
            if not local:
                token = st.text_input("Setup token", type="password", key="signin_admin_token",
                                      help="Printed by `studio ui` in the server's terminal. Only a browser on the "
                                           "server itself can create the administrator without it.")
            if st.form_submit_button("Create and sign in", type="primary"):
                with shown_as_message():
                    if password != again:
                        st.error("The two passwords differ.")
                        return
                    session.sign_in(users.create_first_admin(name, password, local=local, token=token))
                    st.rerun()
        return

    st.subheader("Sign in")
    with st.form("signin_form"):
        name = st.text_input("User name", key="signin_name")
        password = st.text_input("Password", type="password", key="signin_password")
        if st.form_submit_button("Sign in", type="primary"):
            try:
                user = users.sign_in(name, password, session.client_address())
            except (users.SignInRefused, addresses.ProxySettingError) as err:
                st.error(md_escape(err))
            else:
                session.sign_in(user)
                st.rerun()


def not_for_this_role() -> None:
    """What a signed-in user sees at the address of a page their role does not open."""
    st.title("Not open to your role")
    st.info("This page is for analysts and admins. Your work is under My reviews.")
