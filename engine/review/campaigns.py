"""Human review campaigns over stored evaluation outputs: single-answer ratings or blind pairwise votes (and the
queue, form and answer rules that correction and augmentation campaigns share).

    create_campaign(actor, run_id, kind, reviewer_ids, sample_size, overlap); queue(reviewer, campaign_id);
    task(reviewer, assignment_id): prompt and answer(s) as "A"/"B", never a model name; submit(reviewer,
    assignment_id, ...): one row per reviewer and item; escalate(actor, campaign_id); export(actor, campaign_id, fmt)

Rating campaigns show each sampled example twice, once with each model's answer (in separate, shuffled places of
the queue). Pairwise campaigns draw the left answer per reviewer and item, so "A" never means the same model.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from engine.errors import StudioError
from engine.evaluate import results
from engine.jobs import supervisor
from engine.review.edits import parse_edit
from engine.store import db, users
from engine.store.tables import Assignment, Campaign, CampaignItem, Rating, User, now

CRITERIA = ("accuracy", "helpfulness", "consistency", "tone", "safety")
VOTES = ("A", "B", "tie", "both_bad")
MODELS = ("base", "finetuned")
KINDS = ("rating", "pairwise")  # over evaluation outputs; "correction" campaigns are made by engine.review.corrections
CORRECTION, AUGMENT = "correction", "augment"  # made by engine.review.corrections and engine.augment.gate
MAX_CORRECTION = 20_000  # characters of a corrected answer
ANALYSTS = ("admin", "analyst")


class ReviewError(StudioError, ValueError):
    """A campaign or a rating cannot be made as asked (one sentence)."""


def create_campaign(actor: User, run_id: int, kind: str = "rating", reviewer_ids: list[int] | None = None,
                    sample_size: int = 150, overlap: int = 2, baseline: str = "base", name: str | None = None,
                    per_criterion: bool = False, gold: dict[int, str] | None = None, seed: int = 0,
                    project_id: int | None = None) -> Campaign:
    """A campaign over a sample of the run's evaluation outputs. gold maps a test example's index to its known
    answer: for pairwise "base", "finetuned" or "tie"; for ratings the expected accuracy of the fine-tuned answer."""
    actor = users.require(actor, *ANALYSTS)
    if kind not in KINDS:
        raise ReviewError(f"Unknown campaign kind {kind!r}; choose rating or pairwise.")
    reviewers = chosen_reviewers(reviewer_ids, overlap)
    if sample_size < 1:
        raise ReviewError("The sample size must be at least 1.")
    run = supervisor.get_run(run_id)
    path = results.eval_dir(run, baseline) / "outputs.jsonl"
    if not path.is_file():
        raise ReviewError(f"Run {run_id} has no evaluation outputs against {baseline}; evaluate it first.")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    sample = sorted(rng.sample(range(len(rows)), min(sample_size, len(rows))))
    gold = {int(k): str(v) for k, v in (gold or {}).items()}
    for k, v in gold.items():
        if k not in sample:
            sample.append(k)  # a gold item is always shown
        if kind == "pairwise" and v not in ("base", "finetuned", "tie"):
            raise ReviewError(f"Gold item {k}: the known answer must be base, finetuned or tie.")
        if kind == "rating" and v not in {"1", "2", "3", "4", "5"}:
            raise ReviewError(f"Gold item {k}: the expected accuracy must be 1 to 5.")
    with db.session() as s:
        campaign = Campaign(project_id=project_id or run.project_id, kind=kind, run_id=run_id, baseline=str(baseline),
                            overlap=overlap, per_criterion=per_criterion, seed=seed, created_by=actor.id,
                            name=(name or f"{kind} review of run {run_id}")[:120])
        s.add(campaign)
        s.flush()
        items = []
        for index in sample:
            row = rows[index]
            common = dict(campaign_id=campaign.id, example_index=index, prompt=row["prompt"],
                          reference=row.get("reference", ""))
            if kind == "pairwise":
                items.append(CampaignItem(**common, model=None, gold=gold.get(index),
                                          answers={m: row[m]["answer"] for m in MODELS}))
            else:
                for m in MODELS:
                    items.append(CampaignItem(**common, model=m, answers={"answer": row[m]["answer"]},
                                              gold=gold.get(index) if m == "finetuned" else None))
        assign_items(s, campaign, items, reviewers, overlap, rng)
        return campaign


def chosen_reviewers(reviewer_ids: list[int] | None, overlap: int) -> list[User]:
    """The active users chosen as a campaign's reviewers, checked against the overlap asked for."""
    found = [users.get_user(i) for i in (reviewer_ids or [])]
    reviewers = [r for r in found if r is not None]
    if not reviewers or len(reviewers) < len(found):
        raise ReviewError("Choose at least one reviewer (active users).")
    if not 1 <= overlap <= len(reviewers):
        raise ReviewError(f"The overlap (reviewers per item) must be between 1 and the {len(reviewers)} reviewers "
                          "chosen.")
    return reviewers


