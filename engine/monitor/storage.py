"""The production store: Parquet partitioned by day, <workspace>/monitor/project-<id>/day=YYYY-MM-DD/import-<n>.parquet.
Typed on write (latency in milliseconds, flags and feedback as numbers), read back by columns and days."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.store import workspace

SCHEMA_COLUMNS = ("ts", "model", "request", "response", "latency_ms", "error", "rating", "thumbs", "resolved", "user",
                  "fallback", "row_hash", "import_id")
_TRUE = {"1", "true", "yes", "y", "t", "up", "thumbs_up", "👍"}
_FALSE = {"0", "false", "no", "n", "f", "down", "thumbs_down", "👎"}


def day_strings(ts):
    """"YYYY-MM-DD" of each timestamp, as a categorical (formatting each distinct day once: a million rows span a
    few dozen days, and formatting every row costs half a second)."""
    days = ts.dt.floor("D").astype("category")
    return days.cat.rename_categories([d.strftime("%Y-%m-%d") for d in days.cat.categories])


def root(project_id: int) -> Path:
    return workspace.current().root / "monitor" / f"project-{project_id}"


def _flag(series):
    """Booleans, 0/1, yes/no, true/false as 1.0/0.0 (anything else: missing)."""
    import pandas as pd  # the scientific stack costs a second to import: only when statistics are computed

    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return pd.to_numeric(series, errors="coerce").clip(0, 1).astype("float64")
    text = series.astype("string").str.strip().str.lower()
    return text.map(lambda v: 1.0 if v in _TRUE else 0.0 if v in _FALSE else np.nan, na_action="ignore") \
        .astype("float64")


def typed(frame, latency_column: str | None):
    """Our stored columns, with their units: latency in ms (a column named *_s, or a plain "latency" whose median is
    under 30, is in seconds)."""
    import pandas as pd  # the scientific stack costs a second to import: only when statistics are computed

    out = pd.DataFrame({"ts": frame["ts"], "model": frame["model"].astype("string"),
                        "request": frame["request"].astype("string"),
                        "response": frame["response"].astype("string")})
    if "latency" in frame:
        latency = pd.to_numeric(frame["latency"], errors="coerce").astype("float64")
        name = (latency_column or "").lower()
        seconds = name.endswith("_s") or (name == "latency" and latency.median() < 30)
        out["latency_ms"] = latency * 1000 if seconds else latency
    else:
        out["latency_ms"] = np.nan
    out["error"] = _flag(frame["error"]) if "error" in frame else np.nan
    out["rating"] = pd.to_numeric(frame["rating"], errors="coerce").astype("float64") if "rating" in frame \
        else np.nan
    for key in ("thumbs", "resolved", "fallback"):
        out[key] = _flag(frame[key]) if key in frame else np.nan
    out["user"] = frame["user"].astype("string") if "user" in frame else pd.Series(pd.NA, index=frame.index,
                                                                                   dtype="string")
    out["row_hash"] = frame["row_hash"].astype("uint64")
    out["day"] = frame["day"]
    return out


def write(project_id: int, import_id: int, frame) -> list[str]:
    """Store the rows, one file per day of this import; returns the days written."""
    import pyarrow as pa  # Arrow's writers: only imports need them
    import pyarrow.parquet as pq  # (same)

    frame = frame.assign(import_id=np.int32(import_id))
    days = sorted(str(d) for d in frame["day"].unique())
    for day, part in frame.groupby("day", sort=True, observed=True):
        folder = root(project_id) / f"day={day}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(part[list(SCHEMA_COLUMNS)], preserve_index=False)
        tmp = folder / f"import-{import_id}.parquet.part"
        pq.write_table(table, tmp, compression="zstd", use_dictionary=["model", "user"])  # texts rarely repeat: no dictionary
        tmp.rename(folder / f"import-{import_id}.parquet")
    return [str(d) for d in days]


def _files(project_id: int, days: list[str] | None = None) -> list[Path]:
    base = root(project_id)
    if not base.is_dir():
        return []
    folders = [base / f"day={d}" for d in days] if days is not None else sorted(base.glob("day=*"))
    return sorted(f for folder in folders if folder.is_dir() for f in folder.glob("import-*.parquet"))


def stored_hashes(project_id: int, days: list[str]) -> np.ndarray:
    import pyarrow.parquet as pq  # Arrow's readers: only imports need them

    files = _files(project_id, days)
    if not files:
        return np.array([], dtype="uint64")
    return np.concatenate([pq.read_table(f, columns=["row_hash"]).column(0).to_numpy() for f in files])


NUMBERS = ("latency_ms", "error", "rating", "thumbs", "resolved", "fallback")


def read(project_id: int, columns: tuple[str, ...] = SCHEMA_COLUMNS, model: str | None = None, since=None):
    """Every stored row of the project (or of one model version, or after `since`), with the columns asked for and
    "day"."""
    import pandas as pd  # the scientific stack costs a second to import: only when statistics are computed
    import pyarrow as pa  # Arrow's readers: only imports need them
    import pyarrow.dataset as ds  # (same)

    files = _files(project_id)
    wanted = list(dict.fromkeys([*columns, "model", "ts"]))
    if not files:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in [*wanted, "day"]})
    dataset = ds.dataset([str(f) for f in files], format="parquet")
    where = (ds.field("model") == model) if model else None
    if since is not None:
        after = ds.field("ts") > pa.scalar(since.to_pydatetime(), pa.timestamp("us", tz="UTC"))
        where = after if where is None else where & after
    table = dataset.to_table(columns=wanted, filter=where)
    frame = table.to_pandas()
    frame["day"] = day_strings(frame["ts"])
    return frame
