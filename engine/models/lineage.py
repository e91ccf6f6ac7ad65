"""Where a model came from: its run, base model (with license), dataset version and the chain of fixes behind it,
split and locked test hash, evaluations, review campaigns, and the A/B decisions recorded for it. Collected from the
workspace and the database when asked, so evidence that arrives after registration (a new evaluation, more votes)
is seen at once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.evaluate import results
from engine.jobs import event_log, supervisor
from engine.models import naming
from engine.review import campaigns, stats
from engine.store import db, projects, users
from engine.store.tables import DatasetVersion, ModelVersion, Run, Split
from engine.train import recommend


def facts(run: Run, task: str) -> dict[str, Any]:
    """What the version bump compares: base model, technique, task, data version and the run's settings. A run that
    started from a registered version (parent_version) keeps that version's origin (the base model the line of
    versions began with) and says which version and objective it came from; base_model stays the weights its
    adapter applies to (the parent merged)."""
    out = {"base_model": run.config.get("base_model"), "technique": run.config.get("technique"), "task": task,
           "dataset_version_id": run.config.get("dataset_version_id"), "config": dict(run.config),
           "objective": run.config.get("objective") or "sft", "origin": run.config.get("base_model")}
    parent = run.config.get("parent_version")
    if parent:
        before = _facts_of(parent)
        out.update(parent_version=parent, origin=before.get("origin") or before.get("base_model") or out["origin"])
    return out


def _facts_of(label: str) -> dict[str, Any]:
    """A registered version's recorded facts, by its label (empty when it is gone)."""
    name, (major, minor, patch) = naming.parse_label(label)
    with db.session() as s:
        found = s.scalars(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.major == major,
                                                     ModelVersion.minor == minor, ModelVersion.patch == patch)).first()
    return dict((found.lineage or {}).get("facts", {})) if found is not None else {}


def collect(run: Run) -> dict[str, Any]:
    """The whole lineage of a run, as plain JSON."""
    project = projects.get_project(run.project_id) if run.project_id else None
    task = (project.task_type if project else None) or "chat"
    found = facts(run, task)
    base = recommend.model_facts(str(found["origin"]))  # a child of a version: the model its line began with
    final = event_log.final_event(event_log.read_events(supervisor.run_path(run))) or {}
    return {
        "project": {"id": project.id, "name": project.name, "task": task} if project else None,
        "facts": found,
        "run": {"id": run.id, "name": run.name, "status": run.status, "technique": run.config.get("technique"),
                "finished_at": run.finished_at.isoformat() if run.finished_at else None,
                "steps": final.get("step"), "best_step": final.get("best_step"),
                "best_eval_loss": final.get("best_eval_loss"), "stopped_early": final.get("stopped_early"),
                "device": final.get("device"), "precision": final.get("precision")},
        "base_model": {"name": base.name, "license": base.license, "commercial": base.commercial,
                       "params": base.params, "source": base.source},
        "dataset": dataset_chain(run.config.get("dataset_version_id")),
        "split": split_facts(run.config.get("split_id")),
        "evaluations": evaluations(run),
        "reviews": reviews(run),
    }


def dataset_chain(version_id: int | None) -> dict[str, Any] | None:
    """The dataset version and every version it was derived from by fixes, newest first."""
    if version_id is None:
        return None
    chain: list[dict[str, Any]] = []
    seen: set[int] = set()
    current: int | None = version_id
    with db.session() as s:
        while current is not None and current not in seen and len(chain) < 100:
            seen.add(current)
            row = s.get(DatasetVersion, current)
            if row is None:
                break
            chain.append({"id": row.id, "version": row.version, "name": row.name, "sha256": row.sha256,
                          "records": row.records, "shape": row.shape, "fixes": row.fixes or [],
                          "removed": row.removed})
            current = row.parent_id
    return {**chain[0], "chain": chain} if chain else None


def split_facts(split_id: int | None) -> dict[str, Any] | None:
    if split_id is None:
        return None
    with db.session() as s:
        made = s.get(Split, split_id)
    if made is None:
        return None
    return {"id": made.id, "counts": made.counts, "test_sha256": made.test_sha256, "seed": made.seed,
            "ratios": made.ratios, "overlap": made.overlap}


def evaluations(run: Run) -> list[dict[str, Any]]:
    """Each evaluation of the run (against its base model, against other runs): its metrics with intervals."""
    out = []
    for baseline in results.evaluated_baselines(run):
        report = results.load_report(run, baseline)
        if report is None:
            continue
        out.append({"baseline": report.get("baseline", "base"), "baseline_model": report.get("baseline_model"),
                    "n_examples": report["n_examples"], "task": report.get("task"),
                    "metrics": {k: {f: m[f] for f in ("base", "finetuned", "diff", "ci_low", "ci_high", "verdict")}
                                for k, m in report["metrics"].items()},
                    "forgetting": (report.get("forgetting") or {}).get("verdict"),
                    "train_test_gap_warning": (report.get("train_test_gap") or {}).get("warning")})
    return out


def reviews(run: Run) -> list[dict[str, Any]]:
    """The review campaigns over this run's evaluation outputs, with their results."""
    out = []
    for campaign in campaigns.list_campaigns(run.project_id):
        if campaign.run_id != run.id or campaign.kind == campaigns.CORRECTION:  # corrections are not a verdict
            continue
        result: dict[str, Any] = dict(stats.campaign_results(users.SYSTEM, campaign.id))
        entry = {"campaign": campaign.id, "name": campaign.name, "kind": campaign.kind,
                 "baseline": campaign.baseline}
        if campaign.kind == "pairwise":
            entry.update({k: result.get(k) for k in ("n", "win_rate", "ci_low", "ci_high", "verdict")})
        else:
            entry["n_ratings"] = result.get("n_ratings")
            entry["criteria"] = {c: {m: e["models"][m]["mean"] for m in campaigns.MODELS}
                                 for c, e in result.get("criteria", {}).items()}
        out.append(entry)
    return out
