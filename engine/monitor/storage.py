"""The production store: Parquet partitioned by day,
<workspace>/monitor/project-<id>/day=YYYY-MM-DD/import-<n>-<random>.parquet. Typed on write (latency in milliseconds,
flags and feedback as numbers), read back lazily by columns and days.

Each file names, in its Parquet metadata, the scheme of its row hashes (Polars' row hash is only stable within one
Polars version): a file written under another scheme, or before schemes were recorded, has its hashes recomputed from
its own stored columns when an import compares against it, so an upgrade never lets a row in twice."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from engine.errors import StudioError
from engine.store import db, locks, partials, workspace

SCHEMA_COLUMNS = ("ts", "model", "request", "response", "latency_ms", "error", "rating", "thumbs", "resolved", "user",
                  "fallback", "confidence", "request_id", "occurrence", "turn", "row_hash", "import_id")
NUMBERS = ("latency_ms", "error", "rating", "thumbs", "resolved", "fallback", "confidence")
# What makes a row the same row: the log's request id where it has one; else the content plus the occurrence number
# of that content within its file (two real requests in the same second with the same prompt and answer are two
# rows, while the same file or an overlapping export imported again adds nothing).
CONTENT_KEYS = ("ts", "model", "request", "response", "user")
HASH_KEYS = (*CONTENT_KEYS, "occurrence", "request_id")
SCHEME_KEY = "studio.row_hash"
WRITERS = 2  # days written at once (each file is compressed on its own thread)


def dtypes() -> dict:
    import polars as pl  # the log engine: only imports and reports need it

    return {"ts": pl.Datetime("us", "UTC"), "model": pl.String, "request": pl.String, "response": pl.String,
            **{c: pl.Float64 for c in NUMBERS}, "user": pl.String, "request_id": pl.String, "occurrence": pl.Int32,
            "turn": pl.Int32, "row_hash": pl.UInt64, "import_id": pl.Int32}


def hash_scheme() -> str:
    import polars as pl  # the log engine: only imports and reports need it

    return f"polars {pl.__version__} hash_rows seed 0 over {','.join(CONTENT_KEYS)},occurrence; seed 1 over " \
        "model,request_id where the log has one"


def occurrences(frame):
    """The occurrence number of each row's content within this file, in file order (0 for the first): a repeated row
    is a request of its own. Counted only among the rows whose content hash repeats (most logs have few): a window
    over a million rows' five text columns cost a third of an import."""
    import polars as pl  # the log engine: only imports and reports need it

    key = frame.select(*CONTENT_KEYS).hash_rows(seed=2)
    repeats = key.is_duplicated()
    occurrence = pl.zeros(frame.height, pl.Int32, eager=True)
    if repeats.any():  # a hash collision only numbers two contents as one's repeats: their row hashes still differ
        among = pl.DataFrame({"key": key.filter(repeats)}).select(pl.int_range(pl.len()).over("key").cast(pl.Int32))
        occurrence = occurrence.scatter(repeats.arg_true(), among.to_series())
    return occurrence.alias("occurrence")


def row_hashes(frame):
    """The 64-bit identity of each row (a Polars UInt64 series) from its typed, masked key columns: the model and
    the log's request id where it has one, else the content and its occurrence number (missing in files stored
    before occurrences were: their rows were de-duplicated, so each is occurrence 0)."""
    import polars as pl  # the log engine: only imports and reports need it

    content = frame.select(*CONTENT_KEYS, pl.col("occurrence").fill_null(0)).hash_rows(seed=0)
    ids = frame.select("model", "request_id").hash_rows(seed=1)
    return pl.select(pl.when(frame["request_id"].is_not_null()).then(ids).otherwise(content)).to_series() \
        .alias("row_hash")


def root(project_id: int) -> Path:
    return workspace.current().root / "monitor" / f"project-{project_id}"


@contextmanager
def import_lock(project_id: int, timeout: float = 600) -> Iterator[None]:
    """Imports into one project one at a time (across processes on this host): each compares its rows with the
    stored ones and then adds its own, so two at once could both add a row the other also has."""
    try:
        with locks.exclusive(root(project_id) / ".import.lock", timeout=timeout):
            yield
    except locks.LockTimeout:
        raise StudioError("Another import into this project has been running for ten minutes; try again when it "
                          "ends.") from None


