"""Drift of production requests against the model's training data, by the Population Stability Index:
PSI = sum((p_i - q_i) * ln(p_i / q_i)) over bins, p the production shares and q the training shares. Three features:

- length: the request's length in tokens (the base model's tokenizer), 4 to 10 bins at the training requests'
  quantiles (fewer when there are fewer training requests);
- topic: the training requests clustered by TF-IDF + k-means (2 to 8 topics, by silhouette); each request, training
  and production alike, falls in its nearest cluster. TF-IDF rather than an embedding model: no model can be
  downloaded here, and word statistics separate support topics well enough to see a shift;
- language: the share of each language (fastText's language ID, offline) in the training requests, the rest pooled.

Both sides measure the same thing: the user's turn, without the system prompt (engine.monitor.reference), openings
compared with openings and follow-ups with follow-ups, mixed in the production sample's proportions.

Sampling noise is accounted for twice. The shares are smoothed for the sample sizes in hand (half a request added
to every bin: Jeffreys' prior, so an empty bin is not a logarithm of zero and a bin seen once in 300 is not ten
times one seen never). And each feature gets a no-drift band: the 95th percentile of the PSI between two samples
drawn from the training shares, one of the training side's size and one of the production sample's, as
resampling the training requests would give. A feature drifts only above both the band and the customary line
(under 0.10 stable, 0.10-0.20 moderate, over 0.20 significant). When even unchanged traffic of the window's size
could cross 0.10, the verdict is "too few": collect at least the number of requests that brings the band under it.

Production requests are sampled (up to SAMPLE per window), so the report stays fast on millions of rows."""

from __future__ import annotations

import math

import numpy as np

from engine.monitor.reference import Reference

FLOOR = 1e-4  # the customary floor on a bin's share in PSI (only raw, unsmoothed shares ever reach it)
STABLE, SIGNIFICANT = 0.10, 0.20  # PSI bands (Siddiqi, Credit Risk Scorecards; the industry convention)
SAMPLE = 10_000  # production requests per report for the drift features
SMOOTHING = 0.5  # requests added to every bin before shares are taken (Jeffreys' prior)
NOISE_DRAWS, NOISE_LEVEL = 400, 0.95
SIZES = (50, 100, 200, 300, 500, 1000, 2000, 5000, 10_000)  # the sizes "collect at least N" is chosen from


def psi(production: np.ndarray, training: np.ndarray) -> float:
    """PSI of two share vectors over the same bins (each floored, then used as they are)."""
    p = np.maximum(np.asarray(production, dtype=float), FLOOR)
    q = np.maximum(np.asarray(training, dtype=float), FLOOR)
    return float(np.sum((p - q) * np.log(p / q)))


def smoothed(counts: np.ndarray) -> np.ndarray:
    """Shares from counts with SMOOTHING added to every bin (works on one row or on many)."""
    counts = np.asarray(counts, dtype=float) + SMOOTHING
    return counts / counts.sum(axis=-1, keepdims=True)


def band(value: float | None) -> str | None:
    if value is None or math.isnan(value):
        return None
    return "stable" if value < STABLE else "moderate" if value <= SIGNIFICANT else "significant"


def noise(shares: np.ndarray, n: int, m: int, seed: int = 0) -> float:
    """The no-drift band: the NOISE_LEVEL quantile of the PSI between a sample of n and a sample of m drawn from the
    same shares (the training side and a production window of unchanged traffic)."""
    rng = np.random.default_rng(seed)
    shares = np.asarray(shares, dtype=float) / np.sum(shares)
    a = smoothed(rng.multinomial(max(n, 1), shares, size=NOISE_DRAWS))
    b = smoothed(rng.multinomial(max(m, 1), shares, size=NOISE_DRAWS))
    values = np.sum((b - a) * np.log(b / a), axis=1)
    return float(np.quantile(values, NOISE_LEVEL))


def needed(ref: Reference, follow_ups: float = 0.0) -> int | None:
    """The fewest production requests whose no-drift band is under the stable line for every feature; None when no
    window size is enough (too few training requests)."""
    for m in SIZES:
        if all(noise(ref.training_shares(f, follow_ups), ref.training_size(f, follow_ups), m) < STABLE
               for f in FEATURES):
            return m
    return None


