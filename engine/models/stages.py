"""Stage changes: candidate -> staging -> production -> archived. Production needs evidence
(engine.models.evidence) or an administrator's override with a written reason; exactly one version per project is
in production (promoting one archives the other, in one transaction, under a unique index); a rollback puts the
previous production version back in one step. Every change is an audit event."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from engine.errors import StudioError
from engine.models import evidence, registry
from engine.models.registry import STAGES
from engine.store import db, users
from engine.store.tables import ModelEvent, ModelVersion, User


class PromotionBlocked(StudioError):
    """A promotion the evidence does not support; `missing` lists what is missing, one sentence each."""

    def __init__(self, label: str, missing: list[str]):
        self.missing = missing
        super().__init__(f"{label} cannot go to production yet: " + " ".join(missing)
                         + " (An administrator may override with a written reason.)")


def promote(actor: User, ref: int | str, to: str, reason: str = "", override: bool = False) -> ModelVersion:
    """Move a version to another stage. To production: on evidence, or with override=True by an administrator who
    gives a reason."""
    actor = users.require(actor, "admin", "analyst")
    version = registry.get_version(ref)
    if to not in STAGES:
        raise registry.RegistryError(f"Unknown stage {to!r}; choose one of {', '.join(STAGES)}.")
    if to == version.stage:
        raise registry.RegistryError(f"{version.label} is already in {to}.")
    details = None
    if to == "production":
        found = evidence.for_production(version)
        details = found.to_json()
        if not found.ok and not override:
            raise PromotionBlocked(version.label, found.missing)
        if not found.ok:
            users.require(actor, "admin")
            if len(reason.strip()) < 10:
                raise registry.RegistryError("An override needs a written reason (a sentence, at least 10 "
                                             "characters): it is stored and shown with the version.")
    return _move(actor, version, to, reason.strip(), override=bool(details and not details["ok"]), details=details)


def rollback(actor: User, project_id: int, reason: str = "") -> ModelVersion:
    """Put back the version that was in production before the current one (one step; no new evidence needed: it
    served before)."""
    actor = users.require(actor, "admin", "analyst")
    current = registry.production(project_id)
    if current is None:
        raise registry.RegistryError("No version of this project is in production; there is nothing to roll back.")
    earlier = [e for e in registry.events(project_id=project_id)
               if e.to_stage == "production" and e.version_id != current.id]
    previous = next((registry.get_version(e.version_id) for e in earlier), None)
    if previous is None:
        raise registry.RegistryError(f"{current.label} is the first version ever in production; there is no earlier "
                                     "one to roll back to.")
    return _move(actor, previous, "production", reason.strip() or f"rollback from {current.label}",
                 kind="rollback")


def _move(actor: User, version: ModelVersion, to: str, reason: str, override: bool = False,
          details: dict | None = None, kind: str = "stage") -> ModelVersion:
    try:
        with db.write_session() as s:
            if to == "production":  # the one in production steps down in the same transaction
                for old in s.scalars(select(ModelVersion).where(ModelVersion.project_id == version.project_id,
                                                                ModelVersion.stage == "production",
                                                                ModelVersion.id != version.id)):
                    old.stage = "archived"
                    s.add(ModelEvent(version_id=old.id, kind=kind, actor=actor.name, from_stage="production",
                                     to_stage="archived", reason=f"replaced by {version.label}"))
                s.flush()
            done = s.execute(update(ModelVersion).where(ModelVersion.id == version.id,
                                                        ModelVersion.stage == version.stage)
                             .values(stage=to).returning(ModelVersion.id)).scalar()
            if done is None:
                raise registry.RegistryError(f"{version.label} changed stage a moment ago; look again and retry.")
            s.add(ModelEvent(version_id=version.id, kind=kind, actor=actor.name, from_stage=version.stage,
                             to_stage=to, reason=reason, override=override, details=details))
    except IntegrityError:  # another promotion to production won the race
        raise registry.RegistryError("Another version was promoted to production at the same moment; look again "
                                     "and retry.") from None
    return registry.get_version(version.id)
