"""Every chart the pages draw, built from engine results: each one takes an empty series, a one-point series and
missing values (None) without failing, and shows "no data yet" rather than an empty frame. Names that come from
users (runs, metrics of an uploaded log) go through ui.text.plot_text: Plotly renders a little HTML in labels.

No Streamlit here: the pages call these and pass the figure to st.plotly_chart (tests/test_charts.py calls them
directly with empty, one-point and gappy data).
"""

from __future__ import annotations

import plotly.graph_objects as go

from ui.text import plot_text

BLUE, GREEN, RED, GREY = "#2563eb", "#16a34a", "#dc2626", "#9ca3af"
MARGIN = dict(l=10, r=10, t=40, b=10)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN is not a number


def _points(rows: list[dict], *keys: str) -> list[dict]:
    """The rows whose listed values are all numbers (a missing interval drops the point, not the chart)."""
    return [r for r in rows or [] if all(_number(r.get(k)) for k in keys)]


def _empty(fig: go.Figure, message: str = "no data yet") -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(color=GREY, size=14))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def forest(rows: list[dict], height_per_row: int = 40) -> go.Figure:
    """Win rates with their intervals: rows of {"what", "win", "low", "high"}."""
    pts = _points(rows, "win", "low", "high")
    fig = go.Figure()
    fig.update_layout(height=120 + height_per_row * max(len(pts), 1), margin=dict(l=10, r=10, t=20, b=10))
    if not pts:
        return _empty(fig)
    fig.add_trace(go.Scatter(x=[p["win"] for p in pts], y=[plot_text(p["what"]) for p in pts], mode="markers",
                             marker=dict(size=11, color=BLUE),
                             error_x=dict(type="data", symmetric=False, array=[p["high"] - p["win"] for p in pts],
                                          arrayminus=[p["win"] - p["low"] for p in pts])))
    fig.add_vline(x=0.5, line_dash="dash", line_color=GREY)
    fig.update_layout(xaxis=dict(range=[0, 1], title="fine-tuned win rate (95% Wilson interval)"))
    return fig


def cumulative_lift(points: list[dict], metric: str) -> go.Figure:
    """Relative lift of the primary metric over time, with its interval where there is one."""
    fig = go.Figure()
    fig.update_layout(title="Cumulative lift over time (%)", height=320, margin=MARGIN)
    lifts = _points(points, "relative_lift")
    if not lifts:
        return _empty(fig, "no lift to show yet: too few users so far")
    band = _points(lifts, "lift_ci_low", "lift_ci_high")
    if band:
        fig.add_trace(go.Scatter(x=[p["until"] for p in band], y=[100 * p["lift_ci_high"] for p in band],
                                 line=dict(width=0), showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=[p["until"] for p in band], y=[100 * p["lift_ci_low"] for p in band],
                                 fill="tonexty", fillcolor="rgba(37,99,235,0.15)", line=dict(width=0),
                                 name="95% interval"))
    fig.add_trace(go.Scatter(x=[p["until"] for p in lifts], y=[100 * p["relative_lift"] for p in lifts],
                             mode="lines+markers", name=plot_text(f"lift of {metric}"), line=dict(color=BLUE)))
    fig.add_hline(y=0, line_dash="dash", line_color=GREY)
    return fig


def histogram(hist: dict, title: str, unit: str, marker: float | None = None, marker_text: str = "") -> go.Figure:
    """Bars from a histogram {"edges", "counts"}; an optional vertical marker (the max length)."""
    fig = go.Figure()
    fig.update_layout(title=title, xaxis_title=unit, yaxis_title="examples", height=300, margin=MARGIN)
    edges, counts = (hist or {}).get("edges") or [], (hist or {}).get("counts") or []
    if not counts or len(edges) != len(counts) + 1:
        return _empty(fig)
    fig.add_trace(go.Bar(x=[(a + b) / 2 for a, b in zip(edges, edges[1:])], y=counts, marker_color=BLUE))
    if _number(marker):
        fig.add_vline(x=marker, line_dash="dash", line_color=RED, annotation_text=marker_text)
    return fig


