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
from ui.text import md_escape

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


PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-Ip")


def client_address() -> str:
    """The address sign-in throttling is keyed on: the connection's IP, or the proxy's forwarded one, or "local"."""
    headers = _headers()
    forwarded = headers.get("X-Forwarded-For") or headers.get("X-Real-Ip")
    if forwarded:
        return forwarded.split(",")[0].strip()[:64]
    ip = st.context.ip_address
    return ip[:64] if isinstance(ip, str) and ip else "local"


def request_is_local() -> bool:
    """True only for a browser on this machine talking to the dashboard directly (no proxy in between): the one
    place where the first administrator may be created without the setup token."""
    headers = _headers()
    if not headers or any(h in headers for h in PROXY_HEADERS):
        return False  # no real connection (tests), or a proxy that hides who is behind it
    return st.context.ip_address is None  # Streamlit reports loopback connections as None


def _headers() -> dict:
    try:
        headers = st.context.headers
        return {str(k): str(v) for k, v in headers.items()} if hasattr(headers, "items") else {}
    except Exception:  # noqa: BLE001 - no request context (AppTest): no headers
        return {}


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
        st.error(md_escape(err))
        st.stop()
