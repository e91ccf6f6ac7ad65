"""Correction campaigns: answers that users rated low go to reviewers, who write the answer that should have been
given. The corrected pairs (request, corrected answer) then count as good examples when a model is retrained.

    create(actor, project_id, run_id, pairs=[(request, answer), ...], reviewer_ids=[...], overlap=1)
    corrected(project_id, run_id)      [(request, corrected answer)] over the run's correction campaigns
    summary(actor, campaign_id)        items, corrected items, reviewers' progress

Reviewers use the same queue, form and one-row-per-reviewer-and-item rule as ratings (engine.review.campaigns);
the item shows the request and the answer as plain text and takes the corrected answer.
"""

from __future__ import annotations

import random

from sqlalchemy import select

from engine.review import campaigns
from engine.store import db, users
from engine.store.tables import Campaign, CampaignItem, Rating, User


def create(actor: User, project_id: int, run_id: int, pairs: list[tuple[str, str]], reviewer_ids: list[int],
           overlap: int = 1, name: str | None = None, seed: int = 0) -> Campaign:
    """A correction campaign over (request, answer) pairs; run_id is the run behind the model that answered."""
    actor = users.require(actor, *campaigns.ANALYSTS)
    reviewers = campaigns.chosen_reviewers(reviewer_ids, overlap)
    if not pairs:
        raise campaigns.ReviewError("There are no answers to correct.")
    rng = random.Random(seed)
    with db.session() as s:
        campaign = Campaign(project_id=project_id, kind=campaigns.CORRECTION, run_id=run_id, baseline="production",
                            overlap=overlap, seed=seed, created_by=actor.id,
                            name=(name or f"corrections of run {run_id}")[:120])
        s.add(campaign)
        s.flush()
        items = [CampaignItem(campaign_id=campaign.id, example_index=i, model=None,
                              prompt=[{"role": "user", "content": request}], answers={"answer": answer})
                 for i, (request, answer) in enumerate(pairs)]
        campaigns.assign_items(s, campaign, items, reviewers, overlap, rng)
        return campaign


def corrected(project_id: int, run_id: int) -> list[tuple[str, str]]:
    """The corrected (request, answer) pairs of every correction campaign over this run's answers: one per item, the
    first reviewer's (by time) when several corrected the same item."""
    with db.session() as s:
        rows = s.execute(select(CampaignItem.id, CampaignItem.prompt, Rating.correction)
                         .join(Rating, Rating.item_id == CampaignItem.id)
                         .join(Campaign, Campaign.id == CampaignItem.campaign_id)
                         .where(Campaign.project_id == project_id, Campaign.run_id == run_id,
                                Campaign.kind == campaigns.CORRECTION, Rating.correction.is_not(None))
                         .order_by(CampaignItem.id, Rating.updated_at, Rating.id)).all()
    out: dict[int, tuple[str, str]] = {}
    for item_id, prompt, text in rows:
        request = next((m["content"] for m in reversed(prompt) if m["role"] == "user"), "")
        out.setdefault(item_id, (request, text))
    return list(out.values())


def summary(actor: User, campaign_id: int) -> dict:
    """{"campaign", "kind", "items", "corrected", "progress"} for the analyst's campaign view."""
    users.require(actor, *campaigns.ANALYSTS)
    with db.session() as s:
        items = len(s.scalars(select(CampaignItem.id).where(CampaignItem.campaign_id == campaign_id)).all())
        done = s.scalars(select(Rating.item_id).where(Rating.campaign_id == campaign_id,
                                                      Rating.correction.is_not(None)).distinct()).all()
    return {"campaign": campaign_id, "kind": campaigns.CORRECTION, "items": items, "corrected": len(done),
            "progress": campaigns.progress(actor, campaign_id)}
