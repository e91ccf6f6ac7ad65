"""The monitoring report of one model version over a window (the last WINDOW_DAYS days of its logs): production
figures with intervals, drift against its training data, guardrail alerts, and whether retraining is recommended
and why. `studio monitor report --json` prints it; the Monitor page shows it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypedDict

from engine.errors import StudioError
from engine.models import registry
from engine.monitor import drift, reference, storage, tracking
from engine.store.tables import ModelVersion

WINDOW_DAYS = 7
RETRAIN_DRIFT = drift.SIGNIFICANT  # the guidance: retrain when distribution drift exceeds 0.20


class MonitorError(StudioError, ValueError):
    """A report that cannot be made; the message says why."""


class MonitorReport(TypedDict):
    model: str
    registered: bool
    window: dict[str, Any]
    requests: int
    latency: dict[str, Any]
    error_rate: dict[str, Any] | None
    satisfaction: dict[str, Any] | None
    fallback_rate: dict[str, Any] | None
    routing: dict[str, Any] | None
    drift: dict[str, Any] | None
    alerts: list[dict[str, Any]]
    retrain_recommended: bool
    reasons: list[str]
    daily: list[dict[str, Any]]


def models_seen(project_id: int) -> list[str]:
    lazy = storage.scan(project_id, ("model",))
    if lazy is None:
        return []
    return sorted(lazy.select("model").drop_nulls().unique().collect()["model"].to_list())


def default_model(project_id: int) -> str:
    """The version in production, else the one with the most logged requests."""
    current = registry.production(project_id)
    if current is not None:
        return current.label
    lazy = storage.scan(project_id, ("model",))
    counts = lazy.group_by("model").len().drop_nulls("model").sort(["len", "model"], descending=[True, False]) \
        .collect() if lazy is not None else None
    if counts is None or counts.is_empty():
        raise MonitorError("No production logs yet: import some with `studio monitor import LOG` (or the Monitor "
                           "page).")
    return str(counts["model"][0])


def _version(label: str) -> ModelVersion | None:
    try:
        return registry.get_version(label)
    except StudioError:
        return None


def report(project_id: int, model: str | None = None, window_days: int = WINDOW_DAYS) -> MonitorReport:
    import polars as pl  # the log engine: only imports and reports need it

    label = model or default_model(project_id)
    version = _version(label)
    rule = routing_rule(version) if version is not None else None
    lazy = storage.scan(project_id, storage.NUMBERS, model=label)  # every row, without the texts
    if lazy is not None and rule is not None:  # a logged fallback flag wins; else the rule applied to the confidence
        routed = pl.when(pl.col("confidence").is_not_null()) \
            .then((pl.col("confidence") < rule["threshold"]).cast(pl.Float64))
        lazy = lazy.with_columns(fallback=pl.coalesce(pl.col("fallback"), routed))
    found = tracking.figures(lazy, window_days) if lazy is not None else None
    if found is None or found["window"] is None:
        raise MonitorError(f"No production logs of {label} yet; its rows name another model (`studio monitor "
                           f"report --model NAME`), or import its logs first.")
    window, baseline = found["window"], found["first_week"]
    figures = tracking.summary(window)
    alerts = tracking.against_first_week(window, baseline) \
        if window["ts_min"] >= baseline["ts_max"] else []  # the window must come after the first week
    if rule is not None:
        alerts += tracking.against_evaluation(window, rule)
    end = window["ts_max"]
    drifted = None
    if version is not None:
        drifted = _drift(project_id, label, version, since=end - timedelta(days=window_days))
    reasons = []
    if drifted and drifted["drifted"]:
        reasons.append(f"Distribution drift {drifted['distribution_drift']:.2f} on {drifted['feature']} is above "
                       f"{RETRAIN_DRIFT:.2f} (significant) and above what unchanged traffic of this size reaches "
                       f"({drifted['noise'][drifted['feature']]:.2f}): production requests no longer look like the "
                       "training data.")
    reasons += [a["sentence"] for a in alerts if a["kind"] == "satisfaction"]
    return {"model": label, "registered": version is not None,
            "window": {"start": str(window["ts_min"]), "end": str(end), "days": window_days},
            "requests": figures["requests"], "latency": figures["latency"], "error_rate": figures["error_rate"],
            "satisfaction": figures["satisfaction"], "fallback_rate": figures["fallback_rate"], "routing": rule,
            "drift": drifted,
            "alerts": alerts, "retrain_recommended": bool(reasons), "reasons": reasons,
            "daily": found["daily"]}


def routing_rule(version: ModelVersion) -> dict | None:
    """{"threshold", "expected", "n"}: the hybrid-routing rule the version's evaluation recommended (fall back to the
    few-shot base model below a confidence threshold), its expected fallback rate and the test examples behind it;
    None when the version was not evaluated or its evaluation recommended no fallback."""
    from engine.evaluate import results  # the evaluation's stored report (no model is loaded)

    try:
        found = results.load_report(registry.run_of(version))
    except StudioError:  # its run was deleted: no evaluation to read
        return None
    if found is None or "routing" not in found or not found["routing"]["rule"].get("threshold"):
        return None
    rule = found["routing"]["rule"]
    return {"threshold": float(rule["threshold"]), "expected": float(rule["expected_fallback_rate"]),
            "n": int(found["n_examples"])}


def _drift(project_id: int, label: str, version: ModelVersion, since) -> dict | None:
    """PSI of the window's requests (a sample, drawn before a million texts become Python strings) against the
    version's training requests; None when it has no training data to compare with."""
    facts = version.lineage.get("facts", {})
    ref = reference.load(facts.get("config", {}).get("split_id"), str(facts.get("base_model")))
    texts = storage.scan(project_id, ("request", "turn"), model=label, since=since)
    if not ref or texts is None:
        return None
    rows = texts.select("request", "turn").drop_nulls("request").collect()
    if rows.height > drift.SAMPLE:
        rows = rows.sample(drift.SAMPLE, seed=0)
    return drift.drift(ref, rows["request"].to_list(), rows["turn"].to_list())
