"""Production request logs in: JSONL, CSV/TSV or Parquet, columns found by their usual names (or mapped), validated
with line numbers, masked, de-duplicated and stored.

Storage: Parquet files partitioned by day under <workspace>/monitor/project-<id>/day=YYYY-MM-DD/, one file per
import and day. Parquet rather than DuckDB: pyarrow is already here (no new engine to install and pin), a report
reads only the columns and days it needs, and a day's files can be copied or deleted with the shell.

Idempotent: a file whose bytes were imported before is skipped whole (SHA-256 in the database); a row is identified
by a 64-bit hash of its time, model, request, response and user, and a row already stored is not stored again."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select

from engine.errors import StudioError
from engine.monitor import masking, storage
from engine.store import db
from engine.store.tables import MonitorImport

# The usual names of each column (lowercased), first match wins; --map overrides.
COLUMNS = {
    "time": ("timestamp", "time", "ts", "created_at", "date", "datetime"),
    "model": ("model_version", "model", "version", "variant", "deployment"),
    "request": ("messages", "request", "prompt", "input", "query", "question"),
    "response": ("response", "completion", "output", "answer", "reply"),
    "latency": ("latency_ms", "latency", "latency_s", "duration_ms", "response_time_ms", "elapsed_ms"),
    "error": ("error", "is_error", "failed", "failure"),
    "rating": ("rating", "stars", "score", "feedback_rating", "csat"),
    "thumbs": ("thumbs_up", "thumbs", "liked", "helpful"),
    "resolved": ("resolved", "solved"),
    "user": ("user_id", "user", "session_id", "session", "customer_id"),
    "fallback": ("fallback", "routed_to_fallback", "used_fallback"),
}
REQUIRED = ("time", "request", "response")
MAX_BAD_SHOWN = 20


class LogError(StudioError, ValueError):
    """A log that cannot be imported; the message says why (with line numbers where they help)."""


@dataclass
class ImportResult:
    file: str
    sha256: str
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    invalid: int = 0
    bad_lines: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    skipped_file: bool = False
    columns: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def parse_mapping(text: str | None) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, _, column = part.partition("=")
        if key.strip() not in COLUMNS or not column.strip():
            raise LogError(f"Cannot read the mapping {part.strip()!r}; write KEY=COLUMN with KEY one of "
                           f"{', '.join(COLUMNS)}.")
        mapping[key.strip()] = column.strip().lower()
    return mapping


def import_log(project_id: int, path: Path | str, model: str | None = None, mapping: dict[str, str] | None = None,
               name: str | None = None) -> ImportResult:
    """Import one log file into the project's production store."""
    path = Path(path)
    if not path.is_file():
        raise LogError(f"There is no file at {path}.")
    digest = _sha256(path)
    result = ImportResult(file=name or path.name, sha256=digest)
    with db.session() as s:
        if s.scalars(select(MonitorImport).where(MonitorImport.project_id == project_id,
                                                 MonitorImport.sha256 == digest)).first():
            result.skipped_file = True
            return result
    table, first_line = _read(path)
    frame, result.columns = _normalize(table, mapping or {}, model, first_line)
    result.rows = len(frame)
    frame, result.invalid, result.bad_lines = _valid_rows(frame)
    if frame.empty:
        raise LogError(f"{result.file}: no row could be imported (" + "; ".join(result.bad_lines[:3]) + ").")
    frame["row_hash"] = _row_hashes(frame)
    frame = storage.typed(frame, result.columns.get("latency"))
    frame = frame.drop_duplicates("row_hash")
    seen = storage.stored_hashes(project_id, sorted(str(d) for d in frame["day"].unique()))
    fresh = frame[~np.isin(frame["row_hash"].to_numpy(), seen)] if len(seen) else frame
    result.duplicates = result.rows - result.invalid - len(fresh)
    with db.write_session() as s:
        record = MonitorImport(project_id=project_id, sha256=digest, name=result.file[:200], rows=result.rows,
                               stored=len(fresh), invalid=result.invalid, duplicates=result.duplicates,
                               columns=result.columns)
        s.add(record)
        s.flush()
        import_id = record.id
    result.stored = len(fresh)
    result.days = storage.write(project_id, import_id, fresh)
    return result


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read(path: Path):
    """(an Arrow table of the file, the line number of its first row)."""
    import pyarrow as pa  # Arrow's readers: only imports need them
    import pyarrow.csv as pcsv  # (same)
    import pyarrow.json as pjson  # (same)
    import pyarrow.parquet as pq  # (same)

    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(path), 1
        if suffix in (".jsonl", ".ndjson", ".json"):
            return pjson.read_json(path), 1
        delimiter = "\t" if suffix == ".tsv" else ","
        return pcsv.read_csv(path, parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                             convert_options=pcsv.ConvertOptions(strings_can_be_null=True)), 2
    except (pa.ArrowInvalid, OSError) as err:
        raise LogError(f"{path.name} cannot be read as {suffix.lstrip('.') or 'CSV'}: "
                       f"{str(err).splitlines()[0][:300]}") from None


