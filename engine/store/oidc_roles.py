"""Single sign-on: who an OpenID Connect identity is in the studio, and with which role.

The identity provider (through Streamlit's st.login) says who someone is; a claim of its identity token says which
groups they are in, and a mapping table turns groups into studio roles. The role follows the provider at every
sign-in (a person moved out of the admins' group is an admin no longer), and an identity whose groups map to no role
is refused with one sentence. Without a mapping, identities are matched by e-mail to users an admin added
(`studio users add NAME --role ROLE --email ...`), as before.

Settings (environment, or the [studio_oidc] table of .streamlit/secrets.toml, which wins):
    STUDIO_OIDC_ROLE_CLAIM   (groups)   the claim that lists the person's groups (a list, or one string)
    STUDIO_OIDC_ROLE_MAP     ()         GROUP=ROLE pairs, comma-separated: "studio-admins=admin,ml=analyst,qa=reviewer"
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import func, select

from engine import settings
from engine.errors import StudioError
from engine.store import db, users
from engine.store.tables import User

RANK = {"admin": 3, "analyst": 2, "reviewer": 1}  # several matching groups: the strongest role wins


class NoRole(StudioError):
    """An identity the mapping gives no studio role."""


@dataclass(frozen=True)
class RoleMapping:
    claim: str = "groups"
    groups: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, secrets: Mapping | None = None) -> RoleMapping:
        """From [studio_oidc] in the secrets (claim = "...", roles = {GROUP = "ROLE"}), else the environment."""
        table = dict(secrets or {})
        claim = str(table.get("claim") or settings.current().oidc_role_claim)
        roles = table.get("roles")
        groups = {str(k): str(v) for k, v in dict(roles).items()} if isinstance(roles, Mapping) else \
            _parse(settings.current().oidc_role_map)
        bad = sorted({role for role in groups.values() if role not in users.ROLES})
        if bad:
            raise NoRole(f"The OIDC role mapping names unknown roles ({', '.join(bad)}); use "
                         f"{', '.join(users.ROLES)}.")
        return cls(claim, groups)

    def role_for(self, claims: Mapping) -> str | None:
        """The strongest studio role among the identity's groups, or None."""
        value = claims.get(self.claim)
        found = [value] if isinstance(value, str) else list(value) if isinstance(value, list | tuple) else []
        roles = [self.groups[str(g)] for g in found if str(g) in self.groups]
        return max(roles, key=RANK.__getitem__) if roles else None


def _parse(text: str) -> dict[str, str]:
    out = {}
    for pair in text.split(","):
        group, _, role = pair.strip().rpartition("=")
        if group and role:
            out[group.strip()] = role.strip()
    return out


_NAME_CHARS = re.compile(r"[^A-Za-z0-9._@-]")


def user_for(claims: Mapping, mapping: RoleMapping) -> User:
    """The studio user of this identity: with a mapping, made or updated with the mapped role (NoRole when none
    maps); without one, the user an admin added with this e-mail (NoRole when there is none)."""
    email = str(claims.get("email") or "").strip().lower()
    if not email:
        raise NoRole("Your identity provider did not say your e-mail address, so the studio cannot tell who you are.")
    if not mapping.groups:
        found = users.by_email(email)
        if found is None:
            raise NoRole("You are signed in with your identity provider, but no studio account has your e-mail "
                          "address; ask an admin to add you.")
        return found
    role = mapping.role_for(claims)
    if role is None:
        raise NoRole("You are signed in with your identity provider, but none of your groups has a role in the "
                     "studio; ask an admin to add your group to the role mapping.")
    with db.write_session() as s:
        user = s.scalars(select(User).where(func.lower(User.email) == email)).first()
        if user is None:
            user = User(name=_unique_name(s, email), role=role, password_hash=None, email=email, active=True)
            s.add(user)
        elif not user.active:
            raise NoRole("Your studio account is deactivated; ask an admin.")
        else:
            user.role = role  # the provider's groups decide, at every sign-in
        s.flush()
        user_id = user.id
    found = users.get_user(user_id)
    assert found is not None  # just written
    return found


def _unique_name(session, email: str) -> str:
    base = _NAME_CHARS.sub("-", email)[:70].lstrip("._@-") or "user"
    name, n = base, 1
    while session.scalars(select(User.id).where(User.name == name)).first() is not None:
        n += 1
        name = f"{base}-{n}"
    return name