def assign_items(s, campaign: Campaign, items: list[CampaignItem], reviewers: list[User], overlap: int,
                 rng: random.Random) -> None:
    """Store a new campaign's items and give each to `overlap` reviewers, the least loaded first."""
    s.add_all(items)
    s.flush()
    load = Counter({r.id: 0 for r in reviewers})
    for item in items:
        for reviewer_id in least_loaded(load, set(), overlap, rng):
            s.add(assignment_for(campaign, item, reviewer_id, rng))
            load[reviewer_id] += 1


def least_loaded(load: Counter, exclude: set[int], k: int, rng: random.Random) -> list[int]:
    """k reviewers with the fewest items so far (ties drawn at random): queues stay balanced."""
    pool = [r for r in load if r not in exclude]
    rng.shuffle(pool)
    return sorted(pool, key=lambda r: load[r])[:k]


def assignment_for(campaign: Campaign, item: CampaignItem, reviewer_id: int, rng: random.Random) -> Assignment:
    return Assignment(campaign_id=campaign.id, item_id=item.id, reviewer_id=reviewer_id,
                      order_key=rng.randrange(1 << 30),
                      left_model=rng.choice(MODELS) if campaign.kind == "pairwise" else None)


def list_campaigns(project_id: int | None = None) -> list[Campaign]:
    with db.session() as s:
        q = select(Campaign).order_by(Campaign.id.desc())
        if project_id is not None:
            q = q.where(Campaign.project_id == project_id)
        return list(s.scalars(q))


def get_campaign(campaign_id: int) -> Campaign:
    with db.session() as s:
        campaign = s.get(Campaign, campaign_id)
    if campaign is None:
        raise ReviewError(f"There is no campaign {campaign_id}.")
    return campaign


@dataclass
class QueueEntry:
    assignment_id: int
    position: int
    done: bool


def my_campaigns(reviewer: User) -> list[dict]:
    """The campaigns with items for this reviewer, with their progress: [{"id", "name", "kind", "done", "total"}]."""
    reviewer = users.require(reviewer, "reviewer", *ANALYSTS)
    with db.session() as s:
        rows = s.execute(
            select(Campaign.id, Campaign.name, Campaign.kind, func.count(Assignment.id), func.count(Rating.id))
            .join(Assignment, Assignment.campaign_id == Campaign.id)
            .outerjoin(Rating, (Rating.item_id == Assignment.item_id) & (Rating.reviewer_id == reviewer.id))
            .where(Assignment.reviewer_id == reviewer.id).group_by(Campaign.id).order_by(Campaign.id.desc())).all()
    # The name an analyst typed may mention models; reviewers see the campaign by number and kind only.
    return [{"id": r[0], "name": f"Campaign {r[0]} ({r[2]})", "kind": r[2], "total": r[3], "done": r[4]}
            for r in rows]


