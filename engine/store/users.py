"""People and roles: admin, analyst, reviewer.

Local accounts store an Argon2id hash (argon2-cffi, salted by the library), never the password; a password is never
logged. OIDC accounts (Streamlit's st.login, when configured) are matched by email and carry no hash. Every engine
action that a role restricts calls `require(user, ...)`, so the check does not depend on which page was shown.

    studio users add NAME --role reviewer      (the password is asked for, or read from stdin)
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, timedelta
from functools import lru_cache

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from engine.errors import StudioError
from engine.store import db, throttle
from engine.store.tables import SetupToken, User, now

ROLES = ("admin", "analyst", "reviewer")
MIN_PASSWORD = 8  # NIST SP 800-63B: at least 8 characters for a password the user chooses
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,79}$")


class UserError(StudioError, ValueError):
    """A user cannot be created or found as asked (one sentence)."""


class PermissionDenied(UserError):
    """The signed-in user's role does not allow the action."""


def _hasher():
    from argon2 import PasswordHasher  # only signing in needs it

    return PasswordHasher()


def add_user(name: str, role: str, password: str | None = None, email: str | None = None) -> User:
    name = _validated(name, role, password, email)
    hashed = _hasher().hash(password) if password is not None else None
    try:
        with db.session() as s:
            user = User(name=name, role=role, password_hash=hashed, email=(email or None), active=True)
            s.add(user)
            s.flush()
            return user
    except IntegrityError:
        raise UserError(f"There is already a user called {name!r}" + (f" or with the email {email}." if email
                                                                       else ".")) from None


def _validated(name: str, role: str, password: str | None, email: str | None) -> str:
    """The cleaned user name; UserError with one sentence for a bad name, role or password."""
    name = (name or "").strip()
    if not NAME.match(name):
        raise UserError("A user name is 1-80 letters, digits, dots, dashes, underscores or @, starting with a letter "
                        "or digit.")
    if role not in ROLES:
        raise UserError(f"Unknown role {role!r}; choose one of {', '.join(ROLES)}.")
    if password is None and not email:
        raise UserError("A local account needs a password.")
    if password is not None and len(password) < MIN_PASSWORD:
        raise UserError(f"The password is too short: use at least {MIN_PASSWORD} characters.")
    return name


SETUP_TOKEN_HOURS = 24


def new_setup_token() -> str | None:
    """A one-time token for creating the first administrator from another machine (printed by `studio ui`); None
    once any user exists. Only its hash is stored; a new token replaces the old one."""

    if has_users():
        return None
    token = secrets.token_urlsafe(16)
    with db.write_session() as s:
        s.execute(delete(SetupToken))
        s.add(SetupToken(token_sha256=_sha256(token), created_at=now()))
    return token


def _sha256(text: str) -> str:

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _take_setup_token(token: str | None) -> bool:
    """Use the token once: True when it is the current, unused, unexpired one."""

    if not token:
        return False
    with db.write_session() as s:
        row = s.scalar(select(SetupToken).where(SetupToken.token_sha256 == _sha256(token.strip()),
                                                SetupToken.used_at.is_(None)))
        if row is None or now() - _aware(row.created_at) > timedelta(hours=SETUP_TOKEN_HOURS):
            return False
        row.used_at = now()
    return True


def _aware(value):
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def create_first_admin(name: str, password: str, local: bool = False, token: str | None = None) -> User:
    """The first account of a fresh install; refused once any user exists (no takeover of a running install), and
    from another machine unless it brings the setup token `studio ui` printed. One INSERT ... SELECT ... WHERE NOT
    EXISTS, serialized (SQLite's single writer, PostgreSQL's advisory lock), so two visitors racing on a fresh install
    cannot both win."""
    from sqlalchemy import exists, insert, literal  # only the configured dialect's upsert is loaded

    name = _validated(name, "admin", password, None)
    if has_users():
        raise PermissionDenied("An administrator already exists; sign in instead.")
    if not local and not _take_setup_token(token):
        raise PermissionDenied("From another machine the administrator needs the setup token that `studio ui` "
                               "printed (or run `studio users add NAME --role admin` on the server).")
    row = select(literal(name), literal("admin"), literal(_hasher().hash(password)), literal(True), literal(now())) \
        .where(~exists(select(User.id)))
    with db.write_session() as s:  # RETURNING, not rowcount: psycopg reports -1 for INSERT ... SELECT
        db.serialize(s, db.FIRST_ADMIN_LOCK_KEY)
        made = s.execute(insert(User).from_select(["name", "role", "password_hash", "active", "created_at"], row)
                         .returning(User.id)).scalar()
    if made is None:
        raise PermissionDenied("An administrator already exists; sign in instead.")
    with db.session() as s:
        return s.scalars(select(User).where(User.name == name)).one()


