"""What a model version does in production, per day and over a window: requests, latency (mean and p95), error rate,
satisfaction (mean rating, else thumbs-up share, else resolved share) with 95% intervals, the hybrid-routing fallback
rate (logged, or the share of logged confidences under the routing rule's threshold), guardrail alerts against the
version's own first week, and an alert when more requests fall back than the version's evaluation expected.

Everything is computed from aggregates of Polars lazy frames (counts, means, variances, the 95th percentile), never
from the rows themselves: a month of traffic at a million requests a day is summarised in one streaming pass without
being held in memory. Welch's interval needs only each side's mean, variance and count."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from engine.review import ab_traffic, stats
from engine.stat_helpers import Z95, wilson

FIRST_WEEK_DAYS = 7
SATISFACTION = (("rating", "mean rating (1-5)"), ("thumbs", "thumbs-up share"), ("resolved", "resolved share"))
SHARES = ("error", "fallback", "thumbs", "resolved")


def aggregates() -> list:
    """The Polars expressions every figure is made from (one row per group)."""
    import polars as pl  # the log engine: only imports and reports need it

    out = [pl.len().alias("requests"), pl.col("ts").min().alias("ts_min"), pl.col("ts").max().alias("ts_max")]
    for c in ("latency_ms", "rating", *SHARES):
        out += [pl.col(c).count().alias(f"{c}_n"), pl.col(c).mean().alias(f"{c}_mean"),
                pl.col(c).var().alias(f"{c}_var")]
    return [*out, pl.col("latency_ms").quantile(0.95, "linear").alias("latency_ms_p95")]


def _share(row: dict, column: str) -> dict | None:
    n = row.get(f"{column}_n") or 0
    if not n:
        return None
    low, high = wilson(row[f"{column}_mean"] * n, n)
    return {"value": row[f"{column}_mean"], "ci_low": low, "ci_high": high, "n": n}


def satisfaction(row: dict) -> dict | None:
    """{"kind", "value", "ci_low", "ci_high", "n"} from the best feedback the rows have, or None."""
    if row.get("rating_n"):
        n, mean = row["rating_n"], row["rating_mean"]
        low, high = stats.t_interval(mean, math.sqrt(row["rating_var"] or 0.0), n)
        return {"kind": SATISFACTION[0][1], "value": mean, "ci_low": low, "ci_high": high, "n": n}
    for key, kind in SATISFACTION[1:]:
        share = _share(row, key)
        if share:
            return {"kind": kind, **share}
    return None


def summary(row: dict) -> dict:
    """The figures of one group of rows, from its aggregates."""
    has_latency = bool(row.get("latency_ms_n"))
    return {"requests": row["requests"],
            "latency": {"mean": row["latency_ms_mean"] if has_latency else None,
                        "p95": row["latency_ms_p95"] if has_latency else None, "unit": "ms"},
            "error_rate": _share(row, "error"), "satisfaction": satisfaction(row),
            "fallback_rate": _share(row, "fallback")}


def figures(lazy, window_days: int) -> dict[str, Any]:
    """{"window", "first_week", "daily"} aggregates of one version's rows (a lazy frame), in one pass over them."""
    import polars as pl  # the log engine: only imports and reports need it

    bounds = lazy.select(pl.col("ts").min().alias("first"), pl.col("ts").max().alias("end")).collect()
    first, end = bounds["first"][0], bounds["end"][0]
    if end is None:
        return {"window": None, "first_week": None, "daily": []}
    window, first_week, daily = pl.collect_all(
        [lazy.filter(pl.col("ts") > end - timedelta(days=window_days)).select(aggregates()),
         lazy.filter(pl.col("ts") < first + timedelta(days=FIRST_WEEK_DAYS)).select(aggregates()),
         lazy.group_by("model", "day").agg(aggregates()).sort("model", "day")], engine="streaming")
    return {"window": window.row(0, named=True), "first_week": first_week.row(0, named=True),
            "daily": [_day(row) for row in daily.iter_rows(named=True)]}


