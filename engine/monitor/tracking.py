"""What a model version does in production, per day and over a window: requests, latency (mean and p95), error rate,
satisfaction (mean rating, else thumbs-up share, else resolved share) with 95% intervals, the hybrid-routing fallback
rate where the log has it, and guardrail alerts against the version's own first week."""

from __future__ import annotations

import math

import numpy as np

from engine.review import ab_traffic, stats

FIRST_WEEK_DAYS = 7
Z95 = 1.959963984540054


def satisfaction(frame) -> dict | None:
    """{"kind", "value", "ci_low", "ci_high", "n"} from the best feedback the rows have, or None."""
    if "rating" in frame and frame["rating"].notna().any():
        values = frame["rating"].dropna().to_numpy(float)
        ci = stats.mean_ci(list(values))
        return {"kind": "mean rating (1-5)", "value": ci["mean"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
                "n": len(values)}
    for key, kind in (("thumbs", "thumbs-up share"), ("resolved", "resolved share")):
        if key in frame and frame[key].notna().any():
            values = frame[key].dropna().to_numpy(float)
            low, high = stats.wilson(float(values.sum()), len(values))
            return {"kind": kind, "value": float(values.mean()), "ci_low": low, "ci_high": high, "n": len(values)}
    return None


def _share(values) -> dict | None:
    values = values.dropna().to_numpy(float)
    if not len(values):
        return None
    low, high = stats.wilson(float(values.sum()), len(values))
    return {"value": float(values.mean()), "ci_low": low, "ci_high": high, "n": len(values)}


def summary(frame) -> dict:
    """The window's figures for one version."""
    latency = frame["latency_ms"].dropna().to_numpy(float) if "latency_ms" in frame else np.array([])
    return {"requests": int(len(frame)),
            "latency": {"mean": float(latency.mean()) if len(latency) else None,
                        "p95": float(np.percentile(latency, 95)) if len(latency) else None, "unit": "ms"},
            "error_rate": _share(frame["error"]) if "error" in frame else None,
            "satisfaction": satisfaction(frame),
            "fallback_rate": _share(frame["fallback"]) if "fallback" in frame else None}


def daily(frame) -> list[dict]:
    """Per model version and day (the time series the page plots)."""
    rows = []
    for (model, day), part in frame.groupby(["model", "day"], sort=True, observed=True):
        s = summary(part)
        rows.append({"model": model, "day": day, "requests": s["requests"], "latency_mean": s["latency"]["mean"],
                     "latency_p95": s["latency"]["p95"],
                     "error_rate": s["error_rate"]["value"] if s["error_rate"] else None,
                     "satisfaction": s["satisfaction"]["value"] if s["satisfaction"] else None,
                     "satisfaction_low": s["satisfaction"]["ci_low"] if s["satisfaction"] else None,
                     "satisfaction_high": s["satisfaction"]["ci_high"] if s["satisfaction"] else None})
    return rows


def first_week(frame):
    """The version's first FIRST_WEEK_DAYS days in production (its own baseline)."""
    start = frame["ts"].min()
    return frame[frame["ts"] < start + np.timedelta64(FIRST_WEEK_DAYS, "D")]


def against_first_week(window, baseline) -> list[dict]:
    """Guardrails (latency, errors) surely worse, and satisfaction surely lower, than in the first week: each with
    the difference and its 95% interval."""
    out = []
    checks = (("latency_ms", "latency", True), ("error", "error rate", True))
    for column, name, up_is_bad in checks:
        a = baseline[column].dropna().to_numpy(float) if column in baseline else np.array([])
        b = window[column].dropna().to_numpy(float) if column in window else np.array([])
        if len(a) < 2 or len(b) < 2:
            continue
        w = ab_traffic.welch(a, b)
        if (w["ci_low"] > 0) if up_is_bad else (w["ci_high"] < 0):
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
