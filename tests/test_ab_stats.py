"""A/B and agreement statistics against published values and the reference libraries, and traffic logs with a known
truth (a planted lift, a broken split)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import run_studio, shown

from engine.review import ab_traffic
from engine.review import stats as review_stats  # scipy.stats is used here too

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the worked example: 4 coders x 12 units.
KRIPP = [[1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
         [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
         [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
         [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan]]


def test_ordinal_alpha_matches_the_published_example():
    assert review_stats.krippendorff_alpha(KRIPP) == pytest.approx(0.815, abs=5e-4)
    assert review_stats.band(0.815) == "reliable" and review_stats.band(0.7) == "tentative"
    assert review_stats.band(0.5) == "unreliable"


def test_wilson_interval_matches_its_formula():
    s, n = 37.5, 60
    p, z = s / n, 1.959963984540054
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = review_stats.wilson(s, n)
    assert low == pytest.approx(centre - half, abs=1e-9) and high == pytest.approx(centre + half, abs=1e-9)
    from statsmodels.stats.proportion import proportion_confint  # the library's answer, as an oracle

    for successes, total in ((s, n), (0, 12), (12, 12), (3, 1000)):
        assert review_stats.wilson(successes, total) == pytest.approx(
            proportion_confint(successes, total, alpha=0.05, method="wilson"), abs=1e-12)


def test_mean_interval_matches_scipy():
    from scipy import stats

    x = np.random.default_rng(4).normal(3.7, 0.9, 57)
    ci = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    got = review_stats.mean_ci(x)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx(ci, rel=1e-12)
    assert review_stats.mean_ci([4.0])["ci_low"] == 4.0


def test_holm_sign_test_and_sample_size_on_known_values():
    adjusted = review_stats.holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})
    rows = [{"vote": "finetuned", "base_words": 1, "finetuned_words": 1, "reviewer": "r"}] * 15 + \
           [{"vote": "base", "base_words": 1, "finetuned_words": 1, "reviewer": "r"}] * 5 + \
           [{"vote": "tie", "base_words": 1, "finetuned_words": 1, "reviewer": "r"}] * 4
    r = review_stats.pairwise_results(rows)
    assert r["sign_test_p"] == pytest.approx(0.041389, abs=1e-6)  # 2 * P(X <= 5), X ~ Binomial(20, 1/2)
    assert r["win_rate"] == pytest.approx((15 + 2) / 24) and r["tie_share"] == pytest.approx(4 / 24)
    # Cohen's h for 60% against 50% is 0.2014; n = ((1.95996 + 0.84162) / h)^2 = 193.5
    assert review_stats.votes_needed(0.6) == 194


def test_length_bias_is_flagged_when_the_longer_answer_keeps_winning():
    rows = [{"vote": "finetuned" if k % 10 else "base", "base_words": 10 if k % 2 else 40,
             "finetuned_words": 40 if k % 2 else 10, "reviewer": "r"} for k in range(60)]
    for row in rows:  # the winner is always the longer one, whichever model wrote it
        longer = "finetuned" if row["finetuned_words"] > row["base_words"] else "base"
        row["vote"] = longer
    r = review_stats.pairwise_results(rows)
    assert r["length_bias"]["share"] == 1.0 and r["length_bias"]["warning"]
    fair = [{**row, "vote": "finetuned"} for row in rows]  # the fine-tuned model wins whatever the length
    assert review_stats.pairwise_results(fair)["length_bias"]["warning"] is None


def test_welch_difference_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(1)
    a, b = rng.normal(3.0, 1.0, 400), rng.normal(3.2, 1.5, 300)
    out = ab_traffic.welch(a, b)
    ref = stats.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert out["diff"] == pytest.approx(b.mean() - a.mean())
    assert out["ci_low"] == pytest.approx(ci.low, rel=1e-9) and out["ci_high"] == pytest.approx(ci.high, rel=1e-9)
    assert out["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)


def traffic(path, users: int, share: float, lift: float = 0.0, seed: int = 0, forced_share: float | None = None,
            latency_shift: float = 0.0) -> None:
    """A simulated request log: each user sees one variant (by the routing hash, or forced shares) and sends 1-4
    requests; satisfaction is Bernoulli(0.60) for control and 0.60 * (1 + lift) for the treatment."""
    rng = np.random.default_rng(seed)
    lines = []
    for u in range(users):
        uid = f"user-{u}"
        if forced_share is None:
            variant = ab_traffic.assign_variant(uid, share)
        else:
            variant = "treatment" if rng.random() < forced_share else "control"
        p = 0.60 * (1 + lift) if variant == "treatment" else 0.60
        for k in range(int(rng.integers(1, 5))):
            lines.append(json.dumps({
                "variant": variant, "user_id": uid, "timestamp": f"2026-11-{1 + (u * 7 + k) % 14:02d}T12:00:00Z",
                "satisfaction": int(rng.random() < p), "latency": float(rng.gamma(4, 0.2) + (
                    latency_shift if variant == "treatment" else 0)), "error": int(rng.random() < 0.02)}))
    path.write_text("\n".join(lines) + "\n")


def test_a_simulated_lift_is_covered_by_its_interval_and_shipped(tmp_path, ws):
    log = tmp_path / "traffic.jsonl"
    traffic(log, 20000, 0.5, lift=0.10, seed=4)
    r = ab_traffic.analyze(log, 0.5)
    m = r["metrics"]["satisfaction"]
    assert m["ci_low"] <= 0.06 <= m["ci_high"]  # the planted difference: 0.66 - 0.60
    assert m["lift_ci_low"] <= 0.10 <= m["lift_ci_high"] and m["ci_low"] > 0
    assert not r["srm"]["alert"] and r["decision"] == "ship" and r["primary"] == "satisfaction"
    assert r["cumulative"] and r["cumulative"][-1]["relative_lift"] == pytest.approx(m["relative_lift"])
    proc = run_studio("ab", "analyze", log, "--split", "0.5", "--json", env_home=ws.root)
    assert proc.returncode == 0
    out = json.loads(proc.stdout)
    assert set(out["n"]) == {"control", "treatment"} and out["decision"] == "ship"
    assert set(out["srm"]) == {"expected_share", "observed_share", "p_value", "alert"}
    assert {"control", "treatment", "diff", "ci_low", "ci_high", "relative_lift", "p_value"} <= set(
        out["metrics"]["satisfaction"])


def test_a_52_48_split_planned_as_50_50_raises_the_mismatch_alert(tmp_path):
    log = tmp_path / "srm.jsonl"
    traffic(log, 20000, 0.5, forced_share=0.48, seed=2)
    r = ab_traffic.analyze(log, 0.5)
    assert r["srm"]["alert"] and r["srm"]["p_value"] < 0.001
    assert r["decision"] == "do not ship" and "mismatch" in r["reasons"][0]


def test_a_slower_model_trips_the_latency_guardrail(tmp_path):
    log = tmp_path / "slow.jsonl"
    traffic(log, 4000, 0.5, lift=0.0, seed=3, latency_shift=0.3)
    r = ab_traffic.analyze(log, 0.5)
    assert "latency" in r["guardrails"]["breached"] and r["decision"] == "do not ship"
    assert r["guardrails"]["latency_p95_treatment"] > r["guardrails"]["latency_p95_control"]


def test_no_effect_means_keep_collecting(tmp_path):
    log = tmp_path / "flat.jsonl"
    traffic(log, 2000, 0.1, seed=5)
    r = ab_traffic.analyze(log, 0.1)
    assert r["decision"] == "keep collecting" and not r["srm"]["alert"]


def test_routing_is_deterministic_and_close_to_the_share():
    chosen = [ab_traffic.assign_variant(f"u{i}", 0.1) for i in range(20000)]
    assert chosen == [ab_traffic.assign_variant(f"u{i}", 0.1) for i in range(20000)]
    assert abs(chosen.count("treatment") / 20000 - 0.1) < 0.01
    namespace: dict = {}
    exec(ab_traffic.routing_snippet(0.1), namespace)  # the snippet given to users routes exactly the same way
    assert [namespace["variant"](f"u{i}") for i in range(500)] == chosen[:500]


def test_unusable_logs_get_one_sentence(tmp_path, ws):
    bad = tmp_path / "bad.csv"
    bad.write_text("variant,user_id,timestamp,satisfaction\ncontrol,u1,2026-11-01,1\ntreatment,u2,not a date,0\n")
    with pytest.raises(ab_traffic.TrafficError, match="Row 2 has a timestamp"):
        ab_traffic.analyze(bad, 0.1)
    proc = run_studio("ab", "analyze", bad, "--split", "0.1", env_home=ws.root)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("studio: Row 2") and "Traceback" not in proc.stderr
    three = tmp_path / "three.csv"
    three.write_text("variant,user_id,timestamp,x\na,u1,2026-11-01,1\nb,u2,2026-11-01,1\nc,u3,2026-11-01,1\n")
    with pytest.raises(ab_traffic.TrafficError, match="exactly two variants"):
        ab_traffic.analyze(three, 0.1)
    with pytest.raises(ab_traffic.TrafficError, match="between 0 and 1"):
        ab_traffic.analyze(three, 10)


def test_per_criterion_votes_use_wilcoxon_with_holm():
    from scipy import stats

    votes = ["finetuned"] * 14 + ["base"] * 4 + ["tie"] * 6
    rows = [{"vote": v, "vote_accuracy": v, "vote_tone": "tie" if k % 2 else v, "base_words": 1,
             "finetuned_words": 1, "reviewer": "r"} for k, v in enumerate(votes)]
    per = review_stats.pairwise_results(rows)["per_criterion"]
    diffs = [1 if v == "finetuned" else -1 if v == "base" else 0 for v in votes]
    assert per["accuracy"]["p_value"] == pytest.approx(stats.wilcoxon(diffs).pvalue)
    expected = review_stats.holm({c: per[c]["p_value"] for c in per})
    assert all(per[c]["p_holm"] == pytest.approx(expected[c]) for c in per)
    assert per["accuracy"]["p_holm"] >= per["accuracy"]["p_value"]


def test_ab_page_analyzes_an_uploaded_traffic_log(tmp_path, ws):
    from conftest import app_as

    from engine.store import projects

    projects.create_project("Traffic")
    log = tmp_path / "traffic.jsonl"
    traffic(log, 4000, 0.2, lift=0.15, seed=6)
    at = app_as("analyst").run()
    at.switch_page("pages/ab.py").run()
    at.number_input(key="ab_split").set_value(0.2)
    at.file_uploader(key="ab_log").set_value(("traffic.jsonl", log.read_bytes(), "application/jsonl")).run()
    assert not at.exception and not at.error
    expected = ab_traffic.analyze(log, 0.2)["decision"]
    box = {"ship": at.success, "keep collecting": at.info, "do not ship": at.error}[expected]
    assert any(shown(b.value).startswith(f"Decision: {expected}.") for b in box)
    assert at.dataframe[0].value["metric"].tolist()[0] == "satisfaction"
    assert "def variant(user_id" in at.code[0].value


def test_logs_as_tools_export_them_with_duplicates_and_users_in_both_variants(tmp_path, ws):
    """The usual column names (arm, visitor_id, date), a mapping for unusual ones, exact duplicate rows and users
    seen in both variants: counted, reported, dropped or left out."""
    import pandas as pd

    rng = np.random.default_rng(11)
    rows = []
    for u in range(400):
        arm = "B" if u % 2 else "A"
        rows.append({"arm": arm, "visitor_id": f"v{u}", "date": f"2026-11-{1 + u % 10:02d}",
                     "resolved": int(rng.random() < (0.7 if arm == "B" else 0.6))})
    rows += rows[:25]  # a re-sent batch: exact duplicates
    rows += [{"arm": "B", "visitor_id": f"v{u}", "date": "2026-11-11", "resolved": 1} for u in range(0, 40, 2)]
    log = tmp_path / "export.csv"
    pd.DataFrame(rows).to_csv(log, index=False)
    r = ab_traffic.analyze(log, 0.5)
    issues = r["data_issues"]
    assert issues["columns"] == {"variant": "arm", "user": "visitor_id", "time": "date"}
    assert issues["duplicate_rows_dropped"] == 25 and issues["users_in_both_variants"] == 20
    assert issues["rows_of_those_users_excluded"] == 20 * 2  # counted after the duplicates were dropped
    assert r["n"]["control"] == 200 - 20 and r["n"]["treatment"] == 200
    assert any(reason.startswith("Data issues: 25 exact duplicate rows") for reason in r["reasons"])
    renamed = tmp_path / "renamed.csv"
    pd.DataFrame(rows).rename(columns={"arm": "which_model", "visitor_id": "who", "date": "when"}).to_csv(
        renamed, index=False)
    with pytest.raises(ab_traffic.TrafficError, match="--map variant=COLUMN"):
        ab_traffic.analyze(renamed, 0.5)
    proc = run_studio("ab", "analyze", renamed, "--split", "0.5", "--map", "variant=which_model,user=who,time=when",
                      "--json", env_home=ws.root)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["data_issues"]["users_in_both_variants"] == 20


def test_the_ab_page_maps_columns_and_survives_a_first_day_without_an_interval(tmp_path, ws):
    from conftest import app_as

    from engine.store import projects

    projects.create_project("A/B")
    lines = ["group,user,time,satisfaction", "control,u1,2026-11-01T10:00:00Z,1", "treatment,u2,2026-11-01T10:05:00Z,0",
             "control,u3,2026-11-02T10:00:00Z,1", "treatment,u4,2026-11-02T11:00:00Z,1",
             "control,u5,2026-11-03T10:00:00Z,0", "treatment,u6,2026-11-03T12:00:00Z,1"]
    at = app_as("analyst").run()
    at.switch_page("pages/ab.py").run()
    at.number_input(key="ab_split").set_value(0.5)
    at.file_uploader(key="ab_log").set_value(("log.csv", "\n".join(lines).encode(), "text/csv")).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="ab_map_variant").value == "group" and at.selectbox(key="ab_map_time").value == "time"
    assert any(m.label == "Users in both variants, left out" for m in at.metric)


def test_an_uploaded_log_meets_no_preset_planned_share_and_p_values_read_the_same(tmp_path, ws):
    """An exported 50/50 log, uploaded unchanged: the page shows the observed share and asks for the planned one
    instead of testing against a preset 10% (which called the assignment broken); once given, no mismatch, and the
    table's p is the figure the decision's sentence gives."""
    from conftest import app_as

    from engine.store import projects

    projects.create_project("Fifty-fifty")
    log = tmp_path / "traffic.jsonl"
    traffic(log, 4000, 0.5, lift=0.15, seed=6)
    at = app_as("analyst").run()
    at.switch_page("pages/ab.py").run()
    assert at.number_input(key="ab_split").value is None
    at.file_uploader(key="ab_log").set_value(("traffic.jsonl", log.read_bytes(), "application/jsonl")).run()
    assert not at.exception and not at.error
    assert any("Enter the planned share" in i.value for i in at.info)
    assert any("in the new model" in m.value and "%" in m.value for m in at.markdown)
    assert not any(shown(b.value).startswith("Decision") for kind in (at.success, at.info, at.error) for b in kind)
    at.number_input(key="ab_split").set_value(0.5).run()
    assert not at.exception and not any("Sample ratio mismatch" in e.value for e in at.error)
    table = at.dataframe[0].value
    decision = next(shown(b.value) for kind in (at.success, at.info, at.error) for b in kind
                    if shown(b.value).startswith("Decision"))
    primary = table[table["metric"] == "satisfaction"].iloc[0]
    if "p = " in decision:
        assert f"p = {primary['p']}" in decision
    assert primary["p"] == ab_traffic.p_text(ab_traffic.analyze(log, 0.5)["metrics"]["satisfaction"]["p_value"])


def test_the_nearest_rank_quantile_is_numpy_s_inverted_cdf():
    """engine.stat_helpers.nearest_rank (token-length percentiles, serving latencies) against numpy's own definition of
    the same quantile."""
    import numpy as np

    from engine.stat_helpers import nearest_rank

    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 7, 20, 101):
        values = rng.integers(0, 1000, n).tolist()
        for q in (0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0):
            assert nearest_rank(values, q) == float(np.percentile(values, q * 100, method="inverted_cdf")), (n, q)
    assert nearest_rank([], 0.5) is None


def test_every_log_format_reads_through_the_one_log_reader_and_maps_columns_one_way(tmp_path):
    """A/B logs are read by the reader production logs use (engine.log_files): Parquet works, a broken line is named
    the same way, and a mapping is parsed and checked by engine.column_mapping for every import."""
    import polars as pl

    from engine.data.loading import parse_mapping as data_mapping
    from engine.monitor import ingest

    log = tmp_path / "flat.jsonl"
    traffic(log, 600, 0.5, seed=7)
    as_parquet = tmp_path / "flat.parquet"
    pl.read_ndjson(log).rename({"variant": "Arm", "user_id": "Visitor_ID"}).write_parquet(as_parquet)
    by_lines = ab_traffic.analyze(log, 0.5)
    by_parquet = ab_traffic.analyze(as_parquet, 0.5)
    assert by_parquet["metrics"] == by_lines["metrics"] and by_parquet["n"] == by_lines["n"]
    broken = tmp_path / "broken.jsonl"
    broken.write_text(log.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(ab_traffic.TrafficError, match="line 2 is not valid JSON"):
        ab_traffic.analyze(broken, 0.5)
    with pytest.raises(ingest.LogError, match="line 2 is not valid JSON"):
        ingest.import_log(1, broken)
    for parse, error in ((ab_traffic.parse_mapping, ab_traffic.TrafficError), (ingest.parse_mapping, ingest.LogError),
                         (data_mapping, Exception)):
        with pytest.raises(error, match=r"^Cannot read the column mapping 'user': write KEY=COLUMN"):
            parse("user")
    with pytest.raises(ab_traffic.TrafficError, match="The log has no column 'who' \\(mapped to user\\)"):
        ab_traffic.analyze(log, 0.5, mapping=ab_traffic.parse_mapping("user=who"))
