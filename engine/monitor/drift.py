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
requests add under 0.001 over 10 bins, a hundredth of the first band's width."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from engine.data import split, tokens
from engine.data.checks import language
from engine.data.loading import load_records
from engine.data.quality import usable
from engine.store import db
from engine.store.tables import Split

FLOOR = 1e-4  # the customary floor on a bin's share in PSI
STABLE, SIGNIFICANT = 0.10, 0.20  # PSI bands (Siddiqi, Credit Risk Scorecards; the industry convention)
SAMPLE = 10_000  # production requests per report for the drift features
MAX_TOPICS = 8
MIN_LANGUAGE_SHARE = 0.01  # languages under 1% of the training requests are pooled as "other"


def psi(production: np.ndarray, training: np.ndarray) -> float:
    """PSI of two share vectors over the same bins (each floored, then used as they are)."""
    p = np.maximum(np.asarray(production, dtype=float), FLOOR)
    q = np.maximum(np.asarray(training, dtype=float), FLOOR)
    return float(np.sum((p - q) * np.log(p / q)))


def band(value: float | None) -> str | None:
    if value is None or math.isnan(value):
        return None
    return "stable" if value < STABLE else "moderate" if value <= SIGNIFICANT else "significant"


def shares(labels: np.ndarray, bins: int) -> np.ndarray:
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=bins)[:bins].astype(float)
    return counts / counts.sum() if counts.sum() else counts


@dataclass
class Reference:
    """The training side of each feature: its bins and shares, and how to put a request in a bin."""
    requests: list[str]
    length_edges: np.ndarray
    length_shares: np.ndarray
    topic_shares: np.ndarray
    languages: list[str]
    language_shares: np.ndarray
    vectorizer: Any  # sklearn TfidfVectorizer
    kmeans: Any  # sklearn KMeans
    counter: Any  # engine.data.tokens.TokenCounter

    def length_bins(self, texts: list[str]) -> np.ndarray:
        return np.searchsorted(self.length_edges, np.asarray(self.counter.count(texts)), side="right")

    def topic_bins(self, texts: list[str]) -> np.ndarray:
        return self.kmeans.predict(self.vectorizer.transform(texts))

    def language_bins(self, texts: list[str]) -> np.ndarray:
        index = {lang: i for i, lang in enumerate(self.languages)}
        other = len(self.languages)
        return np.array([index.get(lang, other) for lang in language.languages(texts)], dtype=int)


def training_requests(split_id: int) -> list[str]:
    """The last user message of each training conversation of a split."""
    with db.session() as s:
        made = s.get(Split, split_id)
    if made is None:
        return []
    records = usable(load_records(split.split_path(made, "train")).records)
    return [next((m["content"] for m in reversed(r.turns) if m["role"] == "user"), "") for r in records]


@lru_cache(maxsize=8)
def reference(split_id: int, base_model: str) -> Reference | None:
    """The training side of the drift features for a split (cached per process: fitting takes a second)."""
    from sklearn.cluster import KMeans  # the scientific stack costs a second to import: only when drift is computed
    from sklearn.feature_extraction.text import TfidfVectorizer  # (same)

    requests = [t for t in training_requests(split_id) if t.strip()]
    if len(requests) < 20:
        return None
    try:
        counter = tokens.load_counter(base_model)
    except tokens.TokenizerError:
        counter = tokens.load_counter(None)
    lengths = np.asarray(counter.count(requests))
    edges = np.unique(np.quantile(lengths, np.linspace(0.1, 0.9, 9)))
    vectorizer = TfidfVectorizer(max_features=5000, sublinear_tf=True, ngram_range=(1, 2), min_df=2)
    matrix = vectorizer.fit_transform(requests)
    k = max(2, min(MAX_TOPICS, len(requests) // 50))
    kmeans = KMeans(n_clusters=k, n_init=4, random_state=0).fit(matrix)
    found = language.languages(requests)
    counts = {lang: found.count(lang) / len(found) for lang in set(found)}
    kept = sorted(lang for lang, share in counts.items() if share >= MIN_LANGUAGE_SHARE)
    ref = Reference(requests, edges, np.array([]), np.array([]), kept, np.array([]), vectorizer, kmeans, counter)
    ref.length_shares = shares(np.searchsorted(edges, lengths, side="right"), len(edges) + 1)
    ref.topic_shares = shares(kmeans.labels_, k)
    ref.language_shares = shares(ref.language_bins(requests), len(kept) + 1)
    return ref


def drift(ref: Reference, requests: list[str], seed: int = 0) -> dict:
    """PSI per feature for a sample of production requests, the largest, its band, and the requests from the bins
    that grew the most."""
    sample = list(requests)
    if len(sample) > SAMPLE:
        rng = np.random.default_rng(seed)
        sample = [sample[i] for i in sorted(rng.choice(len(sample), SAMPLE, replace=False))]
    features, grown = {}, {}
    for name, bins, training, labels in (
            ("length", ref.length_bins(sample), ref.length_shares, _length_labels(ref)),
            ("topic", ref.topic_bins(sample), ref.topic_shares, _topic_labels(ref)),
            ("language", ref.language_bins(sample), ref.language_shares, [*ref.languages, "other"])):
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


def _topic_labels(ref: Reference) -> list[str]:
    """Each cluster named by its three heaviest words."""
    terms = np.asarray(ref.vectorizer.get_feature_names_out())
    centers = np.asarray(ref.kmeans.cluster_centers_)
    return ["topic: " + ", ".join(terms[np.argsort(row)[::-1][:3]]) for row in centers]
