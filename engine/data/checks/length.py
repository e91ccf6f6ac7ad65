"""Token lengths: the statistics of the report, `too_long` (truncated in training) and `length_outlier`."""

from __future__ import annotations

import numpy as np

from engine.data.report import Finding, Fix, drop_fix
from engine.data.shapes import Record
from engine.data.tokens import TokenCounter

# Outliers by the modified z-score (median and MAD) above 3.5, the cut-off Iglewicz and Hoaglin recommend.
OUTLIER_Z = 3.5
OUTLIER_RATIO = 2.5  # and at least this many times longer (or shorter) than the median: "far", not "a bit"


def token_lengths(records: list[Record], counter: TokenCounter) -> tuple[np.ndarray, np.ndarray]:
    """(tokens per conversation including the chat template, assistant content tokens) for each record."""
    counts = counter.count([m["content"] for r in records for m in r.turns])
    totals = np.zeros(len(records), dtype=np.int64)
    assistant = np.zeros(len(records), dtype=np.int64)
    k = 0
    for i, rec in enumerate(records):
        for m in rec.turns:
            totals[i] += counts[k] + counter.overhead.get(m["role"], 4)
            if m["role"] == "assistant":
                assistant[i] += counts[k]
            k += 1
    return totals, assistant


def distribution(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {}
    p5, median, p95 = np.percentile(values, [5, 50, 95])
    return {"min": int(values.min()), "mean": round(float(values.mean()), 1), "median": float(median),
            "p5": float(p5), "p95": float(p95), "max": int(values.max())}


def length_stats(records: list[Record], totals: np.ndarray, assistant: np.ndarray, max_length: int,
                 tokenizer_name: str) -> dict:
    turns = np.array([len(r.turns) for r in records], dtype=np.int64)
    return {
        "tokenizer": tokenizer_name,
        "max_length": max_length,
        "examples": len(records),
        "tokens_per_example": distribution(totals),
        "assistant_tokens_per_example": distribution(assistant),
        "messages_per_example": distribution(turns),
        "training_tokens_per_epoch": int(np.minimum(totals, max_length).sum()),
        "histograms": {"tokens_per_example": histogram(totals), "messages_per_example": histogram(turns, integer=True)},
    }


def histogram(values: np.ndarray, bins: int = 30, integer: bool = False) -> dict:
    """Bin edges and counts, small enough to keep in the report and plot without the records."""
    if len(values) == 0:
        return {"edges": [], "counts": []}
    if integer:
        edges = np.arange(values.min(), values.max() + 2) - 0.5
        if len(edges) > bins + 1:
            edges = np.histogram_bin_edges(values, bins=bins)
    else:
        edges = np.histogram_bin_edges(values, bins=bins)
    counts, edges = np.histogram(values, bins=edges)
    return {"edges": [round(float(e), 2) for e in edges], "counts": [int(c) for c in counts]}


def check_too_long(records: list[Record], totals: np.ndarray, max_length: int) -> Finding | None:
    idx = np.flatnonzero(totals > max_length)
    if len(idx) == 0:
        return None
    details = {records[i].location: f"{int(totals[i]):,} tokens" for i in idx}
    locs = sorted(details)
    return Finding("too_long",
                   f"Conversations longer than {max_length:,} tokens are cut off in training, usually losing the "
                   "answer.", locs,
                   Fix("truncate_too_long", f"Truncate the long answers to fit {max_length:,} tokens"),
                   details=details)


def check_outliers(records: list[Record], totals: np.ndarray) -> Finding | None:
    """Robust z-score of log length (median and MAD), so one huge record does not hide the others; uniform data
    has a tiny MAD, so a minimum ratio to the median keeps small deviations from counting."""
    if len(totals) < 10:
        return None
    logs = np.log(np.maximum(totals, 1))
    median = np.median(logs)
    mad = np.median(np.abs(logs - median))
    if mad == 0:
        return None
    z = 0.6745 * (logs - median) / mad
    idx = np.flatnonzero((np.abs(z) > OUTLIER_Z) & (np.abs(logs - median) > np.log(OUTLIER_RATIO)))
    if len(idx) == 0:
        return None
    typical = int(np.exp(median))
    details = {records[i].location: f"{int(totals[i]):,} tokens ({'longer' if z[i] > 0 else 'shorter'} than typical "
                                    f"{typical:,})" for i in idx}
    locs = sorted(details)
    return Finding("length_outlier",
                   f"Conversations far longer or shorter than the typical {typical:,} tokens: check they belong in "
                   "this dataset.", locs, drop_fix("length_outlier"), details=details)
