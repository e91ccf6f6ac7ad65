"""Every chart the pages draw takes empty series, one-point series and missing values (None, NaN) without failing,
and turns user-provided names into plain text."""

from __future__ import annotations

import math

import pytest

from ui import charts

NAN = math.nan


def drawn(fig) -> int:
    fig.to_json()  # what st.plotly_chart sends: must serialize
    return len(fig.data)


def says_no_data(fig) -> bool:
    return any("no data yet" in a.text or "no lift" in a.text for a in fig.layout.annotations)


@pytest.mark.parametrize("build", [
    lambda pts: charts.forest(pts),
    lambda pts: charts.cumulative_lift(pts, "satisfaction"),
    lambda pts: charts.routing_curve(pts, None),
    lambda pts: charts.curves([("train", pts, "loss", False)], "Loss", best_step=None),
])
def test_empty_series_show_no_data_instead_of_failing(build):
    fig = build([])
    assert drawn(fig) == 0 and says_no_data(fig)


def test_one_point_and_gappy_series():
    # the first day of an A/B test has a lift but no interval yet (the TypeError the A/B page used to hit)
    first_day = [{"until": "2026-11-01", "users": 3, "relative_lift": 0.1, "lift_ci_low": None, "lift_ci_high": None}]
    assert drawn(charts.cumulative_lift(first_day, "satisfaction")) == 1
    two = first_day + [{"until": "2026-11-02", "users": 40, "relative_lift": 0.05, "lift_ci_low": -0.1,
                        "lift_ci_high": 0.2}]
    assert drawn(charts.cumulative_lift(two, "satisfaction")) == 3  # band, band, line
    assert drawn(charts.cumulative_lift([{"until": "x", "relative_lift": None}], "m")) == 0
    assert drawn(charts.forest([{"what": "overall", "win": 0.6, "low": 0.4, "high": 0.8}])) == 1
    assert drawn(charts.forest([{"what": "tone", "win": None, "low": None, "high": None}])) == 0
    one = [{"step": 3, "loss": 1.2}]
    fig = charts.curves([("train", one, "loss", False), ("validation", [{"step": 3, "eval_loss": NAN}], "eval_loss",
                                                          True)], "Loss", best_step=3, y_log=True)
    assert drawn(fig) == 1 and fig.data[0].mode == "lines+markers"  # a single point is visible
    assert drawn(charts.routing_curve([{"fallback_rate": 0.0, "quality": 0.3, "threshold": 0}],
                                      {"fallback_rate": 0.0, "quality": 0.3, "threshold": 0})) == 2


def test_histograms_metrics_and_review_scores_tolerate_missing_values():
    assert says_no_data(charts.histogram({}, "Tokens", "tokens", 2048))
    assert says_no_data(charts.histogram({"edges": [0, 1], "counts": []}, "Tokens", "tokens"))
    assert drawn(charts.histogram({"edges": [0, 10], "counts": [4]}, "Tokens", "tokens", 2048, "max length")) == 1
    metrics = {"rougeL": {"base": 0.1, "finetuned": 0.2, "diff": 0.1, "ci_low": 0.05, "ci_high": 0.15,
                          "verdict": "better"},
               "perplexity": {"base": 0.0, "finetuned": 0.0, "diff": 0.0, "ci_low": None, "ci_high": None}}
    assert drawn(charts.metric_changes(metrics, "the base model")) == 1
    assert says_no_data(charts.metric_changes({}, "base"))
    criteria = {"accuracy": {"models": {"base": {"mean": None, "ci_low": None, "ci_high": None, "distribution": {}},
                                        "finetuned": {"mean": 4.0, "ci_low": None, "ci_high": None,
                                                      "distribution": {"4": 1}}}}}
    assert drawn(charts.score_means(criteria, ("accuracy", "tone"))) == 1
    assert drawn(charts.score_distributions(criteria, ("accuracy", "tone"))) == 1
    assert says_no_data(charts.score_means({}, ("accuracy",)))


def test_user_named_series_are_plain_text_in_charts():
    fig = charts.cumulative_lift([{"until": "d", "relative_lift": 0.1}], "<a href='http://evil.example'>x</a>")
    assert "<a " not in fig.data[0].name and "&lt;a href=" in fig.data[0].name
    fig = charts.curves([("<b>run</b>", [{"step": 1, "loss": 1.0}], "loss", False)], "t")
    assert fig.data[0].name == "&lt;b&gt;run&lt;/b&gt;"


def test_log_axes_are_labelled_at_decades_only():
    from ui import charts

    fig = charts.curves([("train", [{"step": 1, "perplexity": 950.0}, {"step": 2, "perplexity": 4.0}], "perplexity",
                          False)], "Perplexity", y_log=True)
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.dtick == 1
