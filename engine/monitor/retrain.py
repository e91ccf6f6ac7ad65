"""The retraining candidate, built when a person asks (the Monitor page's button, or `studio monitor retrain --yes`):

1. production requests of the model from the drifted bins (the bins of the most drifted feature whose share grew),
   with their answers only where the feedback is good (rating 4-5, thumbs up, or resolved), and the answers
   reviewers corrected (low-rated answers from those bins sent to a correction campaign: engine.monitor.feedback);
2. added to the model's training data as a new dataset version whose parent is that training version, checked for
   quality (blocking errors stop here);
3. split with the project's locked test records kept on the test side, so the old locked test set stays locked and
   a new locked test slice comes from the drifted traffic;
4. a run queued with the production model's settings on that split; when it succeeds it registers itself as the
   next version (a new training data version: the next minor).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from engine.data import quality, split, versions
from engine.data.shapes import Record
from engine.errors import StudioError
from engine.models import registry
from engine.monitor import drift, reference, report, storage
from engine.review import corrections
from engine.store import projects, users
from engine.store.tables import User
from engine.train import launcher

# Production examples added: distinct (request, answer) pairs, newest first, at most as many as the training data has
# (at least MIN_ADDED), so the drifted traffic is at most half of the new data and the old topics are not forgotten
# (a 1:1 replay of old data is the usual guard against forgetting when fine-tuning continues on new data).
MIN_ADDED = 200
GOOD_RATING = 4.0  # ratings of 4 and 5 (of 5) count as good feedback
LOW_RATING = 2.0  # ratings of 1 and 2 (of 5) count as low: worth a reviewer's correction
# Run settings that belong to the old run and its data, not to how it trained.
_NOT_CARRIED = ("name", "train_file", "eval_file", "dataset_version_id", "split_id", "base_model")


class RetrainError(StudioError, ValueError):
    """A retraining candidate that cannot be built; the message says why."""


def good_feedback(frame) -> np.ndarray:
    return _feedback(frame, good=True)


def low_feedback(frame) -> np.ndarray:
    return _feedback(frame, good=False)


def _feedback(frame, good: bool) -> np.ndarray:
    """Rows whose feedback is good (rating 4-5, thumbs up, resolved) or low (rating 1-2, thumbs down, unresolved)."""
    out = np.zeros(len(frame), dtype=bool)
    if "rating" in frame:
        rating = frame["rating"] >= GOOD_RATING if good else frame["rating"] <= LOW_RATING
        out |= rating.fillna(False).to_numpy(bool)
    for key in ("thumbs", "resolved"):
        if key in frame:
            out |= (frame[key] == (1 if good else 0)).fillna(False).to_numpy(bool)
    return out


def candidate_rows(project_id: int, label: str):
    """The production rows that make the candidate: drifted bins, good feedback, no errors."""
    rows, found = drifted_rows(project_id, label)
    return rows[good_feedback(rows)], found


def drifted_rows(project_id: int, label: str):
    """The version's answered, error-free production rows of the report's window that fall in the drifted bins
    (the bins of the most drifted feature whose share grew), and the drift found."""
    version = registry.get_version(label)
    facts = version.lineage.get("facts", {})
    ref = reference.load(facts.get("config", {}).get("split_id"), str(facts.get("base_model")))
    if ref is None:
        raise RetrainError(f"{label} has no training data to compare with (its split is gone or too small).")
    lazy = storage.scan(project_id, ("model",), model=label)
    end = lazy.select("ts").max().collect().item() if lazy is not None else None
    if end is None:
        raise RetrainError(f"No production logs of {label}.")
    frame = storage.read(project_id, model=label, since=end - timedelta(days=report.WINDOW_DAYS))  # the window only
    frame = frame[frame["request"].notna() & frame["response"].notna()]
    if "error" in frame:
        frame = frame[frame["error"].fillna(0) != 1]
    texts = frame["request"].astype(str).tolist()
    turns = frame["turn"].tolist() if "turn" in frame else None
    found = drift.drift(ref, texts, turns)
    feature = found["feature"]
    training = ref.training_shares(feature, found["follow_up_share"])
    bins = ref.bins(feature, ref.without_system(texts))
    grown = np.flatnonzero(reference.shares(bins, len(training)) > training)
    return frame[np.isin(bins, grown)], found


def build(actor: User, project_id: int, label: str | None = None, confirmed: bool = False) -> dict:
    """Build the candidate and queue its run. confirmed must be True: nothing trains without a person's say-so."""
    actor = users.require(actor, "admin", "analyst")
    if not confirmed:
        raise RetrainError("Retraining builds a dataset and starts a run: confirm it (the button, or --yes).")
    label = label or report.default_model(project_id)
    version = registry.get_version(label)
    rows, found = candidate_rows(project_id, label)
    facts = version.lineage["facts"]
    parent = versions.get_version(facts["dataset_version_id"])
    old = versions.load_version(parent).records
    pairs = distinct_newest(rows, max(MIN_ADDED, len(old)))
    fixed = corrections.corrected(project_id, version.run_id)
    if not pairs and not fixed:
        raise RetrainError(f"No production request of {label} from the drifted bins has good feedback (rating 4-5, "
                           "thumbs up or resolved) or a reviewer's correction to learn from yet.")
    system = (projects.get_project(project_id).system_prompt or "").strip()
    start = max((r.location for r in old), default=0) + 1
    added = [Record(location=start + i, messages=([{"role": "system", "content": system}] if system else [])
                    + [{"role": "user", "content": q}, {"role": "assistant", "content": a}])
             for i, (q, a) in enumerate(pairs + fixed)]
    child = versions.create_child(parent, [r for r in old if r.messages] + added,
                                  {"id": "retrain_from_production", "model": label, "added": len(added),
                                   "corrected": len(fixed),
                                   "feature": found["feature"], "drift": found["distribution_drift"]})
    checked = quality.report_for_version(child)
    if checked.blocking:
        raise RetrainError(f"The retraining data (dataset version {child.id}) has blocking quality errors ("
                           + ", ".join(f.code for f in checked.errors) + "); fix them on the Quality page, then "
                           "train from it.")
    made = split.create_split(child)
    settings = {k: v for k, v in facts["config"].items() if k not in _NOT_CARRIED}
    config = launcher.config_for_split(made, facts["base_model"], name=f"retrain of {label}", **settings)
    run = launcher.launch_checked(config, project_id,
                                  then_command=["{python}", "-m", "engine.models.register_job", "{run_id}"])
    return {"model": label, "added_examples": len(added), "corrected_examples": len(fixed),
            "dataset_version": child.id, "parent_version": parent.id, "split": made.id, "kept_in_test": made.overlap.get("kept_in_test", 0), "counts": made.counts,
            "run": run.id, "drift": found["distribution_drift"], "feature": found["feature"]}


def distinct_newest(rows, limit: int) -> list[tuple[str, str]]:
    """Up to `limit` distinct (request, answer) pairs of the rows, the newest first."""
    rows = rows.sort_values("ts", ascending=False).drop_duplicates(["request", "response"]).head(limit)
    return list(zip(rows["request"].astype(str), rows["response"].astype(str)))
