"""Dataset versions: immutable, content-addressed files in the workspace, registered in the database.

An upload becomes version 1 as it is (its bytes, named by their SHA-256; the uploaded name is only a label). Every
fix writes a new version as normalized OpenAI-style JSONL with its parent and the fixes applied recorded, so a
version's locations are always the lines of its own file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import func, select

from engine.data.checks.sensitive import mask_secrets
from engine.data.loading import Loaded, load_records
from engine.data.readers import InputError
from engine.data.shapes import Record
from engine.store import db, workspace
from engine.store.tables import DatasetVersion

_EXT = {"jsonl": ".jsonl", "json": ".json", "csv": ".csv", "tsv": ".tsv", "parquet": ".parquet"}


def display_name(name: str) -> str:
    """A label for an uploaded file name: last path part, printable characters only, never used as a path."""
    name = name.replace("\\", "/").split("/")[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip() or "dataset"
    return name[:120]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def path_of(version: DatasetVersion) -> Path:
    return workspace.current().root / version.path


def _store(src: Path, sha: str, container: str) -> str:
    """Copy into datasets/<sha><ext> atomically; returns the path relative to the workspace."""
    ws = workspace.current()
    rel = Path("datasets") / f"{sha}{_EXT[container]}"
    dest = ws.root / rel
    if not dest.exists():
        fd, tmp = tempfile.mkstemp(dir=ws.datasets, suffix=".part")
        os.close(fd)
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    return str(rel)


def _next_version(s, project_id: int, name: str) -> int:
    top = s.scalar(select(func.max(DatasetVersion.version)).where(
        DatasetVersion.project_id == project_id, DatasetVersion.name == name))
    return (top or 0) + 1


def import_file(project_id: int, src: Path, name: str, *, shape: str | None = None,
                mapping: dict | None = None) -> DatasetVersion:
    """Register a file as version 1 of a dataset (or return the identical version already there)."""
    src = Path(src)
    loaded = load_records(src, shape=shape, mapping=mapping)  # refuses unreadable files with InputError
    mapping = mapping or loaded.mapping  # a mapping detected from the column names is stored like a given one
    sha = sha256_file(src)
    label = display_name(name)
    with db.session() as s:
        existing = s.scalar(select(DatasetVersion).where(
            DatasetVersion.project_id == project_id, DatasetVersion.sha256 == sha,
            DatasetVersion.shape == loaded.shape).order_by(DatasetVersion.id))
        if existing is not None and (existing.mapping or None) == (mapping or None):
            return existing
        version = DatasetVersion(
            project_id=project_id, name=label, version=_next_version(s, project_id, label), sha256=sha,
            path=_store(src, sha, loaded.container), container=loaded.container, shape=loaded.shape,
            mapping=mapping, records=len(loaded.records), parent_id=None, fixes=[], removed=0)
        s.add(version)
        s.flush()
        return version


def to_openai(rec: Record) -> dict:
    return {"messages": rec.messages, **rec.extra}


def write_jsonl(records: list[Record], dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    with tmp.open("w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(to_openai(rec), ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, dest)


def create_child(parent: DatasetVersion, records: list[Record], fix: dict) -> DatasetVersion:
    """Write records as a new version derived from parent, recording the fix (id, parameters, counts)."""
    ws = workspace.current()
    fd, tmp_name = tempfile.mkstemp(dir=ws.tmp, suffix=".jsonl")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write_jsonl(records, tmp)
        sha = sha256_file(tmp)
        rel = _store(tmp, sha, "jsonl")
    finally:
        tmp.unlink(missing_ok=True)
    with db.session() as s:
        version = DatasetVersion(
            project_id=parent.project_id, name=parent.name, version=_next_version(s, parent.project_id, parent.name),
            sha256=sha, path=rel, container="jsonl", shape="openai", mapping=None, records=len(records),
            parent_id=parent.id, fixes=[*parent.fixes, fix], removed=max(0, parent.records - len(records)))
        s.add(version)
        s.flush()
        return version


def list_versions(project_id: int) -> list[DatasetVersion]:
    with db.session() as s:
        return list(s.scalars(select(DatasetVersion).where(DatasetVersion.project_id == project_id)
                              .order_by(DatasetVersion.id.desc())))


def get_version(version_id: int) -> DatasetVersion:
    with db.session() as s:
        version = s.get(DatasetVersion, version_id)
        if version is None:
            raise InputError(f"There is no dataset version {version_id}.")
        return version


def load_version(version: DatasetVersion) -> Loaded:
    return load_records(path_of(version), shape=version.shape if version.shape != "columns" else None,
                        mapping=version.mapping, container=version.container)


def export_path(version: DatasetVersion, kind: str) -> Path:
    """Where exports of a version go: workspace/exports/<sha>.jsonl or a folder <sha>-hf."""
    folder = workspace.current().root / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (f"{version.sha256[:16]}.jsonl" if kind == "jsonl" else f"{version.sha256[:16]}-hf")


def export_jsonl(version: DatasetVersion, dest: Path) -> Path:
    """OpenAI chat JSONL of the readable records (the format every trainer, TRL included, reads)."""
    loaded = load_version(version)
    write_jsonl([r for r in loaded.records if r.messages], Path(dest))
    return Path(dest)


def export_hf_dataset(version: DatasetVersion, dest: Path) -> Path:
    """A `datasets` folder (save_to_disk) with a `messages` column; load it with datasets.load_from_disk."""
    from datasets import Dataset  # the ML stack loads in seconds: only jobs that train or generate import it

    loaded = load_version(version)
    rows = [{"messages": [{"role": m["role"], "content": m["content"]} for m in r.messages]}
            for r in loaded.records if r.messages]
    Dataset.from_list(rows).save_to_disk(str(dest))
    return Path(dest)


def _masked(text: str) -> str:
    """Text for display: secrets are replaced, never echoed on a page."""
    return mask_secrets(text)


def display_records(version: DatasetVersion, locations: list[int]) -> dict[int, dict]:
    """The records at these locations, as shown to the user (secrets masked); unreadable ones as their problem."""
    wanted = set(locations)
    out = {}
    for rec in load_version(version).records:
        if rec.location in wanted:
            if rec.messages is None:
                out[rec.location] = {"problem": rec.problems[0][1] if rec.problems else "unreadable"}
            else:
                shown = to_openai(rec)
                shown["messages"] = [{**m, "content": _masked(m["content"])} for m in rec.messages]
                out[rec.location] = shown
    return out


def preview_rows(version: DatasetVersion, start: int = 0, count: int = 50) -> list[dict]:
    """Rows for the paged preview: location, roles, and the first system/user/assistant texts (cut to 300 chars)."""
    rows = []
    for rec in load_version(version).records[start:start + count]:
        row: dict[str, int | str] = {"location": rec.location, "turns": len(rec.turns)}
        for role in ("system", "user", "assistant"):
            text = next((m["content"] for m in rec.turns if m["role"] == role), "")
            text = _masked(text)
            row[role] = text[:300] + ("…" if len(text) > 300 else "")
        row["problem"] = rec.problems[0][1] if rec.problems else ""
        rows.append(row)
    return rows
