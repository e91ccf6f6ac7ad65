"""Who is signed in. With Streamlit's OIDC login configured (an [auth] section in .streamlit/secrets.toml), the
identity is st.user's token, mapped to a studio user and role by engine.store.oidc_roles (a groups claim and a
mapping table, or the e-mail of a user an admin added); otherwise a local account signed in on the Sign-in page.

Only the user id lives in st.session_state; the user (and so the role) is read from the database on every page
load, so a role change or a deactivation takes effect at once. A sign-in also sets a signed, expiring cookie backed
by the sessions table (engine.store.sessions): a refresh, a new tab or a typed address keeps the user signed in until
it expires or they sign out (which revokes it).
"""

from __future__ import annotations

import json

import streamlit as st
import streamlit.components.v1 as components

from engine.store import addresses, oidc_roles, sessions, users
from engine.store.tables import User
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
        return _oidc_user()
    user = users.get_user(st.session_state.get("user_id"))
    if user is None and "user_id" not in st.session_state:
        cookie = _cookie()
        user = sessions.user_of(cookie) if cookie else None
        if user is not None:
            st.session_state["user_id"] = user.id
            st.session_state["session_cookie"] = cookie
    return user


def _oidc_user() -> User | None:
    """The studio user of the signed-in identity, worked out once per identity and browser session (the role
    follows the provider's groups at each sign-in); None, with the reason kept for the sign-in view, when the
    identity has no role here."""
    claims = st.user.to_dict()
    identity = f"{claims.get('iss', '')} {claims.get('sub', '')}"
    known = st.session_state.get("oidc_identity")
    if known and known[0] == identity:
        return users.get_user(known[1])
    try:
        mapping = oidc_roles.RoleMapping.load(st.secrets.get("studio_oidc"))
        user = oidc_roles.user_for(claims, mapping)
    except oidc_roles.NoRole as err:
        st.session_state["oidc_refusal"] = str(err)
        return None
    st.session_state["oidc_identity"] = (identity, user.id)
    st.session_state.pop("oidc_refusal", None)
    return user


def oidc_refusal() -> str | None:
    """Why the signed-in identity has no studio account (None when it has one or nobody is signed in)."""
    return st.session_state.get("oidc_refusal")


def _cookie() -> str | None:
    try:
        value = st.context.cookies.get(sessions.COOKIE)
    except Exception:  # noqa: BLE001 - no request context (AppTest): no cookie
        return None
    return value if isinstance(value, str) else None


def sync_cookie() -> None:
    """Set or clear the session cookie in the browser after a sign-in or sign-out (a zero-height component whose
    script writes document.cookie: Streamlit has no server-side way to set one)."""
    pending = st.session_state.pop("session_cookie_to_set", None)
    if pending is None:
        return
    value, max_age = pending
    cookie = json.dumps(f"{sessions.COOKIE}={value}; path=/; max-age={int(max_age)}; SameSite=Strict")
    components.html("<script>document.cookie = " + cookie + " + (window.parent.location.protocol === 'https:' ? "
                    "'; Secure' : '');</script>", height=0)


PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-Ip")


def client_address() -> str:
    """The address sign-in throttling is keyed on: the connection's own peer, or what trusted proxies forwarded
    (engine.store.addresses; forwarded headers from anyone else are ignored)."""
    ip = st.context.ip_address if _headers() else None
    return addresses.client_address(ip if isinstance(ip, str) and ip else None, _headers())


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
    cookie, max_age = sessions.start(user)
    st.session_state["user_id"] = user.id
    st.session_state["session_cookie"] = cookie
    st.session_state["session_cookie_to_set"] = (cookie, max_age)


def sign_out() -> None:
    sessions.revoke(st.session_state.pop("session_cookie", None) or _cookie())
    st.session_state["user_id"] = None  # signed out here, though this connection still carries the (revoked) cookie
    st.session_state["session_cookie_to_set"] = ("", 0)
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
