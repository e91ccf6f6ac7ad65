"""Sign-in throttling: a growing delay after a few failures and a temporary lockout after many, per account and per
client address, as OWASP's authentication guidance describes. Every attempt is recorded (time, name, address,
outcome; never the password) and admins see them on the Users page.

A failure is a wrong password or an attempt made while the delay was still running (automated guessing does not
wait). Counting only failures since the key's last success, within the lockout window:
    failures >= DELAY_AFTER    the next attempt must wait DELAY_BASE * 2^(failures - DELAY_AFTER) s (at most 60 s)
    failures >= LOCKOUT_AFTER  locked until LOCKOUT_MINUTES after the last failure

    STUDIO_SIGNIN_LOCKOUT_AFTER    (10)   failures that lock an account or an address
    STUDIO_SIGNIN_LOCKOUT_MINUTES  (15)   how long a lockout lasts
    STUDIO_SIGNIN_DELAY_BASE_S     (1)    the first delay; it doubles with each further failure
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, delete, func, select

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
        return cls(int(os.environ.get("STUDIO_SIGNIN_LOCKOUT_AFTER", "10")),
                   float(os.environ.get("STUDIO_SIGNIN_LOCKOUT_MINUTES", "15")),
                   float(os.environ.get("STUDIO_SIGNIN_DELAY_BASE_S", "1")))


class Throttled(StudioError):
    """The attempt is refused before the password is checked; the message says when to try again."""


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _failures(column, value: str, since: datetime) -> tuple[int, datetime | None]:
    """(failures since the last success within the window, time of the last failure) for one key."""
    with db.session() as s:
        last_ok = s.scalar(select(func.max(SigninAttempt.at)).where(column == value, SigninAttempt.outcome == "ok"))
        start = max(since, _aware(last_ok)) if last_ok else since
        count, last = s.execute(select(func.count(SigninAttempt.id), func.max(SigninAttempt.at)).where(
            column == value, SigninAttempt.outcome.in_(FAILURES), SigninAttempt.at > start)).one()
    return count, (_aware(last) if last else None)


def check(name: str, address: str, policy: Policy | None = None) -> None:
    """Raise Throttled (and record the attempt) when this account or address must wait; otherwise return."""
    policy = policy or Policy.from_env()
    moment = now()
    since = moment - timedelta(minutes=policy.lockout_minutes)
    for label, column, value in (("This account", SigninAttempt.user_name, name),
                                 ("This address", SigninAttempt.address, address)):
        count, last = _failures(column, value, since)
        if last is None or count < DELAY_AFTER:
            continue
        if count >= policy.lockout_after:
            until = last + timedelta(minutes=policy.lockout_minutes)
            record(name, address, "locked")
            raise Throttled(f"{label} is locked after {policy.lockout_after} failed sign-ins; try again after "
                            f"{until:%H:%M} UTC (in {_wait(until - moment)}), or ask an admin to unlock it.")
        delay = min(policy.delay_base_s * 2 ** (count - DELAY_AFTER), MAX_DELAY_S)
        ready = last + timedelta(seconds=delay)
        if moment < ready:
            record(name, address, "throttled")
            raise Throttled(f"Too many failed sign-ins: wait {_wait(ready - moment)} before trying again.")


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
                                                     SigninAttempt.outcome.in_((*FAILURES, "locked"))))
    return cast(CursorResult, done).rowcount  # a DELETE's count is reliable on SQLite and psycopg alike