def queue(reviewer: User, campaign_id: int) -> list[QueueEntry]:
    reviewer = users.require(reviewer, "reviewer", *ANALYSTS)
    with db.session() as s:
        rows = s.execute(
            select(Assignment.id, Rating.id).outerjoin(
                Rating, (Rating.item_id == Assignment.item_id) & (Rating.reviewer_id == Assignment.reviewer_id))
            .where(Assignment.reviewer_id == reviewer.id, Assignment.campaign_id == campaign_id)
            .order_by(Assignment.order_key, Assignment.id)).all()
    return [QueueEntry(a, i + 1, r is not None) for i, (a, r) in enumerate(rows)]


def next_open(entries: list[QueueEntry]) -> QueueEntry | None:
    """Where the reviewer left off: the first item without an answer."""
    return next((e for e in entries if not e.done), None)


def task(reviewer: User, assignment_id: int) -> dict:
    """The blind view of one assignment: prompt, reference, answer text(s) labelled A/B, and the reviewer's previous
    answer (in A/B terms) to edit. No model name, no model-dependent field."""
    reviewer = users.require(reviewer, "reviewer", *ANALYSTS)
    with db.session() as s:
        a = s.get(Assignment, assignment_id)
        if a is None or a.reviewer_id != reviewer.id:
            raise users.PermissionDenied("This item is not in your queue.")
        item = s.get(CampaignItem, a.item_id)
        campaign = s.get(Campaign, a.campaign_id)
        if item is None or campaign is None:  # deleted under the reviewer's feet
            raise ReviewError("This item no longer exists.")
        rating = s.scalar(select(Rating).where(Rating.item_id == item.id, Rating.reviewer_id == reviewer.id))
    view = {"assignment_id": assignment_id, "kind": campaign.kind, "per_criterion": campaign.per_criterion,
            "prompt": [{"role": m["role"], "content": m["content"]} for m in item.prompt],
            "reference": item.reference}
    previous: dict[str, Any] | None = None
    if campaign.kind == "pairwise":
        right = "finetuned" if a.left_model == "base" else "base"
        view["answers"] = {"A": item.answers[a.left_model], "B": item.answers[right]}
        if rating is not None:
            to_side = {a.left_model: "A", right: "B", "tie": "tie", "both_bad": "both_bad"}
            previous = {"vote": to_side[rating.vote], "comment": rating.comment,
                        "criterion_votes": {c: to_side[v] for c, v in (rating.criterion_votes or {}).items()}}
    elif campaign.kind == AUGMENT:  # the source record is the prompt; the candidate is the item
        view["answers"] = {"candidate": item.answers["candidate"]}
        if rating is not None:
            previous = {"vote": rating.vote, "correction": rating.correction, "comment": rating.comment}
    else:
        view["answers"] = {"answer": item.answers["answer"]}
        if rating is not None:
            previous = {"scores": rating.scores, "safety_flag": rating.safety_flag, "comment": rating.comment,
                        "correction": rating.correction}
    view["previous"] = previous
    return view


