"""Hybrid routing analysis: answer with the fine-tuned model, fall back to the base model prompted with a few
training examples when the fine-tuned model's confidence is below a threshold (the guidance's example: 0.8).

Confidence is the mean probability the fine-tuned model gave its own answer's tokens. For every threshold from 0 to
1 the analysis reports the fallback rate and the quality (mean per-example ROUGE-L) of the routed answers on the test
split, recommends the threshold with the best quality (the lowest fallback rate among equals) and exports the rule.
"""

from __future__ import annotations

import numpy as np

K_SHOT = 3
THRESHOLDS = [round(x, 2) for x in np.linspace(0, 1, 21)]


def few_shot_prompt(examples: list[list[dict]], prompt: list[dict], k: int = K_SHOT) -> list[dict]:
    """The test prompt preceded by k training conversations as earlier turns (the system prompt first)."""
    system = [m for m in prompt if m["role"] == "system"][:1]
    shots = []
    for conv in examples[:k]:
        shots += [m for m in conv if m["role"] in ("user", "assistant")]
    return system + shots + [m for m in prompt if m["role"] != "system"]


def routing_curve(confidence: list[float], tuned_quality: list[float], fallback_quality: list[float]) -> dict:
    conf = np.asarray(confidence, dtype=float)
    tuned = np.asarray(tuned_quality, dtype=float)
    fallback = np.asarray(fallback_quality, dtype=float)
    points = []
    for t in THRESHOLDS:
        routed = conf < t
        quality = float(np.where(routed, fallback, tuned).mean())
        points.append({"threshold": t, "fallback_rate": float(routed.mean()), "quality": quality})
    best = max(points, key=lambda p: (round(p["quality"], 6), -p["fallback_rate"]))
    rule = {"route": "fine-tuned model", "fallback": f"base model with a {K_SHOT}-shot prompt",
            "confidence": "mean probability of the fine-tuned answer's tokens",
            "fallback_when": f"confidence < {best['threshold']}", "threshold": best["threshold"],
            "expected_fallback_rate": best["fallback_rate"], "expected_quality": best["quality"]}
    return {"points": points, "recommended": best, "rule": rule,
            "only_finetuned": points[0]["quality"], "only_fallback": float(fallback.mean())}