class SignInRefused(UserError):
    """Wrong name or password, or too many failed attempts (the sentence says when to try again)."""


def sign_in(name: str, password: str, address: str | None) -> User:
    """The user, after the throttle allowed the attempt and the password matched; SignInRefused otherwise. Every
    attempt is recorded with its address (never the password)."""
    name, address = (name or "").strip(), address or "local"
    try:
        throttle.check(name, address)
    except throttle.Throttled as err:
        raise SignInRefused(str(err)) from None
    user = verify(name, password)
    throttle.record(name, address, "ok" if user else "wrong")
    if user is None:
        raise SignInRefused("Unknown user name or wrong password.")
    return user


def verify(name: str, password: str) -> User | None:
    """The active user with this name and password, or None (the same answer for an unknown name)."""
    from argon2.exceptions import InvalidHashError, VerificationError  # only signing in needs it

    with db.session() as s:
        user = s.scalar(select(User).where(User.name == (name or "").strip(), User.active.is_(True)))
    hasher = _hasher()
    if user is None or not user.password_hash:
        try:  # spend the same time as a real check, so timing does not tell which names exist
            hasher.verify(_dummy_hash(), password or "")
        except (VerificationError, InvalidHashError):
            pass
        return None
    try:
        hasher.verify(user.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if hasher.check_needs_rehash(user.password_hash):
        with db.session() as s:
            s.get_one(User, user.id).password_hash = hasher.hash(password)
    return user


@lru_cache(maxsize=1)
def _dummy_hash() -> str:

    return _hasher().hash(secrets.token_hex(16))


def get_user(user_id: int | None) -> User | None:
    """The active user, read fresh: a role change or a deactivation takes effect on the next page load."""
    if user_id is None:
        return None
    with db.session() as s:
        user = s.get(User, user_id)
        return user if user is not None and user.active else None


def by_email(email: str) -> User | None:
    with db.session() as s:
        return s.scalar(select(User).where(func.lower(User.email) == (email or "").lower(), User.active.is_(True)))


def list_users(role: str | None = None) -> list[User]:
    with db.session() as s:
        q = select(User).where(User.active.is_(True)).order_by(User.name)
        if role:
            q = q.where(User.role == role)
        return list(s.scalars(q))


def has_users() -> bool:
    with db.session() as s:
        return (s.scalar(select(func.count(User.id))) or 0) > 0


def set_role(actor: User, user_id: int, role: str) -> None:
    require(actor, "admin")
    if role not in ROLES:
        raise UserError(f"Unknown role {role!r}; choose one of {', '.join(ROLES)}.")
    with db.session() as s:
        target = s.get(User, user_id)
        if target is None:
            raise UserError(f"There is no user {user_id}.")
        target.role = role


# The command line acts as an administrator: whoever runs `studio` on the machine owns the workspace files anyway.
SYSTEM = User(id=None, name="command line", role="admin", active=True)


def require(user: User | None, *roles: str) -> User:
    """The user when their role is one of `roles`; PermissionDenied otherwise (also for nobody signed in)."""
    if user is SYSTEM:
        return user
    if user is None:
        raise PermissionDenied("Sign in first.")
    with db.session() as s:  # the stored role, not the one this object was loaded with
        role = s.execute(select(User.role).where(User.id == user.id, User.active.is_(True))).scalar()
    if role not in roles:
        raise PermissionDenied(f"Your role ({role or 'none'}) does not allow this; it needs {' or '.join(roles)}.")
    if role != user.role:
        user = get_user(user.id) or user
    return user
