"""Who is signed in. With Streamlit's OIDC login configured (an [auth] section in .streamlit/secrets.toml), the
identity is st.user's email matched to a studio user; otherwise a local account signed in on the Sign-in page.

Only the user id lives in st.session_state; the user (and so the role) is read from the database on every page
load, so a role change or a deactivation takes effect at once. A browser refresh starts a new Streamlit session and
asks to sign in again; nothing a reviewer entered is lost (every rating is in the database).
"""

from __future__ import annotations

import streamlit as st

from engine import users
from engine.tables import User

ANALYST_ROLES = ("admin", "analyst")


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all: not configured
        return False


def current_user() -> User | None:
    if oidc_configured():
        if not getattr(st.user, "is_logged_in", False):
            return None
        return users.by_email(st.user.get("email", ""))
    return users.get_user(st.session_state.get("user_id"))


def sign_in(user: User) -> None:
    st.session_state["user_id"] = user.id


def sign_out() -> None:
    st.session_state.pop("user_id", None)
    if oidc_configured():
        st.logout()


def require(*roles: str) -> User:
    """The signed-in user if their role is allowed on this page; otherwise one sentence and the page stops. Pages call
    this first, in addition to the navigation (which lists only what a role may open)."""
    try:
        return users.require(current_user(), *roles)
    except users.PermissionDenied as err:
        st.error(str(err))
        st.stop()
