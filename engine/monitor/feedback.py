"""Low-rated production answers to reviewers: the answers of the drifted bins that users rated low (rating 1-2,
thumbs down, not resolved) become a correction campaign (engine.review.corrections), whose reviewers write the answer
that should have been given. The retraining candidate then learns from those corrected answers too."""

from __future__ import annotations

from engine.models import registry
from engine.monitor import report, retrain
from engine.review import corrections
from engine.store import users
from engine.store.tables import Campaign, User

DEFAULT_LIMIT = 100  # answers per campaign: about an hour of a reviewer's work


def low_rated(project_id: int, label: str, limit: int = DEFAULT_LIMIT) -> list[tuple[str, str]]:
    """Up to `limit` distinct (request, answer) pairs of the drifted bins with low feedback, most recent first."""
    rows, _ = retrain.drifted_rows(project_id, label)
    return retrain.distinct_newest(rows[retrain.low_feedback(rows)], limit)


def send_for_correction(actor: User, project_id: int, label: str | None = None, reviewer_ids: list[int] | None = None,
                        limit: int = DEFAULT_LIMIT, overlap: int = 1) -> Campaign:
    """A correction campaign over the version's low-rated answers from the drifted bins."""
    actor = users.require(actor, "admin", "analyst")
    label = label or report.default_model(project_id)
    version = registry.get_version(label)
    if limit < 1:
        raise retrain.RetrainError("Send at least one answer to correct.")
    pairs = low_rated(project_id, label, limit)
    if not pairs:
        raise retrain.RetrainError(f"No answer of {label} from the drifted bins was rated low; nothing to correct.")
    return corrections.create(actor, project_id, version.run_id, pairs, reviewer_ids or [], overlap,
                              name=f"corrections of {label}")
