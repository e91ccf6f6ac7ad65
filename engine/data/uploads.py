"""Uploaded files: stored in the workspace under their content hash (the uploaded name is only a label), then
inspected so the Data page can show the detected container, shape and columns before importing."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from engine.data.readers import InputError, check_text, column_names, detect_container, max_file_bytes, read_items
from engine.data.shapes import detect_shape, propose_mapping
from engine.store import workspace

ALLOWED_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")


def stage_upload(data: bytes, name: str) -> Path:
    """Write uploaded bytes to uploads/<sha256><suffix>; refuses empty and oversized files first."""
    if not data:
        raise InputError("The file is empty.")
    limit = max_file_bytes()
    if len(data) > limit:
        raise InputError(f"The file is {len(data) / 1e6:.1f} MB, over the {limit / 1e6:.0f} MB limit.")
    suffix = Path(name.replace("\x00", "").replace("\\", "/").split("/")[-1]).suffix.lower()
    suffix = suffix if suffix in ALLOWED_SUFFIXES else ""
    folder = workspace.current().uploads
    dest = folder / f"{hashlib.sha256(data).hexdigest()}{suffix}"
    if not dest.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    return dest


@dataclass
class FilePreview:
    container: str
    detected_shape: str | None
    columns: list[str] = field(default_factory=list)
    proposed_mapping: dict[str, str] | None = None  # by column name, when no shape is recognized


def inspect_file(path: Path) -> FilePreview:
    """Container, detected shape and column names from the first records (raises InputError if unreadable)."""
    path = Path(path)
    container = detect_container(path)
    if container != "parquet":
        check_text(path)
    head = [it for it in islice(read_items(path, container), 200) if it.problem is None]
    if container in ("csv", "tsv", "parquet"):
        columns = column_names(path, container)
    else:
        columns = list(dict.fromkeys(k for it in head if isinstance(it.value, dict) for k in it.value))
    shape = detect_shape([it.value for it in head])
    return FilePreview(container, shape, columns, None if shape else propose_mapping(columns))
