"""Preference pairs: a prompt, the answer people chose and the one they rejected (a Record whose last turn is the
chosen answer, with the rejected answer in extra["rejected"], as every preference shape reads), and the checks a
preference run needs before it starts, in the same report as every other finding:

- pref_identical: chosen and rejected are the same text (nothing to learn; DPO's loss is flat on it);
- pref_empty_side: one side is empty;
- pref_opposite: the same prompt with opposite preferences (A over B in one pair, B over A in another);
- pref_length_bias: the chosen answer is the longer one in most pairs (DPO then learns length; said by how much,
  with Wilson's interval of the share);
- pref_prompt_too_long: the prompt alone fills max_length, so both answers are cut away;
- feedback_one_sided: unpaired feedback (KTO's shape: one answer labelled good or bad) whose labels are all the same,
  so there is no contrast to learn from.
A pair whose prompt is a locked test prompt is refused at training (prompt_keys, engine.data.test_lock).
Every check is one pass over the pairs (dictionaries keyed by normalised text), so hostile data stays linear."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict, deque
from dataclasses import replace

import xxhash

from engine.data.report import Finding, drop_fix
from engine.data.shapes import Record
from engine.stat_helpers import wilson

SHAPES = ("preference", "sharegpt_preference", "openai_preference")  # the shapes whose records are pairs
FEEDBACK_SHAPE = "feedback"  # prompt + completion + label: unpaired feedback (KTO)
LENGTH_BIAS_SHARE = 0.65  # flagged when the chosen answer is longer in at least this share of pairs ...
LENGTH_BIAS_MIN_PAIRS = 10  # ... of at least this many, and the interval's low end is above one half
SHOWN = 200  # locations kept per finding


def is_pair(rec: Record) -> bool:
    return "rejected" in rec.extra and bool(rec.messages) and rec.turns[-1]["role"] == "assistant"


def prompt_of(rec: Record) -> list[dict]:
    return rec.turns[:-1]


def chosen_of(rec: Record) -> str:
    return str(rec.turns[-1].get("content") or "")


def rejected_of(rec: Record) -> str:
    value = rec.extra.get("rejected")
    return value if isinstance(value, str) else ""


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def prompt_key(turns: list[dict]) -> str:
    """A prompt's identity: its system and user turns (and earlier answers), case and spacing ignored."""
    parts = [[m.get("role"), _norm(str(m.get("content") or ""))] for m in turns]
    return xxhash.xxh3_128_hexdigest(json.dumps(parts, ensure_ascii=False).encode("utf-8"))


def pairs_of(records: list[Record]) -> list[Record]:
    return [r for r in records if is_pair(r)]


def label_of(rec: Record) -> bool | None:
    """A feedback record's label: True (a good answer), False (a bad one), None when it is not feedback."""
    value = rec.extra.get("label")
    return value if isinstance(value, bool) and bool(rec.messages) and rec.turns[-1]["role"] == "assistant" else None


def feedback_of(records: list[Record]) -> list[Record]:
    return [r for r in records if label_of(r) is not None]


def feedback_as_pairs(records: list[Record]) -> tuple[list[Record], int]:
    """Feedback ready for scoring: each answer labelled bad becomes the rejected side of an answer labelled good to
    the same prompt (in file order, one each), so the held-out feedback is scored as preference pairs; answers
    labelled bad never serve as references or examples. Returns (records, bad answers left without a good one)."""
    good_of: dict[str, deque[int]] = defaultdict(deque)
    for i, rec in enumerate(records):
        if label_of(rec) is True:
            good_of[prompt_key(prompt_of(rec))].append(i)
    rejected: dict[int, str] = {}
    unmatched = 0
    for rec in records:
        if label_of(rec) is False:
            free = good_of.get(prompt_key(prompt_of(rec)))
            if free:
                rejected[free.popleft()] = chosen_of(rec)
            else:
                unmatched += 1
    kept = [replace(rec, extra={**rec.extra, "rejected": rejected[i]}) if i in rejected else rec
            for i, rec in enumerate(records) if label_of(rec) is not False]
    return kept, unmatched


def objective_of(records: list[Record]) -> str:
    """The objective a file's records train with by default: dpo for pairs, kto for unpaired feedback, else sft."""
    if any(is_pair(r) for r in records):
        return "dpo"
    return "kto" if any(label_of(r) is not None for r in records) else "sft"