def _day(row: dict) -> dict:
    s = summary(row)
    sat = s["satisfaction"]
    return {"model": row["model"], "day": row["day"].isoformat(), "requests": row["requests"],
            "latency_mean": s["latency"]["mean"], "latency_p95": s["latency"]["p95"],
            "error_rate": s["error_rate"]["value"] if s["error_rate"] else None,
            "satisfaction": sat["value"] if sat else None, "satisfaction_low": sat["ci_low"] if sat else None,
            "satisfaction_high": sat["ci_high"] if sat else None}


def against_first_week(window: dict, baseline: dict) -> list[dict]:
    """Guardrails (latency, errors) surely worse, and satisfaction surely lower, than in the first week: each with
    the difference and its 95% interval."""
    out = []
    for column, name in (("latency_ms", "latency"), ("error", "error rate")):  # higher is worse for both
        a, b = (baseline.get(f"{column}_n") or 0), (window.get(f"{column}_n") or 0)
        if a < 2 or b < 2:
            continue
        w = ab_traffic.welch_from(baseline[f"{column}_mean"], baseline[f"{column}_var"], a,
                                  window[f"{column}_mean"], window[f"{column}_var"], b)
        if w["ci_low"] > 0:
            out.append({"metric": name, "kind": "guardrail", "first_week": w["control"], "window": w["treatment"],
                        "diff": w["diff"], "ci_low": w["ci_low"], "ci_high": w["ci_high"],
                        "sentence": f"{name} is worse than in the version's first week: {w['control']:.4g} -> "
                                    f"{w['treatment']:.4g} (95% interval of the difference {w['ci_low']:+.3g} to "
                                    f"{w['ci_high']:+.3g})."})
    before, now = satisfaction(baseline), satisfaction(window)
    if before and now and before["kind"] == now["kind"]:
        diff, low, high = _difference(before, now)
        if high < 0:
            out.append({"metric": "satisfaction", "kind": "satisfaction", "first_week": before["value"],
                        "window": now["value"], "diff": diff, "ci_low": low, "ci_high": high,
                        "sentence": f"Satisfaction ({now['kind']}) is lower than in the version's first week: "
                                    f"{before['value']:.3g} -> {now['value']:.3g} (95% interval of the difference "
                                    f"{low:+.3g} to {high:+.3g})."})
    return out


def against_evaluation(window: dict, rule: dict) -> list[dict]:
    """The production fallback rate surely above the rate the version's evaluation expected of its routing rule
    (on its locked test examples): fewer production requests are answered confidently than on the test set. Both
    rates are estimates; the interval of their difference counts the uncertainty of each (Wilson)."""
    now = _share(window, "fallback")
    n = int(rule.get("n") or 0)
    if not now or n < 1:
        return []
    expected = float(rule["expected"])
    low_e, high_e = wilson(expected * n, n)
    diff, low, high = _difference({"value": expected, "ci_low": low_e, "ci_high": high_e}, now)
    if low <= 0:
        return []
    return [{"metric": "fallback rate", "kind": "routing", "expected": expected, "window": now["value"], "diff": diff,
             "ci_low": low, "ci_high": high,
             "sentence": f"The fallback rate is higher than the evaluation expected of the routing rule (confidence < "
                         f"{rule['threshold']:g}): {expected:.1%} on {n} test examples -> {now['value']:.1%} in "
                         f"production (95% interval of the difference {low:+.1%} to {high:+.1%}). Production "
                         "requests are answered confidently less often than the test set."}]


def _difference(before: dict, now: dict) -> tuple[float, float, float]:
    """now - before and its 95% interval, from each side's value and interval (independent estimates)."""
    diff = now["value"] - before["value"]
    se = math.sqrt(_se(before) ** 2 + _se(now) ** 2)
    return diff, diff - Z95 * se, diff + Z95 * se


def _se(s: dict) -> float:
    """The standard error behind an interval (its half-width over 1.96)."""
    return (s["ci_high"] - s["ci_low"]) / (2 * Z95) if s["ci_high"] is not None else 0.0
