"""Human review is the gate: an augmentation job's kept candidates open as a review campaign of kind "augment"
(each item shows the source record beside the candidate; reviewers accept, edit or reject it, with the same queue,
keyboard-friendly form and one-answer-per-reviewer rule as ratings), and only what reviewers accepted becomes data:
a child version of the source version, with provenance per record (method, teacher model, prompt template, source
line, reviewers, edited or not), and a split of it whose test part is the parent split's, unchanged and locked; the
new records go to train and validation by the parent split's ratio.

An item is accepted when most of its reviewers accepted or edited it (a tie rejects); the text is the first
edit's, by time, else the candidate as generated.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from sqlalchemy import select

from engine.augment import job as augment_job
from engine.augment.options import AugmentError, AugmentOptions
from engine.data import split as splits
from engine.data import versions
from engine.data.loading import load_records
from engine.data.shapes import Record
from engine.data.test_lock import lock
from engine.jobs import supervisor
from engine.review import campaigns
from engine.review.edits import parse_edit  # noqa: F401 - the gate's public API
from engine.store import db, users, workspace
from engine.store.tables import Campaign, CampaignItem, DatasetVersion, Rating, Split, User

KIND = "augment"
DECISIONS = ("accept", "reject")


def candidates(job_id: int) -> list[dict]:
    job = supervisor.get_run(job_id)
    path = supervisor.run_path(job) / augment_job.KEPT
    if job.kind != "augment" or not path.is_file():
        raise AugmentError(f"Job {job_id} is not a finished augmentation with candidates.")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def open_review(actor: User, job_id: int, reviewer_ids: list[int], overlap: int = 1,
                name: str | None = None, seed: int = 0) -> Campaign:
    actor = users.require(actor, *campaigns.ANALYSTS)
    job = supervisor.get_run(job_id)
    rows = candidates(job_id)
    if not rows:
        raise AugmentError(f"Job {job_id} kept no candidate to review.")
    sources = {r.location: r for r in AugmentOptions_sources(job)}
    reviewers = campaigns.chosen_reviewers(reviewer_ids, overlap)
    rng = random.Random(seed)
    with db.session() as s:
        campaign = Campaign(project_id=job.project_id, kind=KIND, run_id=job.id, baseline="augment",
                            overlap=overlap, seed=seed, created_by=actor.id,
                            name=(name or f"augmentation {job.id} ({job.config.get('method')})")[:120])
        s.add(campaign)
        s.flush()
        items = []
        for i, row in enumerate(rows):
            source = sources.get(row["source_line"]) if row.get("source_line") is not None else None
            items.append(CampaignItem(campaign_id=campaign.id, example_index=i, model=None,
                                      prompt=source.turns if source else [],
                                      answers={"candidate": row["messages"]}))
        campaigns.assign_items(s, campaign, items, reviewers, overlap, rng)
        return campaign


def AugmentOptions_sources(job) -> list[Record]:  # noqa: N802 - the job's own source records
    from engine.augment.options import source_records

    return source_records(AugmentOptions.model_validate(job.config))


def decisions(campaign_id: int) -> list[dict]:
    """Per item: accepted or not, the final messages, the reviewers, edited or not."""
    with db.session() as s:
        items = list(s.scalars(select(CampaignItem).where(CampaignItem.campaign_id == campaign_id)
                               .order_by(CampaignItem.example_index)))
        ratings = list(s.scalars(select(Rating).where(Rating.campaign_id == campaign_id)
                                 .order_by(Rating.updated_at, Rating.id)))
        names = {u.id: u.name for u in s.scalars(select(User))}
    by_item: dict[int, list[Rating]] = {}
    for r in ratings:
        by_item.setdefault(r.item_id, []).append(r)
    out = []
    for item in items:
        rs = by_item.get(item.id, [])
        yes = [r for r in rs if r.vote == "accept"]
        edit = next((r.correction for r in yes if r.correction), None)
        out.append({"index": item.example_index, "reviewed": bool(rs), "accepted": len(yes) * 2 > len(rs),
                    "messages": json.loads(edit) if edit else item.answers["candidate"], "edited": bool(edit),
                    "reviewers": [names.get(r.reviewer_id, "?") for r in rs]})
    return out


def accept(actor: User, campaign_id: int) -> DatasetVersion:
    """The child version: the source version's records plus every accepted candidate, and its split."""
    actor = users.require(actor, *campaigns.ANALYSTS)
    campaign = campaigns.get_campaign(campaign_id)
    if campaign.kind != KIND:
        raise AugmentError(f"Campaign {campaign_id} is not an augmentation review.")
    job = supervisor.get_run(campaign.run_id)
    options = AugmentOptions.model_validate(job.config)
    rows = candidates(job.id)
    chosen = [(d, rows[d["index"]]) for d in decisions(campaign_id) if d["accepted"]]
    if not chosen:
        raise AugmentError("No candidate was accepted yet: nothing to add.")
    parent = versions.get_version(options.version_id)
    base = versions.load_version(parent).records
    new = [Record(len(base) + i + 1, d["messages"]) for i, (d, _) in enumerate(chosen)]
    provenance = [{"line": len(base) + i + 1, "method": row["method"], "teacher_model": row["teacher_model"],
                   "template": row["template"], "source_line": row["source_line"], "reviewers": d["reviewers"],
                   "edited": d["edited"]} for i, (d, row) in enumerate(chosen)]
    fix = {"id": "augment", "job": job.id, "campaign": campaign_id, "added": len(new), "by": actor.name,
           "records": provenance}
    child = versions.create_child(parent, base + new, fix)
    _child_split(options.split_id, child, new)
    return child


def _child_split(parent_split_id: int, child: DatasetVersion, new: list[Record]) -> Split:
    """The parent split's parts, the new records added to train and validation by its ratio; test unchanged."""
    parent = splits.get_split(parent_split_id)
    if parent is None:
        raise AugmentError("The source split no longer exists.")
    src = splits.split_path(parent, "train").parent
    parts = {name: load_records(src / f"{name}.jsonl").records for name in splits.PARTS}
    share = parent.ratios[1] / max(parent.ratios[0] + parent.ratios[1], 1e-9)
    rng = random.Random(child.id)
    for rec in new:
        parts["validation" if rng.random() < share else "train"].append(rec)
    rel = Path("splits") / f"{child.sha256[:16]}-from-split{parent.id}"
    result = splits.SplitResult(parts, len(new), {}, 0, 0)
    manifest = {"dataset_version": child.id, "dataset_sha256": child.sha256, "ratios": parent.ratios,
                "parent_split": parent.id, "test_unchanged": True}
    folder = workspace.current().root / rel
    hashes = splits.write_parts(result, folder, manifest)
    shutil.copyfile(src / "test.jsonl", folder / "test.jsonl")  # byte for byte: the locked test set is the parent's
    hashes["test"] = parent.test_sha256
    with db.session() as s:
        made = Split(dataset_version_id=child.id, seed=parent.seed, ratios=list(parent.ratios), folder=str(rel),
                     counts={k: len(v) for k, v in parts.items()}, overlap={**parent.overlap, "parent_split": parent.id},
                     test_sha256=hashes["test"], locked=True)
        s.add(made)
        s.flush()
        s.add_all(lock(made.id, parts["test"]))
        return made
