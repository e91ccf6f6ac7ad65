"""Sign-in sessions: what keeps a user signed in across a browser refresh, and what sign-out revokes.

The cookie value is `ID.EXPIRES.TOKEN.MAC`: the session row's id, its expiry (Unix seconds), a random 32-byte token
and an HMAC-SHA256 of the three under a key the studio keeps in its database. A cookie is accepted only when the MAC
is right (checked in constant time), it has not expired, and its row exists with the token's SHA-256, is not revoked
and belongs to an active user.

    STUDIO_SESSION_HOURS   (12)   how long a sign-in lasts
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, select, update

from engine import settings
from engine.store import app_secrets, db
from engine.store.tables import User, UserSession, now

COOKIE = "studio_session"
KEY_NAME = "session_signing_key"


def hours() -> float:
    return settings.current().session_hours


def _key() -> bytes:
    return app_secrets.get(KEY_NAME)


def _mac(message: str) -> str:
    return hmac.new(_key(), message.encode(), hashlib.sha256).hexdigest()


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(user: User) -> tuple[str, int]:
    """A new session for the user: (cookie value, max-age in seconds)."""
    token = secrets.token_urlsafe(32)
    expires = now() + timedelta(hours=hours())
    with db.write_session() as s:
        row = UserSession(user_id=user.id, token_sha256=_sha(token), created_at=now(), expires_at=expires)
        s.add(row)
        s.flush()
        sid = row.id
    message = f"{sid}.{int(expires.timestamp())}.{token}"
    return f"{message}.{_mac(message)}", int(hours() * 3600)


def _parse(cookie: str | None) -> tuple[int, int, str] | None:
    parts = (cookie or "").split(".")
    if len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit() or len(cookie or "") > 300:
        return None
    message = ".".join(parts[:3])
    if not hmac.compare_digest(_mac(message), parts[3]):
        return None
    return int(parts[0]), int(parts[1]), parts[2]


def user_of(cookie: str | None) -> User | None:
    """The signed-in user the cookie stands for, or None (bad signature, expired, revoked, or user gone)."""
    parsed = _parse(cookie)
    if parsed is None:
        return None
    sid, expires, token = parsed
    if datetime.fromtimestamp(expires, UTC) <= now():
        return None
    with db.session() as s:
        row = s.get(UserSession, sid)
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_sha256, _sha(token)):
            return None
        user = s.get(User, row.user_id)
        return user if user is not None and user.active else None


def revoke(cookie: str | None) -> bool:
    parsed = _parse(cookie)
    if parsed is None:
        return False
    with db.write_session() as s:
        done = s.execute(update(UserSession).where(UserSession.id == parsed[0], UserSession.revoked_at.is_(None))
                         .values(revoked_at=now()))
    return bool(cast(CursorResult, done).rowcount)


def revoke_all(user_id: int) -> None:
    """Every session of a user (a role change, a deactivation, a password change)."""
    with db.write_session() as s:
        s.execute(update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
                  .values(revoked_at=now()))


def active(user_id: int) -> list[UserSession]:
    with db.session() as s:
        rows = list(s.scalars(select(UserSession).where(UserSession.user_id == user_id,
                                                        UserSession.revoked_at.is_(None))))
    return [r for r in rows if _aware(r.expires_at) > now()]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