def metric_changes(metrics: dict, base_label: str) -> go.Figure:
    """Each metric's change against the baseline in % of its value, with its interval, coloured by verdict."""
    fig = go.Figure()
    fig.update_layout(title=plot_text(f"Change against {base_label} (% of its value, 95% interval; green better, "
                                      "red worse, grey no detectable difference; perplexity: lower is better)"),
                      showlegend=False, height=320, margin=MARGIN, yaxis_title="%")
    shown = 0
    for name, m in (metrics or {}).items():
        if not all(_number(m.get(k)) for k in ("base", "diff", "ci_low", "ci_high")):
            continue
        scale = abs(m["base"]) or 1.0  # relative change, so metrics of different scales share one chart
        color = {"better": GREEN, "worse": RED}.get(m.get("verdict"), GREY)
        fig.add_trace(go.Bar(x=[plot_text(name)], y=[100 * m["diff"] / scale], name=plot_text(name),
                             marker_color=color,
                             error_y=dict(type="data", symmetric=False,
                                          array=[100 * (m["ci_high"] - m["diff"]) / scale],
                                          arrayminus=[100 * (m["diff"] - m["ci_low"]) / scale])))
        shown += 1
    return fig if shown else _empty(fig)


def routing_curve(points: list[dict], best: dict | None) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(xaxis_title="fallback rate (%)", yaxis_title="quality (ROUGE-L)", height=320, margin=MARGIN)
    pts = _points(points, "fallback_rate", "quality")
    if not pts:
        return _empty(fig)
    fig.add_trace(go.Scatter(x=[100 * p["fallback_rate"] for p in pts], y=[p["quality"] for p in pts],
                             mode="lines+markers", text=[f"threshold {p.get('threshold')}" for p in pts],
                             name="thresholds 0 to 1"))
    if best and _number(best.get("fallback_rate")) and _number(best.get("quality")):
        fig.add_trace(go.Scatter(x=[100 * best["fallback_rate"]], y=[best["quality"]], mode="markers",
                                 marker=dict(size=14, color=GREEN), name=f"recommended: {best.get('threshold')}"))
    return fig


def curves(series: list[tuple[str, list[dict], str, bool]], title: str, best_step: int | None = None,
           y_log: bool = False, height: int = 300) -> go.Figure:
    """Training curves: series of (label, points, value key, markers); the early-stopping point when given."""
    fig = go.Figure()
    fig.update_layout(title=plot_text(title), xaxis_title="step", height=height, margin=MARGIN,
                      legend=dict(orientation="h"))
    drawn = 0
    for label, points, key, markers in series:
        pts = _points(points, "step", key)
        if pts:
            fig.add_trace(go.Scatter(x=[p["step"] for p in pts], y=[p[key] for p in pts], name=plot_text(label),
                                     mode="lines+markers" if markers or len(pts) == 1 else "lines"))
            drawn += 1
    if not drawn:
        return _empty(fig)
    if _number(best_step):
        fig.add_vline(x=best_step, line_dash="dash", line_color=GREEN, annotation_text="early stop: best checkpoint")
    if y_log:  # labels at decades only (1, 10, 100): minor ticks read as "5, 2, 1000, 5, 2, 100"
        fig.update_yaxes(type="log", dtick=1, minor={"showgrid": False}, tickformat="~g")
    return fig


