"""Sign-in throttling: growing delays after a few failures, per account and per client address, and a temporary
lockout keyed on the pair (account, address), as OWASP's authentication guidance describes. Keying the lockout on the
pair keeps it from being a weapon: a stranger's guesses lock the account for the stranger's address only, never for
the administrator at theirs (the address is the connection's own, engine.store.addresses, so it cannot be forged by a
header). Every attempt is recorded (time, name, address, outcome; never the password) and admins see them on the
Users page.

A failure is a wrong password or an attempt made while that address's own delay was still running (automated
guessing does not wait). Counting only failures since the key's last success, within the lockout window:
    failures >= DELAY_AFTER    the next attempt must wait DELAY_BASE * 2^(failures - DELAY_AFTER) s (at most 60 s)
    pair failures >= LOCKOUT_AFTER  the pair is locked until LOCKOUT_MINUTES after its last failure
An attempt refused only because of the account's delay (failures made by others) is recorded as "waited", which
counts against nobody: retrying it cannot lock anyone out.

    STUDIO_SIGNIN_LOCKOUT_AFTER    (10)   failures that lock an (account, address) pair
    STUDIO_SIGNIN_LOCKOUT_MINUTES  (15)   how long a lockout lasts
    STUDIO_SIGNIN_DELAY_BASE_S     (1)    the first delay; it doubles with each further failure
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, delete, func, select

from engine import settings
from engine.errors import StudioError
from engine.store import db
from engine.store.tables import SigninAttempt, now

DELAY_AFTER = 3
MAX_DELAY_S = 60.0
FAILURES = ("wrong", "throttled")  # "locked" attempts are recorded but do not extend the lockout


@dataclass(frozen=True)
class Policy:
    lockout_after: int
    lockout_minutes: float
    delay_base_s: float

    @classmethod
    def from_env(cls) -> Policy:
        now = settings.current()
        return cls(now.signin_lockout_after, now.signin_lockout_minutes, now.signin_delay_base_s)


class Throttled(StudioError):
    """The attempt is refused before the password is checked; the message says when to try again."""


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _failures(where, since: datetime) -> tuple[int, datetime | None]:
    """(failures since the last success within the window, time of the last failure) for one key."""
    with db.session() as s:
        last_ok = s.scalar(select(func.max(SigninAttempt.at)).where(*where, SigninAttempt.outcome == "ok"))
        start = max(since, _aware(last_ok)) if last_ok else since
        count, last = s.execute(select(func.count(SigninAttempt.id), func.max(SigninAttempt.at)).where(
            *where, SigninAttempt.outcome.in_(FAILURES), SigninAttempt.at > start)).one()
    return count, (_aware(last) if last else None)


def check(name: str, address: str, policy: Policy | None = None) -> None:
    """Raise Throttled (and record the attempt) when this pair is locked or a delay is running; otherwise return."""
    policy = policy or Policy.from_env()
    moment = now()
    since = moment - timedelta(minutes=policy.lockout_minutes)
    pair = _failures((SigninAttempt.user_name == name, SigninAttempt.address == address), since)
    if pair[1] is not None and pair[0] >= policy.lockout_after:
        until = pair[1] + timedelta(minutes=policy.lockout_minutes)
        record(name, address, "locked")
        raise Throttled(f"This account is locked for this address after {policy.lockout_after} failed sign-ins; try "
                        f"again after {until:%H:%M} UTC (in {_wait(until - moment)}), or ask an admin to unlock it.")
    for keys, outcome in (((SigninAttempt.address == address,), "throttled"),
                          ((SigninAttempt.user_name == name,), "waited")):
        ready = _ready(_failures(keys, since), policy)
        if ready is not None and moment < ready:
            record(name, address, outcome)
            raise Throttled(f"Too many failed sign-ins: wait {_wait(ready - moment)} before trying again.")


def _ready(failures: tuple[int, datetime | None], policy: Policy) -> datetime | None:
    """When a key with these failures may try again (None: no delay)."""
    count, last = failures
    if last is None or count < DELAY_AFTER:
        return None
    return last + timedelta(seconds=min(policy.delay_base_s * 2 ** (count - DELAY_AFTER), MAX_DELAY_S))


def _wait(delta: timedelta) -> str:
    seconds = max(1, int(delta.total_seconds() + 0.999))
    if seconds < 90:
        return f"{seconds} s"
    return f"{(seconds + 59) // 60} min"


def record(name: str, address: str, outcome: str) -> None:
    with db.write_session() as s:
        s.add(SigninAttempt(user_name=(name or "")[:80], address=(address or "")[:64], outcome=outcome, at=now()))


def recent(limit: int = 200) -> list[SigninAttempt]:
    """The latest attempts, newest first (for the admins' view)."""
    with db.session() as s:
        return list(s.scalars(select(SigninAttempt).order_by(SigninAttempt.id.desc()).limit(limit)))


def unlock(name: str) -> int:
    """Forget an account's failures (an admin's decision); returns how many were cleared."""
    with db.write_session() as s:
        done = s.execute(delete(SigninAttempt).where(SigninAttempt.user_name == name,
                                                     SigninAttempt.outcome.in_((*FAILURES, "locked", "waited"))))
    return cast(CursorResult, done).rowcount  # a DELETE's count is reliable on SQLite and psycopg alike
