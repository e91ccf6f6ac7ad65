"""Log values as the store keeps them: times in UTC, latency in milliseconds, flags and feedback as numbers. Values
that cannot be read become missing (the row stays; only a missing time or request makes a row invalid)."""

from __future__ import annotations

_TRUE = ("1", "1.0", "true", "yes", "y", "t", "up", "thumbs_up", "👍")
_FALSE = ("0", "0.0", "false", "no", "n", "f", "down", "thumbs_down", "👎")
SECONDS_MEDIAN = 30  # a plain "latency" column whose median is under this is in seconds


def timestamps(values):
    """A column of times (text in any usual format, dates, datetimes, epoch seconds or milliseconds) as Polars
    Datetime(us, UTC); unreadable values are null. Text goes through Polars' parser with the format it infers (fast);
    only the values that format misses go through pandas' mixed-format parser."""
    import polars as pl  # the log engine: only imports and reports need it

    utc = pl.Datetime("us", "UTC")
    dtype = values.dtype
    if isinstance(dtype, pl.Datetime):
        return (values.dt.replace_time_zone("UTC") if dtype.time_zone is None
                else values.dt.convert_time_zone("UTC")).cast(utc)
    if dtype == pl.Date:
        return values.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype.is_numeric():
        seconds = values.cast(pl.Float64)
        seconds = pl.select(pl.when(seconds.abs() > 1e11).then(seconds / 1000).otherwise(seconds)).to_series()
        return pl.from_epoch((seconds * 1e6).cast(pl.Int64, strict=False), time_unit="us").dt.replace_time_zone("UTC")
    text = values.cast(pl.String, strict=False).str.strip_chars()
    try:
        parsed = text.str.to_datetime(time_zone="UTC", time_unit="us", strict=False)
    except pl.exceptions.PolarsError:  # no format could be inferred from the first value
        parsed = pl.Series(values.name, [None] * len(text), utc)
    missed = parsed.is_null() & text.is_not_null() & (text != "")
    if not missed.any():
        return parsed
    return parsed.scatter(missed.arg_true(), _mixed(text.filter(missed)))


def _mixed(text):
    """Times in mixed formats, one by one (pandas' parser; the slow path for what the inferred format missed)."""
    import pandas as pd  # the scientific stack costs a second to import: only when statistics are computed
    import polars as pl  # the log engine: only imports and reports need it

    parsed = pd.to_datetime(pd.Series(text.to_list(), dtype="object"), errors="coerce", utc=True, format="mixed")
    return pl.Series(parsed.dt.tz_convert("UTC").astype("datetime64[us, UTC]")).cast(pl.Datetime("us", "UTC"))


def _number(name: str, dtype):
    import polars as pl  # the log engine: only imports and reports need it

    column = pl.col(name).str.strip_chars() if dtype == pl.String else pl.col(name)
    return column.cast(pl.Float64, strict=False)


def _flag(name: str, dtype):
    """Booleans, 0/1, yes/no, true/false, thumbs as 1.0/0.0 (anything else: missing)."""
    import polars as pl  # the log engine: only imports and reports need it

    if dtype == pl.Boolean or dtype.is_numeric():
        return pl.col(name).cast(pl.Float64).clip(0, 1)
    mapping = {**dict.fromkeys(_TRUE, 1.0), **dict.fromkeys(_FALSE, 0.0)}
    return pl.col(name).cast(pl.String, strict=False).str.strip_chars().str.to_lowercase() \
        .replace_strict(mapping, default=None, return_dtype=pl.Float64)


def typed(frame, latency_column: str | None):
    """The stored columns with their units (storage.dtypes()), plus "day": latency in ms (a column named *_s, or a
    plain "latency" whose median is under SECONDS_MEDIAN, is in seconds). One Polars context: the columns are typed
    in parallel."""
    import polars as pl  # the log engine: only imports and reports need it

    schema = frame.schema
    missing = {"latency": pl.Float64, "error": pl.Float64, "rating": pl.Float64, "thumbs": pl.Float64,
               "resolved": pl.Float64, "fallback": pl.Float64, "user": pl.String}

    def given(key: str, read):
        """The column read by read(name, dtype), or all missing when the log has no such column."""
        return (read(key, schema[key]) if key in schema else pl.lit(None, missing[key])).alias(key)

    out = frame.select(
        "ts", pl.col("model").cast(pl.String), pl.col("request").cast(pl.String),
        pl.col("response").cast(pl.String), given("latency", _number),
        *(given(k, _flag) for k in ("error", "thumbs", "resolved", "fallback")), given("rating", _number),
        given("user", lambda name, _: pl.col(name).cast(pl.String)), "day")
    name = (latency_column or "").lower()
    median = out["latency"].median()
    seconds = name.endswith("_s") or (name == "latency" and median is not None and float(median) < SECONDS_MEDIAN)
    return out.rename({"latency": "latency_ms"}).with_columns(pl.col("latency_ms") * 1000 if seconds
                                                              else pl.col("latency_ms"))
