"""What a model version does in production, per day and over a window: requests, latency (mean and p95), error rate,
satisfaction (mean rating, else thumbs-up share, else resolved share) with 95% intervals, the hybrid-routing fallback
rate where the log has it, and guardrail alerts against the version's own first week. Frames are Polars frames of
the stored columns (engine.monitor.storage)."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np

from engine.review import ab_traffic, stats

FIRST_WEEK_DAYS = 7
Z95 = 1.959963984540054
SATISFACTION = (("rating", "mean rating (1-5)"), ("thumbs", "thumbs-up share"), ("resolved", "resolved share"))


def _values(frame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.array([], dtype=float)
    return frame[column].drop_nulls().to_numpy().astype(float)


def _interval(kind: str, mean: float, sd: float | None, n: int) -> tuple[float, float]:
    """95% interval of a mean rating (t) or of a share (Wilson), from its summary figures."""
    if kind == "rating":
        return stats.t_interval(mean, sd or 0.0, n)
    return stats.wilson(mean * n, n)


def satisfaction(frame) -> dict | None:
    """{"kind", "value", "ci_low", "ci_high", "n"} from the best feedback the rows have, or None."""
    for key, kind in SATISFACTION:
        values = _values(frame, key)
        if len(values):
            sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            low, high = _interval(key, float(values.mean()), sd, len(values))
            return {"kind": kind, "value": float(values.mean()), "ci_low": low, "ci_high": high, "n": len(values)}
    return None


def _share(frame, column: str) -> dict | None:
    values = _values(frame, column)
    if not len(values):
        return None
    low, high = stats.wilson(float(values.sum()), len(values))
    return {"value": float(values.mean()), "ci_low": low, "ci_high": high, "n": len(values)}


def summary(frame) -> dict:
    """The window's figures for one version."""
    latency = _values(frame, "latency_ms")
    return {"requests": frame.height,
            "latency": {"mean": float(latency.mean()) if len(latency) else None,
                        "p95": float(np.percentile(latency, 95)) if len(latency) else None, "unit": "ms"},
            "error_rate": _share(frame, "error"), "satisfaction": satisfaction(frame),
            "fallback_rate": _share(frame, "fallback")}


def daily(frame) -> list[dict]:
    """Per model version and day (the time series the page plots), aggregated in one pass."""
    import polars as pl  # the log engine: only imports and reports need it

    feedback = [c for c, _ in SATISFACTION if c in frame.columns]
    aggregates = [pl.len().alias("requests"), pl.col("latency_ms").mean().alias("latency_mean"),
                  pl.col("latency_ms").quantile(0.95, "linear").alias("latency_p95"),
                  pl.col("error").mean().alias("error_rate")]
    for c in feedback:
        aggregates += [pl.col(c).count().alias(f"{c}_n"), pl.col(c).mean().alias(f"{c}_mean"),
                       pl.col(c).std().alias(f"{c}_sd")]
    rows = []
    for g in frame.group_by(["model", "day"]).agg(aggregates).sort(["model", "day"]).iter_rows(named=True):
        row = {"model": g["model"], "day": g["day"].isoformat(), "requests": g["requests"],
               "latency_mean": g["latency_mean"], "latency_p95": g["latency_p95"], "error_rate": g["error_rate"],
               "satisfaction": None, "satisfaction_low": None, "satisfaction_high": None}
        key = next((c for c in feedback if g[f"{c}_n"]), None)
        if key is not None:
            low, high = _interval(key, g[f"{key}_mean"], g[f"{key}_sd"], g[f"{key}_n"])
            row.update(satisfaction=g[f"{key}_mean"], satisfaction_low=low, satisfaction_high=high)
        rows.append(row)
    return rows


def first_week(frame):
    """The version's first FIRST_WEEK_DAYS days in production (its own baseline)."""
    import polars as pl  # the log engine: only imports and reports need it

    return frame.filter(pl.col("ts") < frame["ts"].min() + timedelta(days=FIRST_WEEK_DAYS))


def against_first_week(window, baseline) -> list[dict]:
    """Guardrails (latency, errors) surely worse, and satisfaction surely lower, than in the first week: each with
    the difference and its 95% interval."""
    out = []
    for column, name in (("latency_ms", "latency"), ("error", "error rate")):  # higher is worse for both
        a, b = _values(baseline, column), _values(window, column)
        if len(a) < 2 or len(b) < 2:
            continue
        w = ab_traffic.welch(a, b)
        if w["ci_low"] > 0:
            out.append({"metric": name, "kind": "guardrail", "first_week": w["control"], "window": w["treatment"],
                        "diff": w["diff"], "ci_low": w["ci_low"], "ci_high": w["ci_high"],
                        "sentence": f"{name} is worse than in the version's first week: {w['control']:.4g} -> "
                                    f"{w['treatment']:.4g} (95% interval of the difference {w['ci_low']:+.3g} to "
                                    f"{w['ci_high']:+.3g})."})
    before, now = satisfaction(baseline), satisfaction(window)
    if before and now and before["kind"] == now["kind"]:
        diff = now["value"] - before["value"]
        se = math.sqrt(_se(before) ** 2 + _se(now) ** 2)
        low, high = diff - Z95 * se, diff + Z95 * se
        if high < 0:
            out.append({"metric": "satisfaction", "kind": "satisfaction", "first_week": before["value"],
                        "window": now["value"], "diff": diff, "ci_low": low, "ci_high": high,
                        "sentence": f"Satisfaction ({now['kind']}) is lower than in the version's first week: "
                                    f"{before['value']:.3g} -> {now['value']:.3g} (95% interval of the difference "
                                    f"{low:+.3g} to {high:+.3g})."})
    return out


def _se(s: dict) -> float:
    """The standard error behind an interval (its half-width over 1.96)."""
    return (s["ci_high"] - s["ci_low"]) / (2 * Z95) if s["ci_high"] is not None else 0.0