def _normalize(table, mapping: dict[str, str], model: str | None, first_line: int):
    """The log's columns renamed to ours (time, model, request, response, ...), as a pandas frame."""
    import pandas as pd  # the scientific stack costs a second to import: only when statistics are computed

    names = {c.lower().strip(): c for c in table.column_names}
    found: dict[str, str] = {}
    for key, candidates in COLUMNS.items():
        wanted = mapping.get(key)
        if wanted is not None and wanted not in names:
            raise LogError(f"The log has no column {wanted!r} (for {key}); its columns are "
                           f"{', '.join(list(names)[:30])}.")
        column = wanted or next((c for c in candidates if c in names), None)
        if column is not None:
            found[key] = names[column]
    missing = [k for k in REQUIRED if k not in found]
    if missing:
        raise LogError(f"The log needs a {' and a '.join(missing)} column; found {', '.join(list(names)[:30])} "
                       f"(name them with --map, e.g. --map {missing[0]}=COLUMN).")
    if "model" not in found and not model:
        raise LogError("The log has no model version column; say which version served it with --model NAME-vX.Y.Z.")
    frame = pd.DataFrame({"line": np.arange(first_line, first_line + table.num_rows)})
    for key, column in found.items():
        values = table.column(column)
        if key in ("request", "response"):  # masked here, in Arrow, before any other copy of the text exists
            frame[key] = _masked_text(values).to_pandas(types_mapper=_string_dtype)
        else:
            frame[key] = values.to_pandas()
    if "model" not in found:
        frame["model"] = model
    elif model:
        frame["model"] = frame["model"].fillna(model)
    return frame, found


def _string_dtype(arrow_type):
    import pandas as pd  # the scientific stack costs a second to import: only when statistics are computed
    import pyarrow as pa  # Arrow's readers: only imports need them

    return pd.StringDtype("pyarrow") if pa.types.is_string(arrow_type) else None


def _masked_text(values):
    """A text column as a masked Arrow string array: a prompt column as it is; a messages column (a list of
    {role, content}, or its JSON) reduced to its last user message first."""
    import pyarrow as pa  # Arrow's readers: only imports need them
    import pyarrow.compute as pc  # (same)

    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
        head = [v for v in values.slice(0, 50).to_pylist() if v]
        if not (head and all(v.lstrip().startswith("[") for v in head)):
            return masking.mask_array(values)
    elif pa.types.is_null(values.type):
        return masking.mask_array(pc.cast(values, pa.string()))
    elif not pa.types.is_list(values.type):
        return masking.mask_array(pc.cast(values, pa.string()))
    return masking.mask_array(pa.array([_last_user(v) if v is not None else None for v in values.to_pylist()],
                                       pa.string()))


def _last_user(value) -> str | None:
    try:
        messages = json.loads(value) if isinstance(value, str) else value
    except ValueError:  # a prompt that merely starts with "[": the text itself
        return value
    if not isinstance(messages, list | np.ndarray):
        return None
    users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return str(users[-1]) if users and users[-1] is not None else None


def _valid_rows(frame):
    """Rows with a readable time and a request; (the valid rows, how many were not, the first reasons)."""
    import pandas as pd  # the scientific stack costs a second to import: only when statistics are computed

    frame["ts"] = pd.to_datetime(frame["time"], errors="coerce", utc=True, format="mixed")
    no_time = frame["ts"].isna()
    no_request = frame["request"].isna() | (frame["request"].astype("string").str.strip() == "")
    bad = no_time | no_request
    reasons = [f"line {int(line)}: {'time cannot be read' if t else 'no request'}"
               for line, t in zip(frame.loc[bad, "line"].head(MAX_BAD_SHOWN), no_time[bad].head(MAX_BAD_SHOWN))]
    good = frame[~bad].copy()
    good["day"] = storage.day_strings(good["ts"])
    return good, int(bad.sum()), reasons


def _row_hashes(frame):
    import pandas as pd  # the scientific stack costs a second to import: only when statistics are computed

    keys = [c for c in ("ts", "model", "request", "response", "user") if c in frame]
    return pd.util.hash_pandas_object(frame[keys], index=False).to_numpy()
