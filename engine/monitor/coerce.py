"""Log values as the store keeps them: times in UTC, latency in milliseconds, flags and feedback as numbers. Values
that cannot be read become missing (the row stays; only a missing time or request makes a row invalid)."""

from __future__ import annotations

_TRUE = ("1", "1.0", "true", "yes", "y", "t", "up", "thumbs_up", "👍")
_FALSE = ("0", "0.0", "false", "no", "n", "f", "down", "thumbs_down", "👎")
SECONDS_MEDIAN = 30  # a plain "latency" column whose median is under this is in seconds


def timestamps(values):
    """A column of times (text in any usual format, dates, datetimes, epoch seconds or milliseconds) as Polars
    Datetime(us, UTC); unreadable values are null. ISO 8601 text (most logs) is read by _iso; other text goes
    through Polars' parser with the format it infers, and only the values that format misses through pandas'
    mixed-format parser."""
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
    parsed = _iso(text)
    missed = parsed.is_null() & text.is_not_null() & (text != "")
    if not missed.any():
        return parsed
    rest = text.filter(missed)
    # As before this fast path: Polars infers one format from the column's first time and pandas' mixed-format
    # parser reads what that format misses. When the first time is ISO, the fast path has read every ISO value.
    first = int(text.is_not_null().arg_max() or 0)
    rest = _mixed(rest) if parsed[first] is not None else _inferred(rest)
    return parsed.scatter(missed.arg_true(), rest)


# What may follow YYYY-MM-DDTHH:MM:SS in an ISO 8601 time: a fraction of a second, then Z or an offset.
_ISO_REST = r"^(?<fraction>\.[0-9]{1,9}|)(?:[Zz]|(?<sign>[+-])(?<hours>[01][0-9]|2[0-3]):?(?<minutes>[0-5][0-9]))?$"


def _iso(text):
    """ISO 8601 times (a date and time of day to the second, then an optional fraction and Z or an offset) in UTC;
    null where a value is not one. The date and time go through Polars' parser with a fixed format and the rest is
    read from its digits: four times faster than Polars' own %z parsing, which a million-row log notices."""
    import polars as pl  # the log engine: only imports and reports need it

    sample = text.drop_nulls().head(1).to_list()
    separator = " " if sample and len(sample[0]) > 10 and sample[0][10] == " " else "T"
    fraction, sign = pl.col("fraction"), pl.col("sign")
    micro = pl.when(fraction.str.len_bytes() > 1) \
        .then(fraction.str.slice(1).str.pad_end(9, "0").cast(pl.Int64) // 1000).otherwise(0)
    minutes = pl.when(sign.is_not_null()).then(
        (pl.col("hours").cast(pl.Int64) * 60 + pl.col("minutes").cast(pl.Int64))
        * pl.when(sign == "-").then(-1).otherwise(1)).otherwise(0)
    return text.to_frame("t").select(
        base=pl.col("t").str.slice(0, 19).str.to_datetime(f"%Y-%m-%d{separator}%H:%M:%S", time_unit="us",
                                                           strict=False),
        rest=pl.col("t").str.slice(19).str.extract_groups(_ISO_REST)).unnest("rest").select(
        pl.when(fraction.is_not_null())  # null when what follows the seconds is not a fraction and a zone
        .then(pl.col("base") + pl.duration(microseconds=micro) - pl.duration(minutes=minutes))
        .dt.replace_time_zone("UTC").alias(text.name)).to_series()


def _inferred(text):
    """Times in the format Polars infers from the first, then what it misses through pandas."""
    import polars as pl  # the log engine: only imports and reports need it

    try:
        parsed = text.str.to_datetime(time_zone="UTC", time_unit="us", strict=False)
    except pl.exceptions.PolarsError:  # no format could be inferred from the first value
        parsed = pl.Series(text.name, [None] * len(text), pl.Datetime("us", "UTC"))
    missed = parsed.is_null()
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


def _probability(name: str, dtype):
    """A number from 0 to 1 (the router's confidence); anything else is missing."""
    import polars as pl  # the log engine: only imports and reports need it

    value = _number(name, dtype)
    return pl.when(value.is_between(0, 1)).then(value)


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
               "resolved": pl.Float64, "fallback": pl.Float64, "confidence": pl.Float64, "user": pl.String,
               "request_id": pl.String}

    def given(key: str, read):
        """The column read by read(name, dtype), or all missing when the log has no such column."""
        return (read(key, schema[key]) if key in schema else pl.lit(None, missing[key])).alias(key)

    out = frame.select(
        "ts", pl.col("model").cast(pl.String), pl.col("request").cast(pl.String),
        pl.col("response").cast(pl.String), given("latency", _number),
        *(given(k, _flag) for k in ("error", "thumbs", "resolved", "fallback")), given("rating", _number),
        given("confidence", _probability),
        given("user", lambda name, _: pl.col(name).cast(pl.String)),
        given("request_id", lambda name, _: pl.col(name).cast(pl.String).str.strip_chars().replace("", None)),
        pl.col("turn").cast(pl.Int32) if "turn" in schema else pl.lit(None, pl.Int32).alias("turn"), "day")
    name = (latency_column or "").lower()
    median = out["latency"].median()
    seconds = name.endswith("_s") or (name == "latency" and median is not None and float(median) < SECONDS_MEDIAN)
    return out.rename({"latency": "latency_ms"}).with_columns(pl.col("latency_ms") * 1000 if seconds
                                                              else pl.col("latency_ms"))


def _messages(values):
    """A messages column as a Polars list of {role, content} structs, or None when the column is plain text."""
    import polars as pl  # the log engine: only imports and reports need it

    message = pl.Struct({"role": pl.String, "content": pl.String})
    if values.dtype == pl.String:
        head = [v for v in values.head(50).to_list() if v]
        if not (head and all(v.lstrip().startswith("[") for v in head)):
            return None
        try:
            return values.str.json_decode(pl.List(message))
        except pl.exceptions.PolarsError:
            return None
    inner = values.dtype.inner if isinstance(values.dtype, pl.List) else None
    if isinstance(inner, pl.Struct) and {"role", "content"} <= {f.name for f in inner.fields}:
        return values
    return None


def user_turns(values):
    """How many user turns each request holds (1: a conversation's opening, 2 or more: a follow-up), as Int32;
    missing for a plain prompt, which the drift report counts as an opening: it comes without history."""
    import polars as pl  # the log engine: only imports and reports need it

    decoded = _messages(values)
    if decoded is None:
        if values.dtype == pl.String or not isinstance(values.dtype, pl.List):
            return pl.Series("turn", [None] * len(values), pl.Int32)
        return pl.Series("turn", [_count_users(v) for v in values.to_list()], pl.Int32)
    users = decoded.list.eval((pl.element().struct.field("role") == "user").cast(pl.Int32)).list.sum()
    return users.cast(pl.Int32).alias("turn")


def _count_users(value) -> int | None:
    if not isinstance(value, list):
        return None
    return sum(1 for m in value if isinstance(m, dict) and m.get("role") == "user") or None