def score_means(criteria: dict, names: tuple[str, ...]) -> go.Figure:
    """Mean review score per criterion and model with 95% intervals (a model without ratings is left out)."""
    fig = go.Figure()
    fig.update_layout(barmode="group", yaxis=dict(range=[0, 5.2], title="mean score (1-5)"), height=320,
                      margin=MARGIN, title="Mean score per criterion with 95% intervals")
    drawn = 0
    for model, color in (("base", GREY), ("finetuned", BLUE)):
        rows = [(c, criteria.get(c, {}).get("models", {}).get(model, {})) for c in names]
        rows = [(c, x) for c, x in rows if _number(x.get("mean"))]
        if not rows:
            continue
        fig.add_trace(go.Bar(name="fine-tuned" if model == "finetuned" else "base", x=[c for c, _ in rows],
                             y=[x["mean"] for _, x in rows], marker_color=color,
                             error_y=dict(type="data", symmetric=False,
                                          array=[x["ci_high"] - x["mean"] if _number(x.get("ci_high")) else 0
                                                 for _, x in rows],
                                          arrayminus=[x["mean"] - x["ci_low"] if _number(x.get("ci_low")) else 0
                                                      for _, x in rows])))
        drawn += 1
    return fig if drawn else _empty(fig)


def score_distributions(criteria: dict, names: tuple[str, ...]) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(barmode="group", height=300, margin=MARGIN, yaxis_title="ratings",
                      title="How often each score was given (per criterion, 1 to 5)")
    drawn = 0
    for model, color in (("base", GREY), ("finetuned", BLUE)):
        for k, c in enumerate(names):
            dist = criteria.get(c, {}).get("models", {}).get(model, {}).get("distribution") or {}
            if dist:
                fig.add_trace(go.Bar(x=[f"{c} {s}" for s in dist], y=list(dist.values()), marker_color=color,
                                     name="fine-tuned" if model == "finetuned" else "base", showlegend=k == 0,
                                     legendgroup=model))
                drawn += 1
    return fig if drawn else _empty(fig)


def daily_series(daily, column: str, title: str, band: bool = False) -> go.Figure:
    """One line per model version over days (rows of {"model", "day", column[, column_low, column_high]}); with band,
    the 95% interval as error bars."""
    rows = daily.to_dict("records") if hasattr(daily, "to_dict") else list(daily or [])
    fig = go.Figure()
    fig.update_layout(height=260, margin=MARGIN, title=title)
    pts = _points(rows, column)
    if not pts:
        return _empty(fig)
    for model in dict.fromkeys(str(r["model"]) for r in pts):
        mine = [r for r in pts if str(r["model"]) == model]
        with_band = band and all(_number(r.get(f"{column}_low")) and _number(r.get(f"{column}_high")) for r in mine)
        fig.add_trace(go.Scatter(
            x=[r["day"] for r in mine], y=[r[column] for r in mine], mode="lines+markers", name=plot_text(model),
            error_y=dict(type="data", symmetric=False, array=[r[f"{column}_high"] - r[column] for r in mine],
                         arrayminus=[r[column] - r[f"{column}_low"] for r in mine]) if with_band else None))
    return fig


def psi_bars(features: dict, stable: float, significant: float, noise: dict | None = None) -> go.Figure:
    """PSI per drift feature against the 0.10 and 0.20 lines, with each feature's no-drift band (what unchanged
    traffic of the window's size reaches) as a marker; a feature over both the significant line and its band in
    red."""
    fig = go.Figure()
    fig.update_layout(height=260, margin=MARGIN, title="PSI per feature", yaxis_title="PSI")
    pts = {k: v for k, v in (features or {}).items() if _number(v)}
    if not pts:
        return _empty(fig)
    noise = noise or {}
    fig.add_trace(go.Bar(x=[plot_text(k) for k in pts], y=list(pts.values()), name="PSI",
                         marker_color=[RED if v > significant and v > noise.get(k, 0) else BLUE
                                       for k, v in pts.items()]))
    bands = {k: noise[k] for k in pts if _number(noise.get(k))}
    if bands:
        fig.add_trace(go.Scatter(x=[plot_text(k) for k in bands], y=list(bands.values()), mode="markers",
                                 name="unchanged traffic (95%)", marker={"symbol": "line-ew-open", "size": 28,
                                                                         "color": GREY}))
    for line in (stable, significant):
        fig.add_hline(y=line, line_dash="dash", line_color=GREY, annotation_text=f"{line:.2f}")
    return fig