def submit(reviewer: User, assignment_id: int, scores: dict | None = None, safety_flag: bool = False,
           comment: str = "", vote: str | None = None, criterion_votes: dict | None = None,
           correction: str | None = None) -> int:
    """Save the reviewer's answer to an assignment; the same reviewer and item always map to the same row."""
    reviewer = users.require(reviewer, "reviewer", *ANALYSTS)
    with db.session() as s:  # one light query: on the path of every click of every reviewer
        a = s.execute(select(Assignment.campaign_id, Assignment.item_id, Assignment.reviewer_id,
                             Assignment.left_model, Campaign.kind).join(Campaign, Campaign.id == Assignment.campaign_id)
                      .where(Assignment.id == assignment_id)).first()
    if a is None or a.reviewer_id != reviewer.id:
        raise users.PermissionDenied("This item is not in your queue.")
    kind = a.kind
    values = {"campaign_id": a.campaign_id, "item_id": a.item_id, "reviewer_id": reviewer.id,
              "comment": (comment or "")[:5000], "safety_flag": bool(safety_flag), "updated_at": now(),
              "correction": None}
    if kind == AUGMENT:
        if vote not in ("accept", "reject"):
            raise ReviewError("Accept, edit or reject the candidate.")
        edited = json.dumps(parse_edit(correction), ensure_ascii=False) if vote == "accept" and correction else None
        values.update(scores=None, vote=vote, criterion_votes=None, correction=edited)
    elif kind == CORRECTION:
        text = (correction or "").strip()
        if not text:
            raise ReviewError("Write the corrected answer (or keep the answer as it is if it is right).")
        values.update(scores=None, vote=None, criterion_votes=None, correction=text[:MAX_CORRECTION])
    elif kind == "rating":
        scores = {c: scores.get(c) for c in CRITERIA} if isinstance(scores, dict) else {}
        bad = [c for c, v in scores.items() if not (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5)]
        if bad:
            raise ReviewError(f"Give every criterion a score from 1 to 5 (missing or invalid: {', '.join(bad)}).")
        values.update(scores=scores, vote=None, criterion_votes=None)
    else:
        right = "finetuned" if a.left_model == "base" else "base"
        to_model = {"A": a.left_model, "B": right, "tie": "tie", "both_bad": "both_bad"}
        if vote not in VOTES:
            raise ReviewError("Choose A better, B better, tie or both bad.")
        votes = {}
        for criterion, v in (criterion_votes or {}).items():
            if criterion not in CRITERIA or v not in ("A", "B", "tie"):
                raise ReviewError(f"A per-criterion vote is A, B or tie for one of {', '.join(CRITERIA)}.")
            votes[criterion] = to_model[v]
        values.update(scores=None, vote=to_model[vote], criterion_votes=votes or None)
    return _upsert(values)


def _upsert(values: dict) -> int:
    """INSERT ... ON CONFLICT (item, reviewer) DO UPDATE: a double click or a second tab cannot make two rows."""
    engine = db.get_engine()
    if engine.dialect.name == "postgresql":  # (imported here: only the configured dialect's driver is loaded)
        from sqlalchemy.dialects.postgresql import insert  # only the configured dialect's upsert is loaded
    elif engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]  # the same API, its own class
    else:  # each dialect spells the upsert its own way; a guess could make two rows for one vote
        raise ReviewError(f"Ratings need SQLite or PostgreSQL; the configured database is {engine.dialect.name}.")
    stmt = insert(Rating).values(**values, created_at=values["updated_at"])
    stmt = stmt.on_conflict_do_update(index_elements=["item_id", "reviewer_id"],
                                      set_={k: stmt.excluded[k] for k in ("scores", "safety_flag", "comment", "vote",
                                                                          "criterion_votes", "correction",
                                                                          "updated_at")})
    with db.write_session() as s:
        return s.execute(stmt.returning(Rating.id)).scalar_one()


def escalate(actor: User, campaign_id: int, spread: int = 2) -> int:
    """Send each item whose reviewers disagree (pairwise: different votes; ratings: overall scores `spread` or more
    apart) to one more reviewer of the campaign who has not seen it. Returns how many items were sent."""
    users.require(actor, *ANALYSTS)
    campaign = get_campaign(campaign_id)
    with db.session() as s:
        assigned = s.execute(select(Assignment.item_id, Assignment.reviewer_id)
                             .where(Assignment.campaign_id == campaign_id)).all()
        ratings = list(s.scalars(select(Rating).where(Rating.campaign_id == campaign_id)))
    reviewers_of: dict[int, set[int]] = {}
    for item_id, reviewer_id in assigned:
        reviewers_of.setdefault(item_id, set()).add(reviewer_id)
    load = Counter(r for _, r in assigned)
    by_item: dict[int, list[Rating]] = {}
    for r in ratings:
        by_item.setdefault(r.item_id, []).append(r)
    # an item already waiting for a reviewer's answer is not sent again
    waiting = {i for i, who in reviewers_of.items() if who - {r.reviewer_id for r in by_item.get(i, [])}}
    disagreeing = [i for i, rs in by_item.items()
                   if len(rs) >= 2 and i not in waiting and _disagree(campaign.kind, rs, spread)]
    rng = random.Random(campaign.seed + len(ratings))
    sent = 0
    with db.session() as s:
        for item_id in disagreeing:
            extra = least_loaded(load, reviewers_of[item_id], 1, rng)
            if not extra:
                continue
            s.add(assignment_for(campaign, s.get_one(CampaignItem, item_id), extra[0], rng))
            load[extra[0]] += 1
            sent += 1
    return sent


