"""Exact duplicates, near-duplicates (MinHash LSH on word 3-gram shingles) and contradictions.

Near-duplicate clusters are also what the splitter keeps on one side, so that no test example has a near copy in
train. Candidates from LSH are verified with the exact Jaccard similarity of their shingle sets.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

import xxhash

from engine.data.checks import windows
from engine.data.report import Finding, Fix, drop_fix
from engine.data.shapes import Record

# Near duplicates: estimated Jaccard similarity of word shingles >= 0.8 with 128 MinHash permutations (Lee et al.
# 2022, Deduplicating Training Data Makes Language Models Better, use 0.8 with MinHash-LSH).
NEAR_THRESHOLD = 0.8
NUM_PERM = 128
SEED = 42
_WORD = re.compile(r"\w+")
_PUNCT = re.compile(r"[^\w\s]")


def record_hash(rec: Record) -> str:
    """Identity of a record: roles and contents (whitespace-trimmed) plus what it carries beside them (tools, a
    rejected answer). Used for exact duplicates and for locking the test split."""
    canon = json.dumps([[[m["role"], m["content"].strip()] for m in rec.turns], rec.extra], ensure_ascii=False,
                       sort_keys=True, default=str)
    return xxhash.xxh3_128_hexdigest(canon.encode("utf-8"))


def exact_groups(records: list[Record]) -> list[list[int]]:
    """Indexes (into records) of each group of identical conversations, in file order."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        groups[record_hash(rec)].append(i)
    return [g for g in groups.values() if len(g) > 1]


def check_exact(records: list[Record]) -> Finding | None:
    groups = exact_groups(records)
    if not groups:
        return None
    pairs = [(records[i].location, records[g[0]].location) for g in groups for i in g[1:]]
    pairs.sort()
    extra = [p[0] for p in pairs]
    return Finding(
        "exact_duplicate",
        f"Exact copies of an earlier record ({len(groups)} groups): copies over-weight those examples and "
        "can leak across the split.",
        extra, Fix("drop_exact_duplicates", "Drop the extra copies (keeps the first)"),
        details={a: f"copy of {b}" for a, b in pairs}, pairs=pairs)


def shingles(text: str) -> list[str]:
    """Word 3-grams of the lower-cased text; character 5-grams for text written without spaces (e.g. Chinese)."""
    words = _WORD.findall(text.lower())
    if len(words) >= 3 and len(words) * 12 >= len(text):
        return [f"{a} {b} {c}" for a, b, c in zip(words, words[1:], words[2:])]
    if len(words) >= 3:
        compact = "".join(words)
        return [compact[i:i + 5] for i in range(max(len(compact) - 4, 1))]
    return words or [text.strip().lower()]


def char_shingles(text: str) -> list[str]:
    """Character 5-grams of the case- and space-folded text: a one-character edit changes at most 5 of them, so a
    short record edited by one character still reads as a near copy (word 3-grams lose 3 of some 25)."""
    folded = " ".join(text.casefold().split())
    return [folded[i:i + 5] for i in range(max(len(folded) - 4, 1))]


def _conversation_text(rec: Record) -> str:
    # The system prompt is left out: a shared prompt would make every pair of records look alike. A very long
    # message is represented by its first and last 50,000 characters (engine.data.checks.windows.sample).
    return "\n".join(windows.sample(m["content"]) for m in rec.turns if m["role"] != "system")


