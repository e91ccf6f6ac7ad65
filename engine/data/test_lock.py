"""The locked test set: which records count as "a test record", and the refusal of any data that holds one.

A record is identified by its content key: the user and assistant turns, case and whitespace folded, the system
prompt left out. So "set one system prompt for all", re-casing or re-spacing a record does not unlock it. A near copy
is refused too, at the split's MinHash threshold (NEAR_THRESHOLD) on word 3-grams, as the split groups records, and
on character 5-grams, so a one-character edit of a short record does not unlock it either.

    content_key(record)                      the identity the lock uses
    locked_records(project_id)               the records of every locked test split (of the project)
    refuse_locked(records, purpose, project) raise LockedTestError if any record is a copy or near copy of one
"""

from __future__ import annotations

import json
import re

import xxhash
from sqlalchemy import select, update

from engine.data.checks.duplicates import NEAR_THRESHOLD, char_shingles, near_clusters, record_hash, shingles
from engine.data.loading import load_records
from engine.data.quality import usable
from engine.data.shapes import Record
from engine.errors import StudioError
from engine.store import db, workspace
from engine.store.tables import DatasetVersion, LockedRecord, Split

LOCKED_ROLES = ("user", "assistant")
_SPACE = re.compile(r"\s+")


class LockedTestError(StudioError, ValueError):
    """Data meant for training or model selection contains records of a locked test split."""


def content_key(rec: Record) -> str:
    turns = [[m["role"], _SPACE.sub(" ", m["content"].casefold()).strip()]
             for m in rec.messages or [] if m["role"] in LOCKED_ROLES]
    return xxhash.xxh3_128_hexdigest(json.dumps(turns, ensure_ascii=False).encode("utf-8"))


def _splits(project_id: int | None) -> list[Split]:
    with db.session() as s:
        q = select(Split).where(Split.locked.is_(True))
        if project_id is not None:
            q = q.join(DatasetVersion, Split.dataset_version_id == DatasetVersion.id).where(
                DatasetVersion.project_id == project_id)
        return list(s.scalars(q.order_by(Split.id)))


def locked_records(project_id: int | None = None) -> list[Record]:
    """The test records of every locked split (of one project, or of the workspace), each file read once."""
    out: list[Record] = []
    seen: set[str] = set()
    for made in _splits(project_id):
        if made.test_sha256 in seen:
            continue
        seen.add(made.test_sha256)
        path = workspace.current().root / made.folder / "test.jsonl"
        if path.is_file():
            out += usable(load_records(path).records)
    return out


def _backfill_keys() -> None:
    """Splits locked before content keys existed get them from their test files (once)."""
    with db.session() as s:
        pending = list(s.scalars(select(LockedRecord.split_id).where(LockedRecord.content_key.is_(None)).distinct()))
    for split_id in pending:
        with db.session() as s:
            made = s.get(Split, split_id)
        if made is None:  # its split was deleted: nothing to key
            continue
        path = workspace.current().root / made.folder / "test.jsonl"
        if not path.is_file():
            continue
        for rec in load_records(path).records:
            if rec.messages:
                with db.session() as s:
                    s.execute(update(LockedRecord).where(LockedRecord.split_id == split_id,
                                                         LockedRecord.record_hash == record_hash(rec))
                              .values(content_key=content_key(rec)))


def lock(split_id: int, records: list[Record]) -> list[LockedRecord]:
    return [LockedRecord(split_id=split_id, record_hash=record_hash(r), content_key=content_key(r)) for r in records]


def near_copies(records: list[Record], tests: list[Record], threshold: float = NEAR_THRESHOLD) -> set[int]:
    """Indexes of `records` that are copies (by content key) or near copies of any of `tests`: Jaccard >= threshold
    on word 3-grams (as the split groups them) or on character 5-grams (which a one-character edit of a short record
    hardly moves)."""
    keys = {content_key(t) for t in tests}
    found = {i for i, r in enumerate(records) if content_key(r) in keys}
    if tests and records:
        for shingler in (shingles, char_shingles):
            for cluster in near_clusters(tests + records, threshold, shingler):
                if any(i < len(tests) for i in cluster):
                    found.update(i - len(tests) for i in cluster if i >= len(tests))
    return found


def refuse_locked(records: list[Record], purpose: str = "training", project_id: int | None = None) -> None:
    """Raise LockedTestError if any record is a copy (content key), or a near copy, of a locked test record."""
    usable = [r for r in records if r.messages]
    if not usable:
        return
    _backfill_keys()
    keys = {content_key(r): r.location for r in usable}
    found: set[str] = set()
    with db.session() as s:
        for i in range(0, len(keys), 500):
            chunk = list(keys)[i:i + 500]
            found |= set(s.scalars(select(LockedRecord.content_key).where(LockedRecord.content_key.in_(chunk))))
    locations = {keys[k] for k in found}
    rest = [r for r in usable if r.location not in locations]
    locations |= {rest[i].location for i in near_copies(rest, locked_records(project_id))}
    if locations:
        locs = sorted(locations)
        raise LockedTestError(f"{len(locs)} records (first: {locs[0]}) are copies or near copies of a locked test "
                              f"split's records and cannot be used for {purpose}; the test split may only be used for "
                              "the final evaluation.")


def project_of(dataset_version_id: int | None) -> int | None:
    if dataset_version_id is None:
        return None
    with db.session() as s:
        version = s.get(DatasetVersion, dataset_version_id)
        return version.project_id if version is not None else None
