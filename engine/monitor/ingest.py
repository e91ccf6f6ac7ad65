"""Production request logs in: JSONL, CSV/TSV or Parquet, columns found by their usual names (or mapped), validated
with line numbers, masked, de-duplicated and stored.

Storage: Parquet files partitioned by day under <workspace>/monitor/project-<id>/day=YYYY-MM-DD/, one file per
import and day. Parquet rather than DuckDB: a report reads only the columns and days it needs, a day's files can be
copied or deleted with the shell, and no second database engine needs pinning next to the studio's own. The work
runs in Polars (multi-threaded, columnar, no Python loop per row): a million-row log is read, masked, hashed and
written in a few seconds on two cores (bench/monitor_ingest.py).

Idempotent: a file whose bytes were imported before is skipped whole (its BLAKE3 digest in the database: as
collision-resistant as SHA-256 and five times faster on a file of hundreds of megabytes); a row is identified
by a 64-bit hash of the log's request id where it has one, else of its time, model, request, response and user plus
the number of times that content came before it in the same file (engine.monitor.storage.row_hashes), and a row
already stored is not stored again. A row repeated inside one file is as many requests as it appears."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine import column_mapping, log_files
from engine.errors import StudioError
from engine.jobs.failures import is_disk_full
from engine.models import registry
from engine.monitor import coerce, masking, reference, storage
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
    "confidence": ("confidence", "model_confidence", "tuned_confidence", "router_confidence"),
    # Only names that say they identify a request: a plain "id" is often a row number, which another export numbers
    # differently (--map request_id=id where it is a real request id).
    "request_id": ("request_id", "trace_id", "call_id", "completion_id", "response_id", "requestid"),
}
REQUIRED = ("time", "request", "response")
MAX_BAD_SHOWN = 20


class LogError(StudioError, ValueError):
    """A log that cannot be imported; the message says why (with line numbers where they help)."""


@dataclass
class ImportResult:
    file: str
    digest: str
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    already_stored: int = 0  # rows stored by an earlier import (an overlapping export)
    repeated_ids: int = 0  # rows whose request id came earlier in the same file (the same request logged twice)
    invalid: int = 0
    bad_lines: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    skipped_file: bool = False
    columns: dict[str, str] = field(default_factory=dict)
    unknown_versions: list[str] = field(default_factory=list)  # model versions the registry does not know

    def to_json(self) -> dict:
        return asdict(self)

    def summary(self, warn: bool = True) -> str:
        """One sentence: what was stored, and each kind of row that was not, with why (and, with warn, the warning
        about model versions the registry does not know)."""
        if self.skipped_file:
            return f"{self.file} was imported before; nothing changed."
        parts = [f"{self.rows:,} rows", f"{self.stored:,} stored"]
        if self.already_stored:
            parts.append(f"{self.already_stored:,} already stored by an earlier import")
        if self.repeated_ids:
            parts.append(f"{self.repeated_ids:,} repeating a request id seen earlier in the file")
        parts.append(f"{self.invalid:,} invalid")
        days = f"; days {', '.join(self.days[:3])}{' ...' if len(self.days) > 3 else ''}" if self.days else ""
        return f"{self.file}: {', '.join(parts)}{days}.{self.unknown_warning() if warn else ''}"

    def unknown_warning(self) -> str:
        if not self.unknown_versions:
            return ""
        names = ", ".join(repr(v[:80]) for v in self.unknown_versions[:5])
        more = f" and {len(self.unknown_versions) - 5} more" if len(self.unknown_versions) > 5 else ""
        return (f" Warning: the registry has no model version {names}{more}; its rows are stored, but they have no "
                "training data to compare with (check the name, or register the version).")


def parse_mapping(text: str | None) -> dict[str, str]:
    return column_mapping.parse(text, tuple(COLUMNS), LogError)


def import_log(project_id: int, path: Path | str, model: str | None = None, mapping: dict[str, str] | None = None,
               name: str | None = None) -> ImportResult:
    """Import one log file into the project's production store."""
    import polars as pl  # the log engine: only imports and reports need it

    path = Path(path)
    if not path.is_file():
        raise LogError(f"There is no file at {path}.")
    with ThreadPoolExecutor(1) as pool:  # the file's digest while it is read (blake3 lets go of the GIL)
        pending = pool.submit(_digest, path)
        try:
            table, first_line = log_files.read(path, LogError)
        finally:
            digest = pending.result()
    result = ImportResult(file=name or path.name, digest=digest)
    if _imported_before(project_id, digest):
        result.skipped_file = True
        return result
    frame, result.columns = _normalize(table, mapping or {}, model, first_line)
    del table
    result.rows = frame.height
    if not result.rows:
        raise LogError(f"{result.file} has no rows.")
    frame, result.invalid, result.bad_lines = _valid_rows(frame)
    if frame.is_empty():
        raise LogError(f"{result.file}: no row could be imported (" + "; ".join(result.bad_lines[:3]) + ").")
    frame = coerce.typed(frame, result.columns.get("latency"))
    frame = frame.with_columns(occurrence=storage.occurrences(frame))
    frame = frame.with_columns(row_hash=storage.row_hashes(frame))
    if frame["row_hash"].n_unique() < frame.height:  # only a request id can repeat in one file now
        before = frame.height
        frame = frame.filter(pl.col("row_hash").is_first_distinct())
        result.repeated_ids = before - frame.height
    with storage.import_lock(project_id):  # one import at a time compares with and adds to a project's rows
        if _imported_before(project_id, digest):
            result.skipped_file = True
            return result
        storage.sweep(project_id)
        try:
            _store(project_id, result, frame)
        except Exception as err:
            if not is_disk_full(err):
                raise
            raise LogError(f"The disk is full: {result.file} was not imported (nothing of it was stored); free "
                           "space and import it again.") from None
    result.unknown_versions = _prepare_references(sorted(frame["model"].drop_nulls().unique().to_list()),
                                                  fit=result.stored > 0)
    return result


