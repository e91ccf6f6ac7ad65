"""Conversation trees: several records that share their opening turns and then branch (human-written chat data is
often a tree flattened into one record per path, as in OpenAssistant: one prompt, several ranked replies, each
continued). Branches are not near duplicates and not contradictions; they are reported once, as a tree, and the fix
keeps one branch per tree: the best-ranked where the records carry a rank, else the first.

A tree is a group of two or more records with the same first user turn (case and spacing folded) in which at least
one record goes on past its first answer, or the records carry a rank or a tree id (OpenAssistant's message_tree_id
and the like). Sibling answers are branches whatever their depth: once a file holds one such tree it is a flattened
forest, and single-turn records that share a prompt are sibling replies too (still reported, as branches, with the
fix that keeps one). Only in a file with no tree do single-turn records that share a prompt and disagree stay
contradictions.
"""

from __future__ import annotations

import re
from collections import defaultdict

from engine.data.report import Finding, Fix
from engine.data.shapes import Record

RANK_KEYS = ("rank", "ranking", "reply_rank")
TREE_KEYS = ("message_tree_id", "tree_id", "parent_id", "parent_message_id", "thread_id")
_SPACE = re.compile(r"\s+")


def _opening(rec: Record) -> str | None:
    first = next((m["content"] for m in rec.turns if m["role"] == "user"), None)
    return _SPACE.sub(" ", first.casefold()).strip() if first else None


def _turns(rec: Record) -> int:
    return sum(1 for m in rec.turns if m["role"] == "user")


def rank_of(rec: Record) -> float | None:
    for key in RANK_KEYS:
        value = rec.extra.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def trees(records: list[Record]) -> list[list[int]]:
    """Indexes (into records) of each tree, in file order."""
    by_opening: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        key = _opening(rec)
        if key:
            by_opening[key].append(i)
    groups = [members for members in by_opening.values() if len(members) >= 2]
    found = [m for m in groups if any(_turns(records[i]) > 1 or _tree_marked(records[i]) for i in m)]
    if any(_forest_evidence(records, m) for m in found):
        return groups  # a flattened forest: single-turn siblings are sibling replies, as deeper ones are
    return found


def _tree_marked(rec: Record) -> bool:
    return rank_of(rec) is not None or any(rec.extra.get(key) not in (None, "") for key in TREE_KEYS)


def _forest_evidence(records: list[Record], tree: list[int]) -> bool:
    """A tree that can only come from flattening one: its records carry ranks or tree ids, or two of them share their
    first answer as well as their opening and then diverge (two chats that merely open alike do not)."""
    if any(_tree_marked(records[i]) for i in tree):
        return True
    distinct = {tuple((m["role"], m["content"]) for m in records[i].turns) for i in tree if _turns(records[i]) > 1}
    answers = [next((c for r, c in turns if r == "assistant"), "") for turns in distinct]  # exact copies count once
    return len(answers) != len(set(answers))



def kept_branch(records: list[Record], tree: list[int]) -> int:
    """The branch the fix keeps: the lowest rank (rank 0 is the best in OpenAssistant), else the first."""
    ranked = [i for i in tree if rank_of(records[i]) is not None]
    return min(ranked, key=lambda i: (rank_of(records[i]), i)) if ranked else tree[0]


def check_branches(records: list[Record], groups: list[list[int]] | None = None) -> Finding | None:
    groups = trees(records) if groups is None else groups
    details: dict[int, str] = {}
    for tree in groups:
        keep = kept_branch(records, tree)
        how = "best-ranked" if rank_of(records[keep]) is not None else "first"
        for i in tree:
            if i != keep:
                details[records[i].location] = (f"a branch of the conversation that {records[keep].location} "
                                                f"starts (that one, the {how}, is kept)")
    if not details:
        return None
    locations = sorted(details)
    return Finding(
        "conversation_branches",
        f"{len(groups)} conversation trees: records that share their opening turns and then branch (a tree "
        "flattened into one record per path). Their shared turns are trained on once per branch; keep one branch "
        "per tree, or keep them all if the variety is wanted. The fix drops the records listed here.",
        locations, Fix("keep_one_branch", f"Keep one branch per tree (drops the {len(locations):,} records listed)"),
        details=details)


def same_tree(groups: list[list[int]], n: int) -> list[int]:
    """tree id per record index (-1 when in no tree): to leave branch pairs out of duplicates and contradictions."""
    owner = [-1] * n
    for t, tree in enumerate(groups):
        for i in tree:
            owner[i] = t
    return owner