class DisjointSets:
    """Union-find over record indexes: which records must be treated as one group."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, members: list[int]) -> None:
        root = self.find(members[0])
        for j in members[1:]:
            self.parent[self.find(j)] = root

    def groups(self) -> list[list[int]]:
        """Every group, singletons included, members in index order."""
        out: dict[int, list[int]] = defaultdict(list)
        for i in range(len(self.parent)):
            out[self.find(i)].append(i)
        return list(out.values())


def near_clusters(records: list[Record], threshold: float = NEAR_THRESHOLD, shingler=shingles) -> list[list[int]]:
    """Clusters (indexes into records) of conversations whose shingle sets have Jaccard >= threshold.

    Exact duplicates fall in the same cluster as their original. `shingler` is word 3-grams (the report and the
    split) or `char_shingles` (the test lock's second look).
    """
    from rensa import RMinHash, RMinHashLSH  # only the near-duplicate check needs it

    if len(records) < 2:
        return []
    # Shingles are streamed into the digest matrix and recomputed only for LSH candidates: keeping them all would
    # cost more memory than the records themselves.
    matrix = RMinHash.digest_matrix_from_token_sets((shingler(_conversation_text(r)) for r in records), NUM_PERM,
                                                    SEED)
    lsh = RMinHashLSH(threshold, NUM_PERM, _bands(threshold))
    # One pass flags the rows that share a band with any other row; only those are queried one by one.
    flags = lsh.insert_matrix_and_query_duplicate_flags(matrix, 0)
    sets = DisjointSets(len(records))
    frozen: dict[int, frozenset] = {}

    def shingle_set(i: int) -> frozenset:
        if i not in frozen:
            frozen[i] = frozenset(shingler(_conversation_text(records[i])))
        return frozen[i]

    def exact_jaccard(i: int, j: int) -> float:
        a, b = shingle_set(i), shingle_set(j)
        return len(a & b) / max(len(a | b), 1)

    for i, flagged in enumerate(flags):
        if not flagged:
            continue
        m = RMinHash(NUM_PERM, SEED)
        m.update(list(shingle_set(i)))
        for j in lsh.query(m):
            if j > i and sets.find(i) != sets.find(j) and exact_jaccard(i, j) >= threshold:
                sets.union([i, j])
    return [g for g in sets.groups() if len(g) > 1]


def _bands(threshold: float) -> int:
    # 16 bands of 8 rows: a pair at Jaccard 0.8 becomes a candidate with probability 1-(1-0.8^8)^16 = 0.94,
    # one at 0.9 with probability 0.9998; 32 bands of 4 for lower thresholds.
    return 16 if threshold >= 0.7 else 32


def check_near(records: list[Record], threshold: float = NEAR_THRESHOLD,
               clusters: list[list[int]] | None = None, tree_of: list[int] | None = None) -> Finding | None:
    """tree_of: each record's conversation tree (engine.data.checks.branches), -1 for none; branches of one tree are
    reported as such, not as near copies."""
    clusters = near_clusters(records, threshold) if clusters is None else clusters
    hashes: dict = {}
    pairs = []
    for cluster in clusters:
        first = cluster[0]
        seen = {record_hash(records[first])}
        for i in cluster[1:]:
            if tree_of is not None and tree_of[i] != -1 and tree_of[i] == tree_of[first]:
                continue
            h = hashes.setdefault(i, record_hash(records[i]))
            if h in seen:
                continue  # an exact copy: reported as exact_duplicate
            seen.add(h)
            pairs.append((records[i].location, records[first].location))
    if not pairs:
        return None
    pairs.sort()
    locs = [p[0] for p in pairs]
    return Finding(
        "near_duplicate",
        f"Near copies of an earlier record (Jaccard >= {threshold:g} on word 3-grams): they add little and "
        "can leak between train and test.",
        locs, Fix("drop_near_duplicates", "Drop the near copies (keeps the first of each cluster)"),
        details={a: f"near copy of {b}" for a, b in pairs}, pairs=pairs)


_SPACES = re.compile(r"\s+")


def normalized_prompt(rec: Record) -> str:
    parts = [m["content"] for m in rec.turns[:-1] if m["role"] in ("system", "user")]
    return _SPACES.sub(" ", _PUNCT.sub(" ", " ".join(parts).lower())).strip()  # no list of every word


def check_contradictions(records: list[Record], tree_of: list[int] | None = None) -> Finding | None:
    """Same normalized prompt, materially different final answers (token-set similarity under 50%); branches of one
    conversation tree excepted (tree_of as for check_near)."""
    from rapidfuzz import fuzz  # only the near-duplicate check needs it

    groups: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        if rec.turns[-1]["role"] == "assistant":
            groups[normalized_prompt(rec)].append(i)
    pairs = []
    for prompt, members in groups.items():
        if len(members) < 2 or not prompt:
            continue
        first = members[0]
        base = windows.sample(records[first].turns[-1]["content"])
        for i in members[1:]:
            if tree_of is not None and tree_of[i] != -1 and tree_of[i] == tree_of[first]:
                continue
            answer = windows.sample(records[i].turns[-1]["content"])
            if fuzz.token_set_ratio(base, answer) < 50:
                pairs.append((records[i].location, records[first].location))
    if not pairs:
        return None
    pairs.sort()
    locs = sorted({loc for p in pairs for loc in p})
    return Finding(
        "contradiction",
        "The same prompt with materially different answers: the model learns to pick one at random. Keep "
        "the right answer and drop the others.",
        locs, drop_fix("contradiction"),
        details={a: f"answers the prompt of {b} differently" for a, b in pairs}, pairs=pairs)
