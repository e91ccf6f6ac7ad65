"""Preference data from what the studio already collects: pairwise review campaigns (each decided item becomes a
chosen/rejected pair), correction campaigns (the reviewer's corrected answer is chosen, the model's rejected) and
uploaded preference files (any shape the reader knows). The result is a new, immutable dataset version in the
"preference" shape, every record carrying its provenance (which campaign and item, with its votes; which file and
line).

Votes on one pairwise item: ties and "both bad" decide nothing (the item is dropped and counted); when reviewers
disagree, the majority is kept only when it is clear (at least two thirds of the decided votes and two votes more than
the other side), else the item is dropped as contested and counted.

With `unpaired`, the version is unpaired feedback for KTO instead ("feedback" shape): every pair becomes its chosen
answer labelled good and its rejected one labelled bad, next to the answers a later stage found rated one way only.

    studio prefs build --project P --from campaign:ID --from FILE [--name NAME] [--unpaired]
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import select

from engine.data import preferences
from engine.data.loading import load_records
from engine.data.quality import usable
from engine.data.versions import import_file
from engine.review import campaigns
from engine.store import db, users, workspace
from engine.store.tables import Campaign, CampaignItem, DatasetVersion, Rating, User

CLEAR_SHARE = 2 / 3  # a contested item keeps its majority from this share of the decided votes ...
CLEAR_MARGIN = 2  # ... and this many more votes than the other side


class PreferenceError(campaigns.ReviewError):
    """A preference source that cannot be used; the message says which and why."""


@dataclass
class BuildResult:
    version_id: int
    label: str
    pairs: int
    by_source: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)  # ties, both_bad, contested, not_pairs, undecided
    feedback: dict[str, int] | None = None  # unpaired: the answers labelled good and bad

    def to_json(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        dropped = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in self.dropped.items() if n)
        sources = ", ".join(f"{n} from {s}" for s, n in self.by_source.items())
        made = f"{self.pairs} preference pairs ({sources})" if self.feedback is None else \
            f"{self.feedback['good'] + self.feedback['bad']} feedback records for KTO ({self.feedback['good']} good, " \
            f"{self.feedback['bad']} bad; {sources})"
        return f"{self.label}: {made}" + (f"; dropped: {dropped}." if dropped else ".")


def decide(votes: Counter) -> tuple[str | None, str | None]:
    """(the winning model, or None; why an item is dropped, or None) from one item's votes."""
    base, tuned = votes.get("base", 0), votes.get("finetuned", 0)
    if base == tuned == 0:
        return None, "both_bad" if votes.get("both_bad", 0) > votes.get("tie", 0) else "ties"
    winner, most, least = ("finetuned", tuned, base) if tuned > base else ("base", base, tuned)
    if least and (most / (most + least) < CLEAR_SHARE or most - least < CLEAR_MARGIN):
        return None, "contested"
    return winner, None


def from_campaign(campaign_id: int, dropped: Counter) -> list[dict]:
    """The pairs of a pairwise or correction campaign, as preference rows with provenance."""
    with db.session() as s:
        campaign = s.get(Campaign, campaign_id)
        if campaign is None:
            raise PreferenceError(f"There is no campaign {campaign_id}.")
        items = {i.id: i for i in s.scalars(select(CampaignItem).where(CampaignItem.campaign_id == campaign_id))}
        ratings = list(s.scalars(select(Rating).where(Rating.campaign_id == campaign_id).order_by(Rating.id)))
    if campaign.kind == "pairwise":
        return _pairwise(campaign, items, ratings, dropped)
    if campaign.kind == campaigns.CORRECTION:
        return _corrections(campaign, items, ratings, dropped)
    raise PreferenceError(f"Campaign {campaign_id} is a {campaign.kind} campaign; preference pairs come from pairwise "
                          "or correction campaigns.")


def _pairwise(campaign: Campaign, items: dict, ratings: list[Rating], dropped: Counter) -> list[dict]:
    votes: dict[int, Counter] = {}
    for r in ratings:
        if r.vote:
            votes.setdefault(r.item_id, Counter())[r.vote] += 1
    rows = []
    for item_id in sorted(votes):
        winner, why = decide(votes[item_id])
        if winner is None:
            dropped[why or "undecided"] += 1
            continue
        item = items[item_id]
        loser = "base" if winner == "finetuned" else "finetuned"
        rows.append({"prompt": item.prompt, "chosen": item.answers[winner], "rejected": item.answers[loser],
                     "provenance": {"source": "campaign", "campaign": campaign.id, "item": item_id,
                                    "chosen_model": winner, "votes": dict(votes[item_id])}})
    dropped["undecided"] += len(items) - len(votes)
    return rows