def check_preferences(records: list[Record], counter, max_length: int) -> list[Finding]:
    """The preference findings of a file's usable records (none when it holds neither pairs nor feedback)."""
    pairs = pairs_of(records)
    found = [_identical(pairs), _empty(pairs), _opposite(pairs), _length_bias(pairs),
             _prompt_too_long(pairs, counter, max_length)] if pairs else []
    found.append(_one_sided(feedback_of(records)))
    return [f for f in found if f is not None]


def _one_sided(feedback: list[Record]) -> Finding | None:
    labels = {label_of(r) for r in feedback}
    if len(feedback) < 2 or len(labels) != 1:
        return None
    good = labels == {True}
    return Finding("feedback_one_sided", f"All {len(feedback)} feedback records are labelled "
                   f"{'good (true)' if good else 'bad (false)'}: KTO learns from the contrast between good and bad "
                   f"answers, so add answers labelled {'bad (false)' if good else 'good (true)'}.",
                   [r.location for r in feedback[:SHOWN]])


def _identical(pairs: list[Record]) -> Finding | None:
    hits = [r.location for r in pairs if chosen_of(r).strip() and _norm(chosen_of(r)) == _norm(rejected_of(r))]
    if not hits:
        return None
    return Finding("pref_identical", f"{len(hits)} pairs have the same chosen and rejected answer (first: "
                   f"{pairs[0].where.lower()} {hits[0]}); they teach nothing.", hits[:SHOWN], drop_fix("pref_identical"))


def _empty(pairs: list[Record]) -> Finding | None:
    hits = [r.location for r in pairs if not chosen_of(r).strip() or not rejected_of(r).strip()]
    if not hits:
        return None
    return Finding("pref_empty_side", f"{len(hits)} pairs have an empty chosen or rejected answer (first: "
                   f"{pairs[0].where.lower()} {hits[0]}).", hits[:SHOWN], drop_fix("pref_empty_side"))


def _opposite(pairs: list[Record]) -> Finding | None:
    seen: dict[tuple[str, str, str], int] = {}
    hits: list[tuple[int, int]] = []
    for r in pairs:
        key = prompt_key(prompt_of(r))
        chosen, rejected = _norm(chosen_of(r)), _norm(rejected_of(r))
        if chosen == rejected:
            continue
        other = seen.get((key, rejected, chosen))
        if other is not None:
            hits.append((other, r.location))
        seen.setdefault((key, chosen, rejected), r.location)
    if not hits:
        return None
    locations = sorted({loc for pair in hits for loc in pair})
    return Finding("pref_opposite", f"{len(hits)} prompts are preferred both ways (A over B and B over A; first: "
                   f"{pairs[0].where.lower()}s {hits[0][0]} and {hits[0][1]}); keep the one you mean.",
                   locations[:SHOWN], drop_fix("pref_opposite"), pairs=hits[:SHOWN])


def _length_bias(pairs: list[Record]) -> Finding | None:
    lengths = [(len(chosen_of(r)), len(rejected_of(r))) for r in pairs]
    decided = [(c, j) for c, j in lengths if c != j]
    if len(decided) < LENGTH_BIAS_MIN_PAIRS:
        return None
    longer = [r.location for r, (c, j) in zip(pairs, lengths, strict=True) if c > j]
    share = len(longer) / len(decided)
    low, high = wilson(len(longer), len(decided))
    if share < LENGTH_BIAS_SHARE or low <= 0.5:
        return None
    ratio = statistics.median(c / j for c, j in decided if j) if any(j for _, j in decided) else float("inf")
    return Finding("pref_length_bias", f"The chosen answer is the longer one in {share:.0%} of {len(decided)} pairs "
                   f"(95% interval {low:.0%} to {high:.0%}; median {ratio:.1f}x the rejected answer's length): DPO "
                   "will learn that longer is better. Add pairs where the shorter answer wins, or expect longer "
                   "answers.", longer[:SHOWN])


def _prompt_too_long(pairs: list[Record], counter, max_length: int) -> Finding | None:
    texts = ["\n".join(str(m.get("content") or "") for m in prompt_of(r)) for r in pairs]
    counts = counter.count(texts)
    hits = [r.location for r, n in zip(pairs, counts, strict=True) if n >= max_length]
    if not hits:
        return None
    return Finding("pref_prompt_too_long", f"{len(hits)} pairs have a prompt of {max_length} tokens or more (first: "
                   f"{pairs[0].where.lower()} {hits[0]}): at max_length {max_length} both answers are cut away and "
                   "the pair teaches nothing. Raise max_length or shorten the prompts.", hits[:SHOWN],
                   drop_fix("pref_prompt_too_long"))
