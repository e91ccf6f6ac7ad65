"""The model registry: versions made from succeeded runs, found by label ("customer-support-v2.1.0") or id, and
their audit log. Stage changes live in engine.models.stages; the evidence a promotion needs in
engine.models.evidence."""

from __future__ import annotations

from typing import Any, TypedDict

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.errors import StudioError
from engine.jobs import supervisor
from engine.models import lineage, naming
from engine.store import db, projects, users
from engine.store.tables import ModelEvent, ModelVersion, Run, User

STAGES = ("candidate", "staging", "production", "archived")


class RegistryError(StudioError, ValueError):
    """A registration or lookup that cannot be done; the message says why."""


def register(actor: User, run_id: int, name: str | None = None, number: str | None = None) -> ModelVersion:
    """Register a succeeded training run as the next version of its project's model (or of `name`)."""
    actor = users.require(actor, "admin", "analyst")
    run = supervisor.get_run(run_id)
    if run.kind != "train" or run.status != "succeeded":
        raise RegistryError(f"Run {run_id} is a {run.kind} job that is {run.status}; only a succeeded training run "
                            "can become a model version.")
    if run.project_id is None:
        raise RegistryError(f"Run {run_id} belongs to no project; register runs launched from a project.")
    if not (supervisor.run_path(run) / "final").is_dir():
        raise RegistryError(f"Run {run_id} saved no final model; there is nothing to register.")
    existing = [v for v in list_versions(run.project_id) if v.run_id == run.id]
    if existing:
        raise RegistryError(f"Run {run_id} is already registered as {existing[0].label}.")
    project = projects.get_project(run.project_id)
    series = naming.check_name(name) if name else naming.slug(project.name)
    found = lineage.collect(run)
    bump, chosen = _number(run.project_id, series, found["facts"], number)
    version = ModelVersion(project_id=run.project_id, name=series, major=chosen[0], minor=chosen[1],
                           patch=chosen[2], run_id=run.id, stage="candidate", bump_reason=bump.reason,
                           lineage=found, created_by=actor.name)
    try:
        with db.write_session() as s:
            s.add(version)
            s.flush()
            s.add(ModelEvent(version_id=version.id, kind="registered", actor=actor.name, to_stage="candidate",
                             reason=bump.reason, details={"run": run.id}))
    except IntegrityError:
        raise RegistryError(f"{series}-v{'.'.join(map(str, chosen))} was registered by someone else a moment ago; "
                            "register again for the next number.") from None
    return get_version(version.id)


def _number(project_id: int, series: str, facts: dict, number: str | None):
    same = [v for v in list_versions(project_id) if v.name == series]
    latest = max(same, key=lambda v: (v.major, v.minor, v.patch), default=None)
    previous = {"number": (latest.major, latest.minor, latest.patch), "facts": latest.lineage.get("facts", {})} \
        if latest else None
    bump = naming.propose(previous, facts)
    if number is None:
        return bump, bump.number
    taken = {(v.major, v.minor, v.patch) for v in same}
    latest_number = (latest.major, latest.minor, latest.patch) if latest else None
    return bump, naming.check_override(naming.parse_number(number), bump, taken, latest_number)


def proposal(run_id: int, name: str | None = None) -> naming.Bump:
    """The number registering this run would get, and why (shown before the user registers)."""
    run = supervisor.get_run(run_id)
    if run.project_id is None:
        raise RegistryError(f"Run {run_id} belongs to no project.")
    project = projects.get_project(run.project_id)
    series = naming.check_name(name) if name else naming.slug(project.name)
    return _number(run.project_id, series, lineage.facts(run, project.task_type or "chat"), None)[0]


def list_versions(project_id: int | None = None) -> list[ModelVersion]:
    """Newest first."""
    with db.session() as s:
        q = select(ModelVersion).order_by(ModelVersion.id.desc())
        if project_id is not None:
            q = q.where(ModelVersion.project_id == project_id)
        return list(s.scalars(q))


