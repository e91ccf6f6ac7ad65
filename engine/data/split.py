"""Leakage-free train / validation / test splits, the locked test split, and contamination checks.

Records are grouped before splitting: exact copies, near-duplicates (the same MinHash clusters as the quality
report) and records that share a normalized prompt always land on the same side, so no test example has a copy or a
near copy in train. The overlap is measured again after the split and reported (0 by construction).

The test split is locked (engine.data.test_lock): its records' content keys are stored, and `refuse_locked` rejects any
training, early-stopping or model-selection data that holds a copy or near copy of one. A new split keeps every
record that is a copy or near copy of the project's locked test records (those of the versions it derives from
included) on the test side, so a fixed or edited dataset keeps its locked test set.

    studio split data.jsonl --out splits/ --ratios 0.8,0.1,0.1 --seed 0
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from engine.data import versions
from engine.data.checks.branches import trees
from engine.data.checks.duplicates import (
    NEAR_THRESHOLD,
    DisjointSets,
    char_shingles,
    near_clusters,
    normalized_prompt,
    record_hash,
    shingles,
)
from engine.data.loading import load_records
from engine.data.quality import usable
from engine.data.shapes import Record
from engine.data.test_lock import LockedTestError, lock, locked_records, near_copies, refuse_locked  # noqa: F401 - the split's public API
from engine.errors import StudioError
from engine.store import db, workspace
from engine.store.tables import DatasetVersion, Split

PARTS = ("train", "validation", "test")
# Contamination: a shared 13-word sequence, the n-gram the GPT-3 paper (Brown et al. 2020) used to find test data in
# training data.
NGRAM = 13
_WORD = re.compile(r"\w+")


class SplitError(StudioError, ValueError):
    pass


def parse_ratios(text: str) -> tuple[float, float, float]:
    try:
        ratios = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise SplitError(f"Cannot read the ratios {text!r}; write three numbers like 0.8,0.1,0.1.") from None
    return check_ratios(ratios)


def check_ratios(ratios) -> tuple[float, float, float]:
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6 or ratios[2] <= 0:
        raise SplitError("The ratios must be three non-negative numbers that add up to 1, with a non-empty test "
                         "share (for example 0.8,0.1,0.1).")
    return ratios[0], ratios[1], ratios[2]


@dataclass
class SplitResult:
    parts: dict[str, list[Record]]
    groups: int
    overlap: dict[str, int]
    left_out: int
    kept_in_test: int = 0  # records kept on the test side because they are (near) copies of locked test records

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(recs) for name, recs in self.parts.items()}


def leakage_groups(records: list[Record], threshold: float = NEAR_THRESHOLD) -> list[list[int]]:
    """Indexes of records that must stay together: near-duplicate clusters (word 3-grams, and character 5-grams as
    the test lock also looks) joined with same-prompt groups."""
    sets = DisjointSets(len(records))
    for shingler in (shingles, char_shingles):
        for cluster in near_clusters(records, threshold, shingler):
            sets.union(cluster)
    by_prompt: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        key = normalized_prompt(rec)
        if key:
            by_prompt[key].append(i)
    for members in by_prompt.values():
        sets.union(members)

    for tree in trees(records):  # branches of one conversation share their opening turns: one side
        sets.union(tree)
    return sets.groups()


def split_records(records: list[Record], ratios=(0.8, 0.1, 0.1), seed: int = 0,
                  threshold: float = NEAR_THRESHOLD, progress=None,
                  locked_tests: list[Record] | None = None) -> SplitResult:
    """locked_tests: records already in a locked test split; their copies and near copies (and whatever is grouped
    with them) go to the test side, whatever the ratios say."""
    step = progress or (lambda fraction, label: None)
    ratios = check_ratios(ratios)
    good = usable(records)
    if len(good) < 3:
        raise SplitError(f"Only {len(good)} usable records: a split needs at least 3.")
    step(0.05, "Grouping near-duplicates and shared prompts")
    groups = leakage_groups(good, threshold)
    forced = near_copies(good, locked_tests or [], threshold)
    step(0.4, "Assigning groups to train, validation and test")
    rng = random.Random(seed)
    rng.shuffle(groups)
    # Large groups first, so they cannot overshoot a small split late in the fill.
    groups.sort(key=len, reverse=True)
    targets = [r * len(good) for r in ratios]
    sizes = [0, 0, 0]
    assigned: list[list[int]] = [[], [], []]
    for group in [g for g in groups if forced.intersection(g)]:
        assigned[2] += group
        sizes[2] += len(group)
    for group in [g for g in groups if not forced.intersection(g)]:
        k = max(range(3), key=lambda p: (targets[p] - sizes[p]) / max(targets[p], 1e-9) if targets[p] else -1e9)
        assigned[k] += group
        sizes[k] += len(group)
    if not assigned[2]:  # a locked test split of nothing would let every later score rest on no evidence
        biggest = max(len(g) for g in groups)
        raise SplitError(f"No test set can be held out without leakage: {biggest:,} of the {len(good):,} usable "
                         "records are copies or near copies of one another or share a prompt, and a group must "
                         "stay on one side. Add records that differ (not only in a number or a name).")
    parts = {name: [good[i] for i in sorted(idx)] for name, idx in zip(PARTS, assigned)}
    step(0.5, "Measuring the overlap between the parts")
    overlap = measure_overlap(parts["train"], parts["test"], threshold) | {
        f"validation_{k}": v for k, v in measure_overlap(parts["train"], parts["validation"], threshold).items()}
    return SplitResult(parts, len(groups), overlap, len(records) - len(good), len(forced))


def measure_overlap(train: list[Record], other: list[Record], threshold: float = NEAR_THRESHOLD) -> dict[str, int]:
    """How many records of `other` have an exact copy or a near copy in train."""
    train_hashes = {record_hash(r) for r in train}
    exact = sum(1 for r in other if record_hash(r) in train_hashes)
    combined = train + other
    near: set[int] = set()
    for cluster in near_clusters(combined, threshold):
        if any(i < len(train) for i in cluster):
            near.update(i for i in cluster if i >= len(train))
    return {"exact": exact, "near": len(near)}


def _ngrams(text: str) -> set[int]:
    words = _WORD.findall(text.lower())
    return {hash(tuple(words[i:i + NGRAM])) for i in range(len(words) - NGRAM + 1)}


def _text(rec: Record) -> str:
    return "\n".join(m["content"] for m in rec.turns if m["role"] != "system")


def contamination(train: list[Record], test: list[Record], threshold: float = NEAR_THRESHOLD) -> dict:
    """Test records that also appear in train: exact copies, near copies, or sharing a 13-word sequence.

    Locations are the test file's. 13-gram overlap is the contamination test used for GPT-3's benchmarks.
    """
    train_hashes = {record_hash(r) for r in train}
    exact = [r.location for r in test if record_hash(r) in train_hashes]
    combined = train + test
    near = sorted({combined[i].location for cluster in near_clusters(combined, threshold)
                   if any(i < len(train) for i in cluster) for i in cluster if i >= len(train)})
    train_grams: set[int] = set()
    for r in train:
        train_grams |= _ngrams(_text(r))
    shared = [r.location for r in test if _ngrams(_text(r)) & train_grams]
    return {"exact": exact, "near": near, "ngram13": shared, "test_records": len(test),
            "clean": not (exact or near or shared)}


def write_parts(result: SplitResult, folder: Path, manifest: dict) -> dict[str, str]:
    """Write train/validation/test JSONL and split.json; returns the SHA-256 of each part."""
    folder.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for name, recs in result.parts.items():
        path = folder / f"{name}.jsonl"
        versions.write_jsonl(recs, path)
        hashes[name] = versions.sha256_file(path)
    manifest = {**manifest, "counts": result.counts, "overlap": result.overlap, "sha256": hashes,
                "groups": result.groups, "left_out_unusable": result.left_out, "locked": ["test"]}
    (folder / "split.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return hashes


def create_split(version: DatasetVersion, ratios=(0.8, 0.1, 0.1), seed: int = 0,
                 threshold: float = NEAR_THRESHOLD, copy_to: Path | None = None, progress=None) -> Split:
    """Split a dataset version, store the parts in the workspace, and lock its test records."""
    records = versions.load_version(version).records
    result = split_records(records, ratios, seed, threshold, progress,
                           locked_tests=locked_records(version.project_id))
    if progress:
        progress(0.9, "Writing the parts and locking the test split")
    rel = Path("splits") / f"{version.sha256[:16]}-seed{seed}-{'-'.join(f'{r:g}' for r in ratios)}"
    manifest = {"dataset_version": version.id, "dataset_sha256": version.sha256, "ratios": list(ratios),
                "seed": seed, "near_threshold": threshold, "kept_in_test": result.kept_in_test}
    hashes = write_parts(result, workspace.current().root / rel, manifest)
    if copy_to is not None:
        write_parts(result, Path(copy_to), manifest)
    with db.session() as s:
        split = Split(dataset_version_id=version.id, seed=seed, ratios=list(ratios), folder=str(rel),
                      counts=result.counts, overlap=result.overlap | {"kept_in_test": result.kept_in_test},
                      test_sha256=hashes["test"], locked=True)
        s.add(split)
        s.flush()
        s.add_all(lock(split.id, result.parts["test"]))
        return split


def get_split(split_id: int) -> Split | None:
    with db.session() as s:
        return s.get(Split, split_id)


def same_test_set(a: int | None, b: int | None) -> bool:
    """Whether two splits hold the same locked test set: the same split, or one derived from the other with its test
    file unchanged (an augmented child version's split)."""
    if a is None or b is None:
        return False
    if a == b:
        return True
    first, second = get_split(a), get_split(b)
    return bool(first and second and first.test_sha256 == second.test_sha256)


def list_splits(version_id: int) -> list[Split]:
    with db.session() as s:
        return list(s.scalars(select(Split).where(Split.dataset_version_id == version_id).order_by(Split.id.desc())))


def splits_of_project(project_id: int) -> list[Split]:
    with db.session() as s:
        return list(s.scalars(select(Split).join(DatasetVersion, Split.dataset_version_id == DatasetVersion.id)
                              .where(DatasetVersion.project_id == project_id).order_by(Split.id.desc())))


def split_path(split: Split, part: str) -> Path:
    return workspace.current().root / split.folder / f"{part}.jsonl"


def check_test_file(made: Split, path: Path, shape: str | None = None, mapping: dict | None = None) -> dict:
    """Contamination of a user-supplied test file against the train part of a split."""
    train = usable(load_records(split_path(made, "train")).records)
    test = usable(load_records(Path(path), shape=shape, mapping=mapping).records)
    if not test:
        raise SplitError("The test file has no usable records.")
    return contamination(train, test)
