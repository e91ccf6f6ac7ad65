"""Load a data file into normalized records: size and encoding checks, container, shape detection, normalization.

    from engine.data.loading import load_records
    loaded = load_records(Path("train.jsonl"))          # shape detected
    loaded = load_records(Path("faq.csv"), mapping={"prompt": "question", "completion": "answer"})
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from engine import column_mapping
from engine.data.readers import (
    InputError,
    Item,
    check_size,
    check_text,
    column_names,
    detect_container,
    read_items,
    transcode_to_utf8,
    utf16_encoding,
)
from engine.data.shapes import MAPPABLE, SHAPES, Record, detect_shape, normalize, propose_mapping
from engine.store import workspace

_SNIFF = 200
WHERE = {"jsonl": "Line", "json": "Record", "csv": "Row", "tsv": "Row", "parquet": "Row"}


@dataclass
class Loaded:
    records: list[Record]
    container: str
    shape: str
    size_bytes: int
    encoding: str = "utf-8"
    mapping: dict[str, str] | None = None  # the column mapping used (given, or detected from the column names)
    mapping_detected: bool = False


def parse_mapping(text: str | None) -> dict[str, str] | None:
    """`prompt=question,completion=answer[,system=sys]` -> dict (None for no mapping); a bad value raises InputError."""
    return column_mapping.parse(text, MAPPABLE, InputError) or None


def _check_mapping(mapping: dict[str, str], columns: list[str]) -> None:
    for key in ("prompt", "completion"):
        if key not in mapping:
            raise InputError(f"The column mapping needs a {key} column (prompt=COLUMN,completion=COLUMN).")
    missing = [c for c in mapping.values() if c not in columns]
    if missing:
        raise InputError(f"The mapped column {missing[0]!r} is not in the file (its columns are: "
                         f"{', '.join(columns[:12]) or 'none'}).")


def load_records(path: Path, *, shape: str | None = None, mapping: dict[str, str] | None = None,
                 container: str | None = None, max_bytes: int | None = None,
                 progress: Callable[[float], None] | None = None) -> Loaded:
    """Read and normalize every record of `path`. Raises InputError when the file as a whole cannot be used.
    A UTF-16 file (with or without a byte-order mark) is read through a UTF-8 copy in the workspace."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"There is no file at {path}.")
    size = check_size(path, max_bytes)
    encoding = utf16_encoding(path) if container != "parquet" else None
    if encoding:

        tmp = workspace.current().tmp
        fd, name = tempfile.mkstemp(prefix="utf8-", suffix=path.suffix, dir=tmp)
        os.close(fd)
        copy = Path(name)
        try:
            transcode_to_utf8(path, encoding, copy)
            loaded = _load(copy, shape, mapping, container, size, progress)
        finally:
            copy.unlink(missing_ok=True)
        loaded.encoding = "utf-16-be" if encoding == "utf-16-be" else "utf-16-le" if encoding == "utf-16-le" \
            else "utf-16"
        return loaded
    return _load(path, shape, mapping, container, size, progress)


def _load(path: Path, shape, mapping, container, size: int, progress) -> Loaded:
    detected = False  # the mapping was proposed from the column names, not given
    container = container or detect_container(path)
    if container != "parquet":
        check_text(path)
    items = read_items(path, container)
    head = list(islice(items, _SNIFF))
    if mapping:
        shape = "columns"
        if container in ("csv", "tsv", "parquet"):
            cols = column_names(path, container)
        else:
            cols = sorted({k for it in head if isinstance(it.value, dict) for k in it.value})
        _check_mapping(mapping, cols)
    elif shape is None:
        shape = detect_shape([it.value for it in head if it.problem is None])
        if shape is None:
            parsed = [it for it in head if it.problem is None]
            if not parsed:
                if head:
                    raise InputError(head[0].problem)
                raise InputError("The file holds no records.")
            cols = (column_names(path, container) if container in ("csv", "tsv", "parquet")
                    else list(dict.fromkeys(k for it in parsed if isinstance(it.value, dict) for k in it.value)))
            if not cols:
                raise InputError(_not_objects(parsed[0]))
            mapping = propose_mapping(cols)
            if mapping is None:
                raise InputError(f"Cannot tell the shape of the records (fields: {', '.join(cols[:10])}); choose a "
                                 "format or map the columns (prompt=COLUMN,completion=COLUMN).")
            shape, detected = "columns", True
    elif shape not in SHAPES or shape == "columns":
        raise InputError(f"Unknown format {shape!r}; choose one of {', '.join(s for s in SHAPES if s != 'columns')}.")
    where = WHERE[container]
    records: list[Record] = []
    for item in _chain(head, items):
        records.append(_to_record(item, shape, mapping, where))
        if progress and len(records) % 5000 == 0:
            progress(len(records))
    if not records:
        raise InputError("The file holds no records.")
    return Loaded(records, container, shape, size, mapping=mapping if shape == "columns" else None,
                  mapping_detected=detected)


def _chain(head: list[Item], rest):
    yield from head
    yield from rest


def _not_objects(item: Item) -> str:
    kind = "an array" if isinstance(item.value, list) else "a string" if isinstance(item.value, str) else "a number"
    return f"Record {item.location} is {kind}, not an object: each record must be a JSON object."


def _to_record(item: Item, shape: str, mapping: dict | None, where: str) -> Record:
    if item.problem is not None:
        return Record(item.location, problems=[("unparseable_line", item.problem)], where=where)
    return normalize(item.value, item.location, shape, mapping, where)