FEATURES = ("length", "topic", "language")


def drift(ref: Reference, requests: list[str], turns: list[int | None] | None = None, seed: int = 0) -> dict:
    """PSI per feature for a sample of production requests (each with its user-turn number when the log has the
    conversation: 1 or None for an opening), its no-drift band, the largest, its band, whether it drifted, and the
    requests from the bins that grew the most."""
    sample = list(requests)
    turned = list(turns) if turns is not None else [None] * len(sample)
    if len(sample) > SAMPLE:
        rng = np.random.default_rng(seed)
        keep = sorted(rng.choice(len(sample), SAMPLE, replace=False))
        sample, turned = [sample[i] for i in keep], [turned[i] for i in keep]
    m = len(sample)
    follow_ups = float(np.mean([bool(t and t > 1) for t in turned])) if m else 0.0
    texts = ref.without_system(sample)
    features, noises, grown = {}, {}, {}
    for name, labels in (("length", _length_labels(ref)), ("topic", ref.topic_names),
                         ("language", [*ref.languages, "other"])):
        raw = ref.training_shares(name, follow_ups)
        n = ref.training_size(name, follow_ups)
        bins = ref.bins(name, texts)
        counts = np.bincount(bins, minlength=len(raw))[:len(raw)]
        production = smoothed(counts)
        training = smoothed(raw * n)
        features[name] = round(psi(production, training), 4)
        noises[name] = round(noise(raw, n, m, seed), 4)
        top = int(np.argmax(production - training))
        grown[name] = {"bin": labels[top], "production_share": float(production[top]),
                       "training_share": float(training[top]),
                       "examples": [sample[i] for i in np.flatnonzero(bins == top)[:5]]}
    worst = max(features, key=lambda f: features[f])
    drifted = [f for f in features if features[f] > SIGNIFICANT and features[f] > noises[f]]
    if drifted:
        worst = max(drifted, key=lambda f: features[f])
    value = features[worst]
    # A drift above its band is real at any size; "stable" needs a window in which unchanged traffic stays stable.
    too_few = not drifted and any(noises[f] >= STABLE for f in features)
    enough = needed(ref, follow_ups) if too_few else None
    if drifted:
        label = "significant"
    elif too_few:
        label = "too few"
    elif value > noises[worst]:
        label = band(value) or "stable"
    else:
        label = "stable"  # within what unchanged traffic of this size gives
    noisiest = max(features, key=lambda f: noises[f])
    return {"distribution_drift": value, "feature": worst, "features": features, "noise": noises,
            "band": label, "drifted": sorted(drifted, key=lambda f: -features[f]), "needed": enough, "grew": grown,
            "sampled": m, "follow_up_share": round(follow_ups, 4),
            "sentence": _sentence(features, noises, noisiest if too_few else worst, label, m, enough)}


def _sentence(features: dict, noises: dict, worst: str, label: str, m: int, enough: int | None) -> str:
    value, band_ = features[worst], noises[worst]
    if label == "too few":
        if enough is None:
            return (f"Too few training requests to tell drift from chance (unchanged traffic could reach PSI "
                    f"{band_:.2f} on {worst}).")
        return (f"Too few requests for a verdict: {m} in the window; collect at least {enough} (with {m}, unchanged "
                f"traffic could reach PSI {band_:.2f} on {worst}).")
    if label == "stable":
        return f"No drift: the largest PSI is {value:.3f} on {worst}, under the {STABLE:.2f} line (unchanged " \
               f"traffic of this size reaches {band_:.3f})."
    return f"Distribution drift {value:.3f} on {worst}: {label} (unchanged traffic of this size reaches {band_:.3f})."


def _length_labels(ref: Reference) -> list[str]:
    edges = [int(e) for e in ref.length_edges]
    return [f"< {edges[0]} tokens"] + [f"{a}-{b - 1} tokens" for a, b in zip(edges, edges[1:])] + \
        [f">= {edges[-1]} tokens"]
