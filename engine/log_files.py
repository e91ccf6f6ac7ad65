"""Log files in, the same way for A/B traffic logs and production logs: JSON lines, one JSON array, CSV, TSV or Parquet,
read by Polars (multi-threaded, columnar) into one frame. A file that cannot be read gets one sentence naming its
first bad line, found by a second, slow pass that only runs after the fast reader failed."""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import StudioError

FORMATS = {".parquet": "Parquet", ".jsonl": "JSON lines", ".ndjson": "JSON lines", ".json": "JSON", ".tsv": "TSV",
           ".csv": "CSV"}


def read(path: Path, error: type[StudioError] = StudioError):
    """(the file as a Polars frame, the line number of its first row); `error` with one sentence (naming the first bad
    line where it can) when it cannot be read. CSV columns are read as text and typed
    afterwards, row by row: a stray value in row 900,000 makes that row's field empty, not the whole import fail."""
    import polars as pl  # the log engine: only imports and reports need it

    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pl.read_parquet(path), 1
        if suffix == ".json" and _starts_with(path, b"["):  # one JSON array of rows
            return pl.read_json(path, infer_schema_length=None), 1
        if suffix in (".jsonl", ".ndjson", ".json"):
            return pl.read_ndjson(path, infer_schema_length=None), 1
        return pl.read_csv(path, separator=_separator(path), infer_schema=False, encoding="utf8-lossy",
                           raise_if_empty=False), 2
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        where = _first_bad_json_line(path) if suffix in (".jsonl", ".ndjson", ".json") \
            else _first_ragged_line(path, _separator(path))
        reason = where or str(err).strip().splitlines()[0][:300]
        kind = FORMATS.get(suffix, "CSV")
        raise error(f"{path.name} cannot be read as {kind}: {reason}") from None


def _separator(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _starts_with(path: Path, prefix: bytes) -> bool:
    with path.open("rb") as f:
        return f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(prefix)


def _first_ragged_line(path: Path, separator: str) -> str | None:
    """"line N has K fields where the header has H", or "line N opens a quoted field ..." (a stray quote makes the
    lines after it one cell, so the field count only goes wrong where that cell ends) for the first such row; only
    run when the fast reader failed."""
    import csv

    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f, delimiter=separator, strict=True)
        start = 1
        try:
            header = next(reader, None)
            while True:
                start = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    return None
                if header is not None and row and len(row) != len(header):
                    return f"line {reader.line_num} has {len(row)} fields where the header has {len(header)}."
        except csv.Error:
            return f"line {start} opens a quoted field that is not closed properly (it runs to line {reader.line_num})."


def _first_bad_json_line(path: Path) -> str | None:
    """"line N is not a JSON object" for the first such line (only run when the fast reader failed)."""
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except RecursionError:  # hostile nesting: Polars stopped at its depth limit, json at the recursion limit
                return f"line {number} is nested too deeply to read."
            except ValueError:
                return f"line {number} is not valid JSON."
            if not isinstance(value, dict):
                return f"line {number} is not a JSON object."
    return None
