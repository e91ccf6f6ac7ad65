"""What a promotion to production needs, checked on the evidence as it stands: an evaluation against the current
production model (the base model when there is none) that is not worse on the project's primary metric by its
interval, no forgetting detected, and, when a pairwise review exists, a win rate whose interval does not lie below
50%. Each check says what it found or what is missing."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.evaluate import results, scoring
from engine.models import registry
from engine.review import campaigns, stats
from engine.store import projects, users
from engine.store.tables import ModelVersion


@dataclass
class Check:
    name: str
    ok: bool
    sentence: str


@dataclass
class Evidence:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def missing(self) -> list[str]:
        return [c.sentence for c in self.checks if not c.ok]

    def to_json(self) -> dict:
        return {"ok": self.ok, "checks": [{"name": c.name, "ok": c.ok, "sentence": c.sentence} for c in self.checks]}


def for_production(version: ModelVersion) -> Evidence:
    run = registry.run_of(version)
    task = projects.get_project(version.project_id).task_type or "chat"
    current = registry.production(version.project_id)
    against = current if current is not None and current.id != version.id and current.run_id != run.id else None
    baseline = str(against.run_id) if against else "base"
    what = f"{against.label} (in production)" if against else "the base model (no version is in production)"
    report = results.load_report(run, baseline)
    evidence = Evidence()
    if report is None:
        how = f"`studio eval {run.id} --baseline {against.run_id}`" if against else f"`studio eval {run.id}`"
        evidence.checks.append(Check("evaluation", False, f"No evaluation of run {run.id} against {what} yet: run "
                                     f"{how} (or the Evaluate page)."))
    else:
        evidence.checks.append(_primary(report, task, what))
    evidence.checks.append(_forgetting(run, report))
    review = _review(run)
    if review is not None:
        evidence.checks.append(review)
    return evidence


def _primary(report, task: str, what: str) -> Check:
    name = scoring.primary_metric(task, report["metrics"])
    if name is None:
        return Check("primary metric", False, f"The evaluation has none of the {task} task's primary metrics.")
    m = report["metrics"][name]
    interval = f"{m['diff']:+.3f}, 95% interval {m['ci_low']:+.3f} to {m['ci_high']:+.3f}"
    if m["verdict"] == "worse":
        return Check("primary metric", False, f"{name} is worse than {what} ({interval}).")
    word = "better than" if m["verdict"] == "better" else "not detectably different from"
    return Check("primary metric", True, f"{name} is {word} {what} ({interval}).")


def _forgetting(run, report) -> Check:
    """Forgetting is judged against the base model's general skills: the base evaluation's check when there is one."""
    base = results.load_report(run, "base") or report
    verdict = ((base or {}).get("forgetting") or {}).get("verdict")
    if verdict is None:
        return Check("forgetting", False, f"No forgetting check for run {run.id} yet: evaluate it against its base "
                                          "model.")
    if verdict == "forgetting":
        return Check("forgetting", False, "Forgetting detected: " + str(base["forgetting"]["warning"]))
    if verdict == "possible_forgetting":
        return Check("forgetting", True, "Forgetting not detected surely (possible: its interval reaches the "
                                         "threshold).")
    return Check("forgetting", True, "No forgetting: the general skills are retained.")


def _review(run) -> Check | None:
    pairwise = [c for c in campaigns.list_campaigns(run.project_id) if c.run_id == run.id and c.kind == "pairwise"]
    if not pairwise:
        return None
    latest = pairwise[0]  # newest first
    result = stats.pairwise_results(campaigns.ratings_table(users.SYSTEM, latest.id))
    if not result["n"] or result["ci_low"] is None or result["ci_high"] is None or result["win_rate"] is None:
        return Check("human review", False, f"Review campaign {latest.id} has no votes yet.")
    low, high, rate = result["ci_low"], result["ci_high"], result["win_rate"]
    sentence = f"win rate {rate:.0%} in campaign {latest.id} (95% interval {low:.0%} to {high:.0%})"
    if high < 0.5:
        return Check("human review", False, f"Reviewers prefer the baseline: {sentence}, below 50%.")
    return Check("human review", True, f"Reviewers do not prefer the baseline: {sentence}.")
