"""Drift of production requests against the model's training data, by the Population Stability Index:
PSI = sum((p_i - q_i) * ln(p_i / q_i)) over bins, p the production shares and q the training shares, each floored
at 1e-4 (an empty bin would make the logarithm infinite). Three features:

- length: the request's length in tokens (the base model's tokenizer), 10 bins at the training requests' deciles;
- topic: the training prompts clustered by TF-IDF + k-means (k up to 8); each request falls in its nearest
  cluster. TF-IDF rather than an embedding model: no model can be downloaded here, and word statistics separate
  support topics well enough to see a shift;
- language: the share of each language (fastText's language ID, offline) in the training requests, the rest pooled.

`distribution_drift` is the largest of the three; bands as is customary for PSI: under 0.10 stable, 0.10-0.20
moderate, over 0.20 significant. Production requests are sampled (up to SAMPLE per window) and the report stays fast
on millions of rows: two samples of one distribution differ by a PSI of about (bins - 1) * (1/n + 1/m), so 10,000
requests add under 0.001 over 10 bins, a hundredth of the first band's width.

The training side of each feature (bins, shares, the fitted topics) is engine.monitor.reference: fitted once per
version and kept in the workspace."""

from __future__ import annotations

import math

import numpy as np

from engine.monitor.reference import Reference, shares

FLOOR = 1e-4  # the customary floor on a bin's share in PSI
STABLE, SIGNIFICANT = 0.10, 0.20  # PSI bands (Siddiqi, Credit Risk Scorecards; the industry convention)
SAMPLE = 10_000  # production requests per report for the drift features


def psi(production: np.ndarray, training: np.ndarray) -> float:
    """PSI of two share vectors over the same bins (each floored, then used as they are)."""
    p = np.maximum(np.asarray(production, dtype=float), FLOOR)
    q = np.maximum(np.asarray(training, dtype=float), FLOOR)
    return float(np.sum((p - q) * np.log(p / q)))


def band(value: float | None) -> str | None:
    if value is None or math.isnan(value):
        return None
    return "stable" if value < STABLE else "moderate" if value <= SIGNIFICANT else "significant"


def drift(ref: Reference, requests: list[str], seed: int = 0) -> dict:
    """PSI per feature for a sample of production requests, the largest, its band, and the requests from the bins
    that grew the most."""
    sample = list(requests)
    if len(sample) > SAMPLE:
        rng = np.random.default_rng(seed)
        sample = [sample[i] for i in sorted(rng.choice(len(sample), SAMPLE, replace=False))]
    features, grown = {}, {}
    for name, labels in (("length", _length_labels(ref)), ("topic", ref.topic_names),
                         ("language", [*ref.languages, "other"])):
        bins, training = ref.bins(name, sample), ref.training_shares(name)
        production = shares(bins, len(training))
        features[name] = round(psi(production, training), 4)
        top = int(np.argmax(production - training))
        grown[name] = {"bin": labels[top], "production_share": float(production[top]),
                       "training_share": float(training[top]),
                       "examples": [sample[i] for i in np.flatnonzero(bins == top)[:5]]}
    worst = max(features, key=lambda f: features[f])
    return {"distribution_drift": features[worst], "feature": worst, "features": features,
            "band": band(features[worst]), "grew": grown, "sampled": len(sample)}


def _length_labels(ref: Reference) -> list[str]:
    edges = [int(e) for e in ref.length_edges]
    return [f"< {edges[0]} tokens"] + [f"{a}-{b - 1} tokens" for a, b in zip(edges, edges[1:])] + \
        [f">= {edges[-1]} tokens"]
