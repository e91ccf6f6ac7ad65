"""A/B results from production traffic: a log of requests served by two variants (say 10% to the new model).

    analyze(path, split=0.1) -> {"n", "srm", "metrics", "guardrails", "cumulative", "decision", "reasons"}

The log (CSV or JSONL) has a variant column, a user (or session) id, a timestamp (found by the names A/B tools use:
group, arm, bucket, variation, experiment_group; user, session, visitor; time, date, or given by a mapping), and
metric columns: any of
satisfaction, resolved, latency (seconds or ms), error, or other numbers. Users are the unit of randomization, so
every metric is first averaged per user; variants are compared on those per-user means: the difference with Welch's
interval and p-value (scipy), and the relative lift with a delta-method interval. The sample-ratio-mismatch check is
a chi-square test of the users per variant against the planned split (alert at p < 0.001: the assignment is broken
and no result can be trusted). Guardrails: latency p50/p95 and the error rate must not be significantly worse.
Exact duplicate rows are counted and dropped, and users who appear in both variants are counted and left out (their
outcome mixes both models); both figures are in "data_issues" and among the reasons.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from pathlib import Path
from typing import Any, cast

import numpy as np

from engine import column_mapping, log_files
from engine.errors import StudioError
from engine.review.result_types import AbResult, SampleRatio, Welch

CONTROL_NAMES = ("control", "a", "base", "baseline", "old", "current")
TREATMENT_NAMES = ("treatment", "b", "new", "finetuned", "fine-tuned", "candidate")
# The column names A/B tools export (first match wins); a mapping overrides them.
VARIANT_COLUMNS = ("variant", "group", "arm", "bucket", "variation", "experiment_group", "treatment_group", "cohort")
USER_COLUMNS = ("user_id", "user", "userid", "uid", "visitor_id", "visitor", "session_id", "session", "anonymous_id")
TIME_COLUMNS = ("timestamp", "time", "ts", "datetime", "date", "event_time", "created_at")
MAPPABLE = ("variant", "user", "time")
LOWER_IS_BETTER = ("latency", "latency_ms", "latency_s", "error", "errors", "cost")
PRIMARY_ORDER = ("satisfaction", "resolved", "csat", "thumbs_up", "conversion")
# A sample-ratio mismatch is flagged at p < 0.001 (Kohavi, Tang and Xu, Trustworthy Online Controlled Experiments):
# strict, because a mismatch invalidates the whole test, and large tests make tiny imbalances significant.
SRM_ALPHA = 0.001


class TrafficError(StudioError, ValueError):
    pass


USUAL = {"variant": VARIANT_COLUMNS, "user": USER_COLUMNS, "time": TIME_COLUMNS}
NEEDED = {"variant": "a variant column (control/treatment, A/B)", "user": "a user or session id column",
          "time": "a timestamp column"}


def parse_mapping(text: str | None) -> dict[str, str]:
    """`variant=COL,user=COL,time=COL` (any subset) -> dict; TrafficError for a bad part."""
    return column_mapping.parse(text, MAPPABLE, TrafficError)


def _frame(path: Path | str):
    """The log as a pandas frame with normalised column names, read by the log reader every import shares
    (engine.log_files: Polars); the statistics below are pandas and scipy."""
    path = Path(path)
    if not path.is_file():
        raise TrafficError(f"There is no file {path}.")
    table, _ = log_files.read(path, TrafficError)
    names = [column_mapping.normal(c) for c in table.columns]
    if len(set(names)) < len(names):  # "User" and "user ": one name once compared
        twice = next(n for n, count in Counter(names).items() if count > 1)
        raise TrafficError(f"The traffic log has two columns named {twice[:80]!r}; rename one.")
    table.columns = names
    return table.to_pandas()


def detected_columns(path: Path | str) -> tuple[list[str], dict[str, str | None]]:
    """(the log's columns, the variant/user/time column each would be read from by name) for the page's boxes."""
    columns = list(_frame(path).columns)
    found = column_mapping.find(columns, USUAL, None, TrafficError)
    return columns, {key: found.get(key) for key in USUAL}


def read_log(path: Path | str, mapping: dict[str, str] | None = None):
    """The log as a DataFrame with variant, user_id and timestamp columns, and its data issues: exact duplicate rows
    (dropped) and users seen in both variants (excluded: their outcome mixes both models)."""
    import pandas as pd  # the scientific stack costs a second to import: only when statistics are computed

    df = _frame(path)
    found = column_mapping.find(df.columns, USUAL, mapping, TrafficError)
    missing = next((key for key in USUAL if key not in found), None)
    if missing:
        raise TrafficError(f"The traffic log needs {NEEDED[missing]} ({', '.join(USUAL[missing][:5])}, ...); name "
                           f"yours with --map {missing}=COLUMN.")
    variant, user, when = found["variant"], found["user"], found["time"]
    if len({variant, user, when}) < 3:
        raise TrafficError("The variant, user and time columns must be three different columns.")
    df = df[[c for c in df.columns if c not in ("variant", "user_id", "timestamp") or c in (variant, user, when)]]
    df = df.rename(columns={variant: "variant", user: "user_id", when: "timestamp"})
    rows = len(df)
    duplicated = int(df.duplicated().sum())
    df = df.drop_duplicates().reset_index(drop=True)
    df["variant"] = df["variant"].astype(str).str.strip()
    df["user_id"] = df["user_id"].astype(str).str.strip()
    df["timestamp"] = pd.to_datetime(df["timestamp"], errors="coerce", utc=True, format="mixed")
    bad = df["timestamp"].isna()
    if bad.any():
        raise TrafficError(f"Row {int(np.flatnonzero(bad)[0]) + 1} has a timestamp that cannot be read.")
    both = df.groupby("user_id")["variant"].nunique()
    mixed = set(both[both > 1].index)
    excluded = int(df["user_id"].isin(mixed).sum())
    df = df[~df["user_id"].isin(mixed)].reset_index(drop=True)
    issues = {"rows": rows, "duplicate_rows_dropped": duplicated, "users_in_both_variants": len(mixed),
              "rows_of_those_users_excluded": excluded,
              "columns": {"variant": variant, "user": user, "time": when}}
    return df, issues


def _variants(df, treatment: str | None) -> tuple[str, str]:
    names = sorted(df["variant"].unique())
    if len(names) != 2:
        raise TrafficError(f"The log must have exactly two variants; it has {len(names)}: {', '.join(names[:5])}.")
    if treatment is not None:
        if treatment not in names:
            raise TrafficError(f"There is no variant {treatment!r} in the log ({', '.join(names)}).")
        return next(n for n in names if n != treatment), treatment
    lower = [n.lower() for n in names]
    for t in TREATMENT_NAMES:
        if t in lower:
            return names[1 - lower.index(t)], names[lower.index(t)]
    for c in CONTROL_NAMES:
        if c in lower:
            return names[lower.index(c)], names[1 - lower.index(c)]
    raise TrafficError(f"Cannot tell control from treatment among {names}; name the new model's with --treatment.")


def p_text(p: float | None) -> str:
    """A p-value as every screen shows it (text, table and CLI alike): two significant figures."""
    return "n/a" if p is None else f"{p:.2g}"


def observed_users(path: Path | str, treatment: str | None = None, mapping: dict[str, str] | None = None) -> dict:
    """{"control", "treatment", "n": {...}, "share"}: the users per variant and the treatment's observed share, for
    a page that must ask for the planned share before it can test the split against it."""
    df, _ = read_log(path, mapping)
    control, treat = _variants(df, treatment)
    users = df.groupby("variant")["user_id"].nunique()
    n = {"control": int(users.get(control, 0)), "treatment": int(users.get(treat, 0))}
    total = n["control"] + n["treatment"]
    return {"control": control, "treatment": treat, "n": n, "share": n["treatment"] / total if total else None}


def welch(control: np.ndarray, treatment: np.ndarray) -> Welch:
    """Difference of means (treatment - control) with Welch's 95% interval and p-value, and the relative lift with a
    delta-method interval."""
    return welch_from(float(np.mean(control)), float(np.var(control, ddof=1)), len(control),
                      float(np.mean(treatment)), float(np.var(treatment, ddof=1)), len(treatment))


def welch_from(mc: float, vc: float, nc: int, mt: float, vt: float, nt: int) -> Welch:
    """The same from each side's mean, variance (ddof 1) and count (what an aggregate over millions of rows gives)."""
    from scipy.special import stdtr, stdtrit  # Student's t, without importing scipy.stats (a second)

    vc, vt = vc or 0.0, vt or 0.0
    se = math.sqrt(vc / nc + vt / nt)
    diff = mt - mc
    if se == 0:
        return {"control": mc, "treatment": mt, "diff": diff, "ci_low": diff, "ci_high": diff,
                "relative_lift": diff / mc if mc else None, "lift_ci_low": None, "lift_ci_high": None,
                "p_value": 1.0 if diff == 0 else 0.0}
    dof = (vc / nc + vt / nt) ** 2 / ((vc / nc) ** 2 / (nc - 1) + (vt / nt) ** 2 / (nt - 1))
    q = float(stdtrit(dof, 0.975))
    p = float(2 * stdtr(dof, -abs(diff) / se))  # Welch's two-sided p-value, as scipy.stats.ttest_ind gives it
    out: Welch = {"control": mc, "treatment": mt, "diff": diff, "ci_low": diff - q * se, "ci_high": diff + q * se,
           "p_value": p, "relative_lift": None, "lift_ci_low": None, "lift_ci_high": None}
    if mc != 0:
        lift = mt / mc - 1
        # Var(mt/mc) by the delta method (independent groups): (1/mc)^2 vt/nt + (mt/mc^2)^2 vc/nc
        se_ratio = math.sqrt(vt / nt / mc ** 2 + (mt ** 2) * vc / nc / mc ** 4)
        z = 1.959963984540054
        out["relative_lift"], out["lift_ci_low"], out["lift_ci_high"] = lift, lift - z * se_ratio, lift + z * se_ratio
    return out


def srm(n_control: int, n_treatment: int, planned_share: float) -> SampleRatio:
    from scipy import stats  # the scientific stack costs a second to import: only when statistics are computed

    total = n_control + n_treatment
    expected = [total * (1 - planned_share), total * planned_share]
    p = float(stats.chisquare([n_control, n_treatment], expected).pvalue)
    return {"expected_share": planned_share, "observed_share": n_treatment / total if total else None,
            "p_value": p, "alert": p < SRM_ALPHA}


def analyze(path: Path | str, split: float, treatment: str | None = None, primary: str | None = None,
            mapping: dict[str, str] | None = None) -> AbResult:
    if not 0 < split < 1:
        raise TrafficError("--split is the planned share of traffic sent to the new model, between 0 and 1.")
    df, issues = read_log(path, mapping)
    control, treat = _variants(df, treatment)
    metric_cols = [c for c in df.columns if c not in ("variant", "user_id", "timestamp")
                   and _numeric(df[c]) is not None]
    if not metric_cols:
        raise TrafficError("The traffic log has no numeric metric columns (satisfaction, resolved, latency, error).")
    for c in metric_cols:
        df[c] = _numeric(df[c])
    per_user = df.groupby(["variant", "user_id"])[metric_cols].mean().reset_index()
    c_users, t_users = per_user[per_user.variant == control], per_user[per_user.variant == treat]
    if len(c_users) < 2 or len(t_users) < 2:
        raise TrafficError("Each variant needs at least two users.")
    out: dict[str, Any] = {"variants": {"control": control, "treatment": treat},
                 "n": {"control": int(len(c_users)), "treatment": int(len(t_users))},
                 "requests": {"control": int((df.variant == control).sum()), "treatment": int((df.variant == treat)
                                                                                            .sum())},
                 "srm": srm(len(c_users), len(t_users), split), "metrics": {}, "data_issues": issues}
    for c in metric_cols:
        a, b = c_users[c].dropna().to_numpy(float), t_users[c].dropna().to_numpy(float)
        if len(a) >= 2 and len(b) >= 2:
            out["metrics"][c] = {**welch(a, b), "lower_is_better": c in LOWER_IS_BETTER}
    out["guardrails"] = _guardrails(df, control, treat, out["metrics"])
    primary = primary or next((p for p in PRIMARY_ORDER if p in out["metrics"]),
                              next((m for m in out["metrics"] if m not in LOWER_IS_BETTER), None))
    out["primary"] = primary
    out["cumulative"] = _cumulative(df, control, treat, primary) if primary else []
    out["decision"], out["reasons"] = _decide(out)
    if issues["duplicate_rows_dropped"] or issues["users_in_both_variants"]:
        out["reasons"].append(
            f"Data issues: {issues['duplicate_rows_dropped']:,} exact duplicate rows were dropped and "
            f"{issues['users_in_both_variants']:,} users seen in both variants were left out "
            f"({issues['rows_of_those_users_excluded']:,} rows).")
    out["routing_snippet"] = routing_snippet(split)
    return cast(AbResult, out)


def _numeric(series):
    import pandas as pd  # the scientific stack costs a second to import: only when statistics are computed

    if series.dtype == bool:
        return series.astype(float)
    values = pd.to_numeric(series.map(lambda v: {"true": 1, "false": 0, "yes": 1, "no": 0}.get(str(v).lower(), v)),
                           errors="coerce")
    return values if values.notna().mean() > 0.9 else None


def _guardrails(df, control: str, treat: str, metrics: dict) -> dict:
    g: dict[str, Any] = {}
    latency = next((c for c in ("latency", "latency_ms", "latency_s") if c in df.columns), None)
    if latency:
        for name, v in (("control", control), ("treatment", treat)):
            x = df.loc[df.variant == v, latency].dropna()
            g[f"{latency}_p50_{name}"] = float(x.quantile(0.5))
            g[f"{latency}_p95_{name}"] = float(x.quantile(0.95))
    breached = []
    for c in ("latency", "latency_ms", "latency_s", "error", "errors"):
        m = metrics.get(c)
        if m and m["ci_low"] > 0:  # significantly higher latency or error rate for the new model
            breached.append(c)
    g["breached"] = breached
    return g


def _cumulative(df, control: str, treat: str, metric: str) -> list[dict]:
    """The lift of the primary metric on the data up to the end of each day (or of each tenth of the period)."""
    start, end = df.timestamp.min(), df.timestamp.max()
    days = (end - start).days
    cuts = (sorted(df.timestamp.dt.floor("D").unique())[1:] + [end + np.timedelta64(1, "s")] if days >= 2
            else [start + (end - start) * k / 10 for k in range(1, 11)])
    points = []
    for cut in cuts:
        part = df[df.timestamp <= cut] if cut == cuts[-1] else df[df.timestamp < cut]
        users = part.groupby(["variant", "user_id"])[metric].mean().reset_index()
        a = users.loc[users.variant == control, metric].dropna().to_numpy(float)
        b = users.loc[users.variant == treat, metric].dropna().to_numpy(float)
        if len(a) >= 2 and len(b) >= 2:
            w = welch(a, b)
            points.append({"until": str(min(cut, end)), "users": int(len(a) + len(b)),
                           "relative_lift": w["relative_lift"], "lift_ci_low": w["lift_ci_low"],
                           "lift_ci_high": w["lift_ci_high"]})
    return points


def _decide(r: dict) -> tuple[str, list[str]]:
    reasons = []
    if r["srm"]["alert"]:
        s = r["srm"]
        return "do not ship", [f"Sample ratio mismatch: {s['observed_share']:.2%} of users got the new model against "
                               f"{s['expected_share']:.0%} planned (p = {p_text(s['p_value'])}); the assignment is broken, "
                               "so no result of this test can be trusted. Fix the routing and test again."]
    for c in r["guardrails"]["breached"]:
        m = r["metrics"][c]
        reasons.append(f"Guardrail {c} is worse with the new model: {m['control']:.4g} -> {m['treatment']:.4g} "
                       f"(95% interval of the difference {m['ci_low']:+.3g} to {m['ci_high']:+.3g}).")
    if reasons:
        return "do not ship", reasons
    p = r["primary"]
    if p is None:
        return "keep collecting", ["No primary metric (satisfaction, resolved, ...) to decide on."]
    m = r["metrics"][p]
    worse_if_up = m["lower_is_better"]
    better = m["ci_high"] < 0 if worse_if_up else m["ci_low"] > 0
    worse = m["ci_low"] > 0 if worse_if_up else m["ci_high"] < 0
    lift = f"{m['relative_lift']:+.1%}" if m["relative_lift"] is not None else f"{m['diff']:+.3g}"
    interval = (f"[{m['lift_ci_low']:+.1%}, {m['lift_ci_high']:+.1%}]" if m["lift_ci_low"] is not None
                else f"[{m['ci_low']:+.3g}, {m['ci_high']:+.3g}]")
    if better:
        return "ship", [f"{p} improved by {lift} (95% interval {interval}, p = {p_text(m['p_value'])}) and no guardrail "
                        "is worse."]
    if worse:
        return "do not ship", [f"{p} got worse by {lift} (95% interval {interval}, p = {p_text(m['p_value'])})."]
    return "keep collecting", [f"No detectable change in {p} yet: {lift} (95% interval {interval} includes zero, "
                               f"p = {p_text(m['p_value'])}); more users narrow the interval."]


def assign_variant(user_id: str, share: float, salt: str = "studio-ab") -> str:
    """Deterministic routing: the same user always gets the same variant; `share` of users get the treatment."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return "treatment" if int.from_bytes(digest[:8], "big") / 2 ** 64 < share else "control"


def routing_snippet(share: float, salt: str = "studio-ab") -> str:
    return (f'''import hashlib
from collections import Counter

def variant(user_id: str, share: float = {share!r}, salt: str = "{salt}") -> str:
    """Same user, same variant; {share:.0%} of users get the fine-tuned model."""
    digest = hashlib.sha256(f"{{salt}}:{{user_id}}".encode("utf-8")).digest()
    return "treatment" if int.from_bytes(digest[:8], "big") / 2 ** 64 < share else "control"
''')