def _disagree(kind: str, rs: list[Rating], spread: int) -> bool:
    if kind in ("pairwise", AUGMENT, CORRECTION):  # two written corrections are not votes to reconcile
        return kind != CORRECTION and len({r.vote for r in rs}) > 1
    overall = [sum(r.scores.values()) / len(r.scores) for r in rs if r.scores]
    return max(overall) - min(overall) >= spread


def progress(actor: User, campaign_id: int) -> list[dict]:
    """Per reviewer: name, done, total (for the analyst's campaign page)."""
    users.require(actor, *ANALYSTS)
    with db.session() as s:
        rows = s.execute(
            select(User.name, func.count(Assignment.id), func.count(Rating.id))
            .join(Assignment, Assignment.reviewer_id == User.id)
            .outerjoin(Rating, (Rating.item_id == Assignment.item_id) & (Rating.reviewer_id == User.id))
            .where(Assignment.campaign_id == campaign_id).group_by(User.name).order_by(User.name)).all()
    return [{"reviewer": n, "done": d, "total": t} for n, t, d in rows]


def ratings_table(actor: User, campaign_id: int) -> list[dict]:
    """Every rating with its item and reviewer, model names included (analysts only)."""
    users.require(actor, *ANALYSTS)
    with db.session() as s:
        rows = s.execute(select(Rating, CampaignItem, User.name).join(CampaignItem, CampaignItem.id == Rating.item_id)
                         .join(User, User.id == Rating.reviewer_id).where(Rating.campaign_id == campaign_id)
                         .order_by(Rating.item_id, User.name)).all()
    out = []
    for rating, item, reviewer in rows:
        question = next((m["content"] for m in reversed(item.prompt) if m["role"] == "user"), "")
        row = {"item": item.id, "example": item.example_index + 1, "reviewer": reviewer, "model": item.model,
               "gold": item.gold, "question": question, "comment": rating.comment,
               "safety_flag": rating.safety_flag, "updated_at": rating.updated_at.isoformat()}
        if "candidate" in item.answers:  # augmentation: the decision, the candidate, the edit
            row.update(decision=rating.vote, candidate=json.dumps(item.answers["candidate"]), edit=rating.correction)
        elif rating.correction is not None:
            row.update(answer=item.answers["answer"], correction=rating.correction)
        elif rating.scores:
            row.update({c: rating.scores.get(c) for c in CRITERIA})
            row["answer"] = item.answers["answer"]
        else:
            row.update(vote=rating.vote, **{f"vote_{c}": (rating.criterion_votes or {}).get(c) for c in CRITERIA},
                       base_answer=item.answers["base"], finetuned_answer=item.answers["finetuned"],
                       base_words=len(item.answers["base"].split()),
                       finetuned_words=len(item.answers["finetuned"].split()))
        out.append(row)
    return out


def parse_gold(text: str, kind: str) -> dict[int, str]:
    """ "3:finetuned, 7:tie" (pairwise) or "3:5, 8:2" (ratings: expected accuracy) -> {2: "finetuned", 6: "tie"}:
    example numbers as the Evaluate page shows them (1-based) to the outputs' 0-based indexes."""
    gold = {}
    for part in (p.strip() for p in (text or "").replace(";", ",").split(",")):
        if not part:
            continue
        number, _, expected = part.partition(":")
        if not number.strip().isdigit() or int(number) < 1 or not expected.strip():
            raise ReviewError(f"Gold item {part!r}: write example number:expected, e.g. 3:finetuned.")
        gold[int(number) - 1] = expected.strip().lower()
    allowed = ("base", "finetuned", "tie") if kind == "pairwise" else ("1", "2", "3", "4", "5")
    for k, v in gold.items():
        if v not in allowed:
            raise ReviewError(f"Gold item {k + 1}: the expected answer must be one of {', '.join(allowed)}.")
    return gold