def _prepare_references(labels: list[str], fit: bool) -> list[str]:
    """The drift reference of each registered version the log names, fitted now if this is the first log of it (a
    second or so, once per version), so that reports - the dashboard's, the CLI's - only read it. Returns the labels
    the registry does not know."""
    unknown = []
    for label in labels:
        try:
            version = registry.get_version(label)
        except StudioError:  # not a registered version: nothing to compare its requests with
            unknown.append(label)
            continue
        if fit:
            reference.prepare(version.lineage.get("facts", {}))
    return unknown


def _digest(path: Path) -> str:
    """The file's BLAKE3 digest, on one thread (the reader has the others)."""
    from blake3 import blake3  # only imports need it

    hasher = blake3(max_threads=1)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def _imported_before(project_id: int, digest: str) -> bool:
    with db.session() as s:
        return s.scalars(select(MonitorImport.id).where(MonitorImport.project_id == project_id,
                                                        MonitorImport.digest == digest)).first() is not None


def _store(project_id: int, result: ImportResult, frame) -> None:
    """The rows not stored yet, written, then the import's record committed. A crash in between leaves no record (the
    file is not "imported") and, at worst, rows on disk that the next import of the file recognises by their hashes;
    a record refused by the database (the same file imported from another host at once) takes its files back."""
    import polars as pl  # the log engine: only imports and reports need it

    seen = storage.stored_hashes(project_id, [d.isoformat() for d in frame["day"].unique().sort()])
    fresh = frame.filter(~pl.col("row_hash").is_in(seen.implode())) if len(seen) else frame
    result.duplicates = result.rows - result.invalid - fresh.height
    result.already_stored = result.duplicates - result.repeated_ids
    result.stored = fresh.height
    written: list[Path] = []
    try:
        with db.session() as s:
            record = MonitorImport(project_id=project_id, digest=result.digest, name=result.file[:200],
                                   rows=result.rows, stored=fresh.height, invalid=result.invalid,
                                   duplicates=result.duplicates, columns=result.columns)
            s.add(record)
            s.flush()
            written = storage.write(project_id, record.id, fresh) if fresh.height else []
    except IntegrityError:
        storage.discard(written)
        result.skipped_file, result.stored, result.duplicates = True, 0, 0
        result.already_stored = result.repeated_ids = 0
        return
    result.days = sorted({p.parent.name.removeprefix("day=") for p in written})