def get_version(ref: int | str) -> ModelVersion:
    """A version by id or by label (customer-support-v2.1.0)."""
    with db.session() as s:
        if isinstance(ref, int) or str(ref).isdigit():
            found = s.get(ModelVersion, int(ref))
        else:
            name, (major, minor, patch) = naming.parse_label(str(ref))
            found = s.scalars(select(ModelVersion).where(
                ModelVersion.name == name, ModelVersion.major == major, ModelVersion.minor == minor,
                ModelVersion.patch == patch).order_by(ModelVersion.id)).first()
    if found is None:
        raise RegistryError(f"There is no model version {str(ref)[:100]!r} (`studio models` lists them).")
    return found


def production(project_id: int) -> ModelVersion | None:
    with db.session() as s:
        return s.scalars(select(ModelVersion).where(ModelVersion.project_id == project_id,
                                                    ModelVersion.stage == "production")).first()


def run_of(version: ModelVersion) -> Run:
    return supervisor.get_run(version.run_id)


def events(version_id: int | None = None, project_id: int | None = None) -> list[ModelEvent]:
    """The audit log, newest first: of one version, or of every version of a project."""
    with db.session() as s:
        q = select(ModelEvent).order_by(ModelEvent.id.desc())
        if version_id is not None:
            q = q.where(ModelEvent.version_id == version_id)
        if project_id is not None:
            q = q.where(ModelEvent.version_id.in_(select(ModelVersion.id)
                                                  .where(ModelVersion.project_id == project_id)))
        return list(s.scalars(q))


def log_event(version: ModelVersion, kind: str, actor: str, reason: str = "", **details: Any) -> None:
    with db.write_session() as s:
        s.add(ModelEvent(version_id=version.id, kind=kind, actor=actor, reason=reason, details=details or None))


def current_lineage(version: ModelVersion) -> dict[str, Any]:
    """The lineage as it stands now (evaluations and reviews read fresh), with the registration and the A/B
    decisions recorded for this version."""
    fresh = lineage.collect(run_of(version))
    fresh["registered"] = {"by": version.created_by, "at": version.created_at.isoformat(),
                           "bump_reason": version.bump_reason}
    fresh["ab_decisions"] = [{"decision": e.details.get("decision") if e.details else None, "reason": e.reason,
                              "by": e.actor, "at": e.at.isoformat(), **(e.details or {})}
                             for e in events(version.id) if e.kind == "ab_decision"]
    return fresh


def record_ab_decision(actor: User, ref: int | str, result: dict) -> ModelVersion:
    """Tie a production A/B analysis (engine.review.ab_traffic.analyze) to the version it tested."""
    actor = users.require(actor, "admin", "analyst")
    version = get_version(ref)
    primary = result.get("primary")
    metric = result["metrics"].get(primary) if primary else None
    log_event(version, "ab_decision", actor.name, reason=" ".join(result.get("reasons", [])),
              decision=result["decision"], primary=primary,
              lift=metric.get("relative_lift") if metric else None,
              lift_ci=[metric.get("lift_ci_low"), metric.get("lift_ci_high")] if metric else None,
              users=result.get("n"))
    return version


class ModelSummary(TypedDict):
    """One version as `studio models --json` prints it (metrics: the evaluation against the base model)."""
    version: str
    name: str
    number: str
    stage: str
    run_id: int
    dataset_version_id: int | None
    base_model: str | None
    created_at: str
    created_by: str
    bump_reason: str
    metrics: dict[str, Any]
    lineage: dict[str, Any]


def summary_row(version: ModelVersion) -> ModelSummary:
    """One version as `studio models --json` prints it."""
    found = version.lineage
    base_eval = next((e for e in found.get("evaluations", []) if e["baseline"] == "base"), None)
    return {"version": version.label, "name": version.name, "number": version.number, "stage": version.stage,
            "run_id": version.run_id, "dataset_version_id": found.get("facts", {}).get("dataset_version_id"),
            "base_model": found.get("facts", {}).get("base_model"), "created_at": version.created_at.isoformat(),
            "created_by": version.created_by, "bump_reason": version.bump_reason,
            "metrics": base_eval["metrics"] if base_eval else {}, "lineage": found}
