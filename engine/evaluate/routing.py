"""Hybrid routing analysis: answer with the fine-tuned model, fall back to the base model prompted with a few
training examples when the fine-tuned model's confidence is below a threshold (the guidance's example: 0.8).

Confidence is the mean probability the fine-tuned model gave its own answer's tokens. For every threshold from 0 to
1 the analysis reports the fallback rate and the quality (mean per-example ROUGE-L) of the routed answers on the test
split. The threshold with the best quality (the lowest fallback rate among equals) is recommended only when its
routed quality is surely better than answering everything with the fine-tuned model (the 95% paired bootstrap
interval of the per-example gain lies above zero); otherwise the recommendation is "no fallback".
"""

from __future__ import annotations

import numpy as np

from engine.evaluate.report_types import Interval, RoutingPoint, RoutingReport, RoutingRule

K_SHOT = 3  # the fallback prompt's training examples: few-shot gains flatten after a handful (GPT-3 paper)
THRESHOLDS = [round(x, 2) for x in np.linspace(0, 1, 21)]


def few_shot_prompt(examples: list[list[dict]], prompt: list[dict], k: int = K_SHOT) -> list[dict]:
    """The test prompt preceded by k training conversations as earlier turns (the system prompt first)."""
    system = [m for m in prompt if m["role"] == "system"][:1]
    shots = []
    for conv in examples[:k]:
        shots += [m for m in conv if m["role"] in ("user", "assistant")]
    return system + shots + [m for m in prompt if m["role"] != "system"]


def routing_curve(confidence: list[float], tuned_quality: list[float], fallback_quality: list[float],
                  n_resamples: int = 1000, seed: int = 0) -> RoutingReport:
    conf = np.asarray(confidence, dtype=float)
    tuned = np.asarray(tuned_quality, dtype=float)
    fallback = np.asarray(fallback_quality, dtype=float)
    points: list[RoutingPoint] = []
    for t in THRESHOLDS:
        routed = conf < t
        quality = float(np.where(routed, fallback, tuned).mean())
        points.append({"threshold": t, "fallback_rate": float(routed.mean()), "quality": quality})
    best = max(points, key=lambda p: (round(p["quality"], 6), -p["fallback_rate"]))
    gain = paired_gain(np.where(conf < best["threshold"], fallback, tuned) - tuned, n_resamples, seed)
    if gain["ci_low"] <= 0:  # not surely better than no fallback: do not route
        best = points[0]
    recommendation = ("no fallback" if best["threshold"] == 0 else f"fall back below confidence {best['threshold']}")
    rule: RoutingRule = {"route": "fine-tuned model", "fallback": f"base model with a {K_SHOT}-shot prompt",
            "confidence": "mean probability of the fine-tuned answer's tokens",
            "fallback_when": f"confidence < {best['threshold']}" if best["threshold"] else "never",
            "threshold": best["threshold"], "expected_fallback_rate": best["fallback_rate"],
            "expected_quality": best["quality"]}
    return {"points": points, "recommended": best, "recommendation": recommendation, "gain": gain, "rule": rule,
            "only_finetuned": points[0]["quality"], "only_fallback": float(fallback.mean())}


def paired_gain(diff: np.ndarray, n_resamples: int = 1000, seed: int = 0) -> Interval:
    """Mean per-example gain of routing over the fine-tuned model alone, with its 95% paired bootstrap interval."""
    diff = np.asarray(diff, dtype=float)
    if len(diff) == 0:
        return {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (n_resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"diff": float(diff.mean()), "ci_low": float(low), "ci_high": float(high)}