def _corrections(campaign: Campaign, items: dict, ratings: list[Rating], dropped: Counter) -> list[dict]:
    latest = {r.item_id: r for r in ratings if r.correction}  # ordered by id: the last correction of each item wins
    rows = []
    for item_id, rating in sorted(latest.items()):
        item = items[item_id]
        answer, corrected = str(item.answers.get("answer") or ""), str(rating.correction or "")
        if " ".join(corrected.split()) == " ".join(answer.split()):
            dropped["unchanged"] += 1
            continue
        rows.append({"prompt": item.prompt, "chosen": corrected, "rejected": answer,
                     "provenance": {"source": "correction", "campaign": campaign.id, "item": item_id,
                                    "reviewer": rating.reviewer_id}})
    dropped["undecided"] += len(items) - len(latest)
    return rows


def from_file(path: Path, dropped: Counter) -> list[dict]:
    """The pairs of an uploaded preference file (prompt/chosen/rejected, ShareGPT or OpenAI preference shapes)."""
    loaded = load_records(Path(path))
    good = usable(loaded.records)
    pairs = preferences.pairs_of(good)
    dropped["not_pairs"] += len(loaded.records) - len(pairs)
    return [{"prompt": preferences.prompt_of(r), "chosen": preferences.chosen_of(r),
             "rejected": preferences.rejected_of(r),
             "provenance": {"source": "file", "file": Path(path).name, r.where.lower(): r.location}} for r in pairs]


def unpair(row: dict) -> list[dict]:
    """A preference row as KTO's two feedback rows: the chosen answer labelled good, the rejected one bad."""
    return [{"prompt": row["prompt"], "completion": row[side], "label": side == "chosen",
             "provenance": {**row.get("provenance", {}), "side": side}} for side in ("chosen", "rejected")]


def build(actor: User, project_id: int, sources: list[str], name: str = "preferences",
          gathered: dict[str, list[dict]] | None = None, dropped: Counter | None = None,
          unpaired: list[dict] | None = None) -> BuildResult:
    """One preference dataset version from every source: `campaign:ID` or a file path, plus rows a later stage
    gathered (`gathered`: source -> rows, e.g. engine.monitor.preference_pairs) and what it dropped. With `unpaired`
    (a list: feedback rows a later stage found, maybe none) the version is unpaired feedback for KTO."""
    users.require(actor, *campaigns.ANALYSTS)
    if not sources and not gathered:
        raise PreferenceError("Choose at least one source: a pairwise or correction campaign (campaign:ID) or a "
                              "preference file.")
    dropped = dropped if dropped is not None else Counter()
    rows: list[dict] = [row for found in (gathered or {}).values() for row in found]
    by_source: dict[str, int] = {source: len(found) for source, found in (gathered or {}).items()}
    for source in sources:
        kind, _, rest = source.partition(":")
        if kind == "campaign" and rest.strip().isdigit():
            found = from_campaign(int(rest), dropped)
        elif Path(source).is_file():
            found = from_file(Path(source), dropped)
        else:
            raise PreferenceError(f"Cannot read the source {source[:120]!r}: write campaign:ID, monitor:VERSION or the path of a "
                                  "preference file.")
        by_source[source if kind == "campaign" else Path(source).name] = len(found)
        rows += found
    if not rows and not unpaired:
        raise PreferenceError("The sources hold no decided preference pair (" + (", ".join(
            f"{n} {why.replace('_', ' ')}" for why, n in dropped.items() if n) or "nothing to read") + ").")
    pairs = len(rows)
    if unpaired is not None:
        rows = [half for row in rows for half in unpair(row)] + unpaired
    version = _store(project_id, rows, name, "preference" if unpaired is None else preferences.FEEDBACK_SHAPE)
    good = sum(1 for row in rows if row.get("label") is True)
    return BuildResult(version_id=version.id, label=f"{version.name} v{version.version}", pairs=pairs,
                       by_source=by_source, dropped={why: n for why, n in dropped.items() if n},
                       feedback=None if unpaired is None else {"good": good, "bad": len(rows) - good})


def _store(project_id: int, rows: list[dict], name: str, shape: str) -> DatasetVersion:
    folder = workspace.current().tmp
    folder.mkdir(parents=True, exist_ok=True)
    # a name of its own: two builds at once (page and CLI) must not write one file
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".jsonl", prefix="preferences-", dir=folder,
                                     delete=False) as f:
        path = Path(f.name)
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    try:
        return import_file(project_id, path, name, shape=shape)
    finally:
        path.unlink(missing_ok=True)
