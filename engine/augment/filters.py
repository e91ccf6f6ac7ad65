"""What every generated candidate passes before a reviewer sees it, with the count dropped for each reason:

- not the asked shape (counted when the reply was parsed), format (roles, empty turns, no answer last);
- personal data and secrets (the studio's own checks), a language other than the data's, far longer than any record;
- the same as its source, an exact duplicate of a training record or of an earlier candidate;
- a near duplicate (MinHash on word 3-grams, as the quality report) of a training record other than its own source,
  or of an earlier candidate: compared on the user turns, since a paraphrase keeps its source's answer;
- a copy or near copy of a locked test record or a validation record (the whole record, then its user turns alone,
  words and characters): a paraphrase of a test question in training is leakage.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter

from engine.data import split as splits
from engine.data.checks import duplicates, language, sensitive
from engine.data.loading import load_records
from engine.data.quality import usable
from engine.data.shapes import Record
from engine.data.test_lock import content_key, locked_records, near_copies

ROLES = {"system", "user", "assistant"}
LANGUAGE_SAMPLE = 2000
REASONS = {
    "shape": "not the asked shape", "format": "format (roles, empty turns, no answer last)",
    "pii": "personal data", "secret": "a secret", "language": "another language than the data's",
    "too_long": "far longer than any record", "same_as_source": "the same as its source",
    "duplicate": "a duplicate of a training record or another candidate",
    "near_duplicate": "a near duplicate of a training record or another candidate",
    "test_copy": "a copy or near copy of a locked test record",
    "validation_copy": "a copy or near copy of a validation record",
}


def prompt_only(rec: Record) -> Record:
    return Record(rec.location, [m for m in rec.turns if m["role"] == "user"])


def filter_results(options, sources: list[Record], results: list[dict]) -> tuple[list[dict], Counter]:
    """(kept candidates with provenance, dropped count by reason) from the job's results lines."""
    dropped: Counter = Counter()
    dropped["shape"] += sum(r.get("rejected", 0) for r in results)
    rows = [(r, messages) for r in results if not r.get("error") for messages in r.get("candidates", [])]
    cands = [Record(i + 1, [dict(m) for m in messages]) for i, (_, messages) in enumerate(rows)]
    reasons: dict[int, str] = {}
    longest = max((sum(len(m["content"]) for m in s.turns) for s in sources), default=0)
    for rec, (result, _) in zip(cands, rows):
        if not _well_formed(rec):
            reasons[rec.location] = "format"
        elif sum(len(m["content"]) for m in rec.turns) > 3 * longest + 2000:
            reasons[rec.location] = "too_long"
        elif result.get("source") is not None and content_key(rec) == content_key(sources[result["source"]]):
            reasons[rec.location] = "same_as_source"
    for finding, code in ((sensitive.check_pii(cands), "pii"), (sensitive.check_secrets(cands), "secret")):
        for loc in finding.locations if finding else []:
            reasons.setdefault(loc, code)
    _language(cands, sources, reasons)
    _leaks(options, cands, reasons)
    _duplicates(cands, rows, sources, reasons)
    kept = []
    for rec, (result, _) in zip(cands, rows):
        if rec.location in reasons:
            dropped[reasons[rec.location]] += 1
            continue
        kept.append({"messages": rec.messages, "key": result["key"], "method": options.method,
                     "source_line": sources[result["source"]].location if result.get("source") is not None else None,
                     "example_lines": [sources[i].location for i in result.get("examples", [])],
                     "teacher_model": options.teacher.model, "template": template_id(options)})
    return kept, +dropped


def template_id(options) -> str:
    """Which prompt template made the candidate (the method's, by content: an edited template is another one)."""
    names = {"paraphrase": ["paraphrase_" + options.scope], "synthetic": ["synthetic"],
             "backtranslate": ["to_language", "back"]}[options.method]
    text = "\n".join(options.templates[n] for n in names)
    return f"{'+'.join(names)}:{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _well_formed(rec: Record) -> bool:
    turns = rec.turns
    return (bool(turns) and all(isinstance(m.get("content"), str) and m["content"].strip() and m.get("role") in ROLES
                                for m in turns)
            and turns[-1]["role"] == "assistant" and any(m["role"] == "user" for m in turns))


def _language(cands: list[Record], sources: list[Record], reasons: dict[int, str]) -> None:
    """Candidates whose language is not the data's majority language (judged with up to 2,000 of the sources: the
    majority does not need them all)."""
    shift = len(cands)
    sample = random.Random(0).sample(sources, min(len(sources), LANGUAGE_SAMPLE))
    together = cands + [Record(shift + i + 1, s.messages) for i, s in enumerate(sample)]
    finding = language.check_language([r for r in together if r.messages])
    for loc in finding.locations if finding else []:
        if loc <= shift:
            reasons.setdefault(loc, "language")


def _leaks(options, cands: list[Record], reasons: dict[int, str]) -> None:
    """Copies of the locked test set and of the validation set, looked for once against both (whole records, then
    user turns alone); the few hits are then told apart."""
    made = splits.get_split(options.split_id)
    validation = usable(load_records(splits.split_path(made, "validation")).records) if made else []
    tests = locked_records()
    open_ = [r for r in cands if r.location not in reasons]
    protected = tests + validation
    if not protected or not open_:
        return
    hits = sorted(_near(open_, protected))
    in_test = _near([open_[i] for i in hits], tests) if tests else set()
    for k, i in enumerate(hits):
        reasons.setdefault(open_[i].location, "test_copy" if k in in_test else "validation_copy")


def _near(records: list[Record], protected: list[Record]) -> set[int]:
    if not records or not protected:
        return set()
    return near_copies(records, protected) | near_copies([prompt_only(r) for r in records],
                                                         [prompt_only(r) for r in protected])


def _duplicates(cands: list[Record], rows: list[tuple[dict, list]], sources: list[Record],
                reasons: dict[int, str]) -> None:
    """Exact, then near (user turns), against the training records and earlier candidates."""
    seen = {content_key(s) for s in sources}
    for rec in cands:
        if rec.location in reasons:
            continue
        key = content_key(rec)
        if key in seen:
            reasons[rec.location] = "duplicate"
        seen.add(key)
    open_ = [(rec, result) for rec, (result, _) in zip(cands, rows) if rec.location not in reasons]
    probes = [prompt_only(s) for s in sources] + [prompt_only(rec) for rec, _ in open_]
    n = len(sources)
    for cluster in duplicates.near_clusters(probes):
        members = sorted(cluster)
        for i in members:
            if i < n:
                continue
            rec, result = open_[i - n]
            own = result.get("source")
            earlier = [j for j in members if j < i and j != own]  # its own source is what it rewords
            if earlier:
                reasons.setdefault(rec.location, "near_duplicate")