def _normalize(table, mapping: dict[str, str], model: str | None, first_line: int):
    """The log's columns renamed to ours (time, model, request, response, ...), texts masked, with "line" and the
    parsed time "ts"."""
    import polars as pl  # the log engine: only imports and reports need it

    if not table.columns:
        raise LogError("The log is empty.")
    found = column_mapping.find(table.columns, COLUMNS, mapping, LogError)
    missing = [k for k in REQUIRED if k not in found]
    if missing:
        raise LogError(f"The log needs a {' and a '.join(missing)} column; found {', '.join(table.columns[:30])} "
                       f"(name them with --map, e.g. --map {missing[0]}=COLUMN).")
    if "model" not in found and not model:
        raise LogError("The log has no model version column; say which version served it with --model NAME-vX.Y.Z.")
    columns = {"line": pl.int_range(first_line, first_line + table.height, eager=True, dtype=pl.Int64)}
    columns.update({key: table.get_column(column).alias(key) for key, column in found.items()})
    # The texts are masked here, before any other copy of them exists; both masks and the time parser run at once
    # on their own threads (Polars lets go of the GIL; one column's scan is single-threaded).
    columns["turn"] = coerce.user_turns(columns["request"])
    with ThreadPoolExecutor(3) as pool:
        masked = {key: pool.submit(lambda v: masking.mask(_text(v)), columns[key]) for key in ("request", "response")}
        parsed = pool.submit(coerce.timestamps, columns["time"])
        if "user" in columns:
            columns["user"] = masking.pseudonymise(columns["user"]).alias("user")
        columns.update({key: done.result().alias(key) for key, done in masked.items()})
        columns["ts"] = parsed.result().alias("ts")
    frame = pl.DataFrame(columns)
    if "model" not in found:
        frame = frame.with_columns(model=pl.lit(model, pl.String))
    else:
        frame = frame.with_columns(pl.col("model").cast(pl.String))
        if model:
            frame = frame.with_columns(pl.col("model").fill_null(model))
    return frame, found


def _text(values):
    """A request or response column as text: a prompt as it is; a messages column (a list of {role, content}, or its
    JSON) reduced to its last user message."""
    import polars as pl  # the log engine: only imports and reports need it

    message = pl.Struct({"role": pl.String, "content": pl.String})
    if values.dtype == pl.String:
        head = [v for v in values.head(50).to_list() if v]
        if not (head and all(v.lstrip().startswith("[") for v in head)):
            return values
        try:  # JSON text of messages: decoded in one pass when every row is such a list
            values = values.str.json_decode(pl.List(message))
        except pl.exceptions.PolarsError:
            pass
    elif not isinstance(values.dtype, pl.List):
        return values.cast(pl.String, strict=False)
    inner = values.dtype.inner if isinstance(values.dtype, pl.List) else None
    if isinstance(inner, pl.Struct) and {"role", "content"} <= {f.name for f in inner.fields}:
        user = pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content")
        return values.list.eval(user.cast(pl.String, strict=False)).list.last()
    return pl.Series(values.name, [_last_user(v) if v is not None else None for v in values.to_list()], pl.String)


def _last_user(value) -> str | None:
    try:
        messages = json.loads(value) if isinstance(value, str) else value
    except ValueError:  # a prompt that merely starts with "[": the text itself
        return value
    if not isinstance(messages, list):
        return None
    users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return str(users[-1]) if users and users[-1] is not None else None


def _valid_rows(frame):
    """Rows with a readable time, a request and a model version; (the valid rows with "ts" and "day", how many were
    not, the first reasons)."""
    import polars as pl  # the log engine: only imports and reports need it

    checks = (("time cannot be read", pl.col("ts").is_null()),
              ("no request", pl.col("request").is_null() | (pl.col("request").str.strip_chars() == "")),
              ("no model version (name it with --model)",
               pl.col("model").is_null() | (pl.col("model").str.strip_chars() == "")))
    reason = pl.coalesce([pl.when(failed).then(pl.lit(text)) for text, failed in checks])  # the first that fails
    frame = frame.with_columns(reason=reason)
    bad = frame.filter(pl.col("reason").is_not_null()).head(MAX_BAD_SHOWN)
    reasons = [f"line {line}: {why}" for line, why in zip(bad["line"].to_list(), bad["reason"].to_list())]
    good = frame.filter(pl.col("reason").is_null()).drop("reason").with_columns(day=pl.col("ts").dt.date())
    return good, frame.height - good.height, reasons
