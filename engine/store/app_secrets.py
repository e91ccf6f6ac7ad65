"""Random keys the studio makes for itself, one per name, kept in the database (the workspace's own): the session
signing key, the salt of production-log user ids. Made on first use; two processes asking at once get the same one."""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError

from engine.store import db
from engine.store.tables import AppSecret


def get(name: str) -> bytes:
    """The 32 random bytes stored under `name`, made now if there are none yet."""
    with db.session() as s:
        row = s.get(AppSecret, name)
    if row is None:
        try:
            with db.write_session() as s:
                s.add(AppSecret(name=name, value=secrets.token_hex(32)))
        except IntegrityError:  # another process made it first: use theirs
            pass
        with db.session() as s:
            row = s.get_one(AppSecret, name)
    return bytes.fromhex(row.value)