def discard(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def write(project_id: int, import_id: int, frame) -> list[Path]:
    """Store the rows (typed as dtypes(), with a Date column "day"), one file per day of this import; returns the
    files written."""
    import polars as pl  # the log engine: only imports and reports need it

    frame = frame.with_columns(import_id=pl.lit(import_id, pl.Int32))
    # The database gives a rolled-back import's number to the next one: files under this number now are what a killed
    # import left (it never committed; no live import holds the number the database just gave us), never ours to read.
    for orphan in root(project_id).glob(f"day=*/import-{import_id}-*.parquet"):
        orphan.unlink(missing_ok=True)
    parts = frame.partition_by("day", as_dict=True)
    scheme = hash_scheme()

    token = secrets.token_hex(4)  # an import whose record was rolled back may see its number again: never overwrite

    def one(day, part) -> Path:
        name = day[0].isoformat()
        folder = root(project_id) / f"day={name}"
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"import-{import_id}-{token}.parquet"
        tmp = partials.part_of(final)
        part.select(SCHEMA_COLUMNS).write_parquet(tmp, compression="zstd", compression_level=1,
                                                  metadata={SCHEME_KEY: scheme})
        tmp.rename(final)  # a reader never sees half a file
        return final

    try:
        with ThreadPoolExecutor(WRITERS) as pool:
            return sorted(pool.map(lambda item: one(*item), parts.items()))
    except BaseException:  # a full disk, a crash of one writer: none of this import's files stay behind
        for day in parts:
            folder = root(project_id) / f"day={day[0].isoformat()}"
            for leftover in folder.glob(f"import-{import_id}-{token}.*"):
                leftover.unlink(missing_ok=True)
        raise


def sweep(project_id: int) -> None:
    """Remove what killed imports left (called under the import lock): parts of writers that are gone, and whole
    files of imports whose record was never committed (killed between the write and the commit) once they are an
    hour old (an import commits seconds after its files are written; another host may be writing right now)."""
    committed = _committed(project_id)
    stale = time.time() - 3600
    for folder in root(project_id).glob("day=*"):
        partials.sweep(folder)
        for path in folder.glob("import-*.parquet"):
            if _import_id(path) not in committed and path.stat().st_mtime < stale:
                path.unlink(missing_ok=True)


def _committed(project_id: int) -> set[int]:
    from sqlalchemy import select

    from engine.store.tables import MonitorImport

    with db.session() as s:
        return set(s.scalars(select(MonitorImport.id).where(MonitorImport.project_id == project_id)))


def _import_id(path: Path) -> int | None:
    number = path.name.split("-", 2)[1] if path.name.count("-") >= 2 else ""
    return int(number) if number.isdigit() else None


def _files(project_id: int, days: list[str] | None = None) -> list[Path]:
    """The stored files of committed imports: an import killed before its record was committed (kill -9 between
    writing and committing) left rows that no import owns, and they are never read."""
    base = root(project_id)
    if not base.is_dir():
        return []
    folders = [base / f"day={d}" for d in days] if days is not None else sorted(base.glob("day=*"))
    committed = _committed(project_id)
    return sorted(f for folder in folders if folder.is_dir() for f in folder.glob("import-*.parquet")
                  if _import_id(f) in committed)


def _scan_file(path: Path, columns: list[str]):
    """One stored file, lazily, with our types; files from earlier versions may differ (nanosecond times) or lack a
    column added since (it reads as missing values)."""
    import polars as pl  # the log engine: only imports and reports need it

    types = dtypes()
    present = _columns_of(str(path))
    frame = pl.scan_parquet(path).select([c for c in columns if c in present])
    absent = [pl.lit(None, types[c]).alias(c) for c in columns if c not in present]
    return (frame.with_columns(absent) if absent else frame).select(columns).cast({c: types[c] for c in columns})


@lru_cache(maxsize=4096)
def _columns_of(path: str) -> frozenset[str]:
    """A stored file's columns (files are written once under a fresh name and never changed: safe to remember)."""
    import polars as pl  # the log engine: only imports and reports need it

    return frozenset(pl.read_parquet_schema(path))


def stored_hashes(project_id: int, days: list[str]):
    """The row hashes already stored for these days (a Polars UInt64 series), under the current scheme."""
    import polars as pl  # the log engine: only imports and reports need it

    scheme = hash_scheme()
    found = []
    for path in _files(project_id, days):
        if pl.read_parquet_metadata(path).get(SCHEME_KEY) == scheme:
            found.append(_scan_file(path, ["row_hash"]).collect()["row_hash"])
        else:
            found.append(row_hashes(_scan_file(path, list(HASH_KEYS)).collect()))
    return pl.concat(found) if found else pl.Series("row_hash", [], pl.UInt64)


def scan(project_id: int, columns: tuple[str, ...] = SCHEMA_COLUMNS, model: str | None = None, since=None):
    """Every stored row of the project (or of one model version, or after `since`, a datetime in UTC) as a Polars
    LazyFrame with the columns asked for, "model", "ts" and "day" (a Date); None when nothing is stored."""
    import polars as pl  # the log engine: only imports and reports need it

    files = _files(project_id)
    if not files:
        return None
    wanted = list(dict.fromkeys([*columns, "model", "ts"]))
    frame = pl.concat([_scan_file(f, wanted) for f in files], how="vertical")
    if model:
        frame = frame.filter(pl.col("model") == model)
    if since is not None:
        frame = frame.filter(pl.col("ts") > since)
    return frame.with_columns(day=pl.col("ts").dt.date())


def read(project_id: int, columns: tuple[str, ...] = SCHEMA_COLUMNS, model: str | None = None, since=None):
    """The same rows as a pandas frame, "day" as YYYY-MM-DD text (for the retraining candidate's selection)."""
    import pandas as pd  # the scientific stack costs a second to import: only when statistics are computed
    import polars as pl  # the log engine: only imports and reports need it

    lazy = scan(project_id, columns, model, since)
    if lazy is None:
        wanted = list(dict.fromkeys([*columns, "model", "ts"]))
        return pd.DataFrame({c: pd.Series(dtype="object") for c in [*wanted, "day"]})
    return lazy.with_columns(pl.col("day").dt.to_string("%Y-%m-%d")).collect().to_pandas()
