"""Task metrics and paired comparisons of two models on the same examples, with bootstrap confidence intervals.

Every metric is computed by its reference library (sacrebleu for BLEU and chrF, rouge-score for ROUGE-L with
stemming, scikit-learn for accuracy and macro-F1). A comparison resamples the *examples* (paired: the same indexes
for both models), recomputes each metric on the resample, and reports the 95% percentile interval of the difference
(fine-tuned minus base) and a verdict in words.

    compare(base_answers, finetuned_answers, references, task="chat")
    -> {"rougeL": {"base", "finetuned", "diff", "ci_low", "ci_high", "verdict"}, ...}
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from engine.evaluate.report_types import MetricComparison, PerplexityRatio, Verdict

# 1,000 paired bootstrap resamples (Koehn 2004, as sacrebleu's paired test): the 2.5th/97.5th percentiles of the
# difference are stable to about 0.01 at that count. A fixed seed makes a report reproducible.
N_RESAMPLES = 1000
SEED = 0
METRICS_BY_TASK = {
    "chat": ("rougeL", "chrf", "bleu", "length"),
    "summarization": ("rougeL", "chrf", "bleu", "length"),
    "classification": ("exact_match", "accuracy", "macro_f1"),
    "extraction": ("exact_match", "json_valid", "rougeL"),
    "code": ("chrf", "length"),  # plus compiles and tests_pass (engine.evaluate.comparison.code_report)
}
# The metric a promotion decides on, per task: the first of these the report has.
PRIMARY_BY_TASK = {"chat": ("rougeL",), "summarization": ("rougeL",), "classification": ("accuracy",),
                   "extraction": ("exact_match",), "code": ("tests_pass", "compiles", "chrf")}


def primary_metric(task: str, metrics: dict) -> str | None:
    return next((m for m in PRIMARY_BY_TASK.get(task, ("rougeL",)) if m in metrics), None)


@dataclass
class Metric:
    """A metric as sufficient statistics per example, so a resample's score is a sum and a formula away."""
    name: str
    stats: Callable[[list[str], list[str]], np.ndarray]     # (n_examples, k) statistics
    score: Callable[[np.ndarray], float]                    # summed (k,) statistics -> score
    higher_is_better: bool | None = True  # None: neither (length), the verdict says longer or shorter
    per_sample: bool = False  # score() takes the rows themselves (macro-F1 needs the labels, not their sum)

    def with_name(self, name: str, higher_is_better: bool | None = True) -> Metric:
        return replace(self, name=name, higher_is_better=higher_is_better)


def _sacrebleu(kind: str) -> Metric:
    from sacrebleu.metrics import BLEU, CHRF  # metric libraries load only when scoring

    scorer = BLEU() if kind == "bleu" else CHRF()

    def stats(hyps, refs):
        return np.array(scorer._extract_corpus_statistics(hyps, [refs]), dtype=float)

    def score(total):
        return float(scorer._compute_score_from_stats(list(total)).score)

    return Metric(kind, stats, score)


def _rouge_l() -> Metric:
    from rouge_score import rouge_scorer  # metric libraries load only when scoring (nltk behind it is slow to import)

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)

    def stats(hyps, refs):
        return np.array([[scorer.score(r, h)["rougeL"].fmeasure, 1.0] for h, r in zip(hyps, refs)])

    return Metric("rougeL", stats, lambda total: float(total[0] / total[1]) if total[1] else 0.0)


def _normalize_label(text: str) -> str:
    return " ".join(text.strip().lower().rstrip(".!").split())


def _mean_of(name: str, per_example: Callable[[str, str], float]) -> Metric:
    def stats(hyps, refs):
        return np.array([[per_example(h, r), 1.0] for h, r in zip(hyps, refs)])

    return Metric(name, stats, lambda total: float(total[0] / total[1]) if total[1] else 0.0)


def _json_valid(hyp: str, ref: str) -> float:
    try:
        json.loads(hyp)
        return 1.0
    except (ValueError, RecursionError):
        return 0.0


def _python_parses(hyp: str, ref: str) -> float:
    try:
        ast.parse(hyp)
        return 1.0
    except (SyntaxError, ValueError, RecursionError):
        return 0.0


def _macro_f1() -> Metric:
    from sklearn.metrics import f1_score  # heavy: loaded on first use

    def stats(hyps, refs):
        # Labels are interned as numbers so rows stay numeric; score() needs the rows themselves.
        vocab: dict[str, int] = {}
        rows = [[vocab.setdefault(_normalize_label(h), len(vocab)), vocab.setdefault(_normalize_label(r), len(vocab))]
                for h, r in zip(hyps, refs)]
        return np.array(rows, dtype=float)

    def score(rows):
        return float(f1_score(rows[:, 1], rows[:, 0], average="macro", zero_division=0))

    return Metric("macro_f1", stats, score, per_sample=True)


def get_metric(name: str) -> Metric:
    if name in ("bleu", "chrf"):
        return _sacrebleu(name)
    if name == "rougeL":
        return _rouge_l()
    if name in ("exact_match", "accuracy"):
        return _mean_of(name, lambda h, r: float(_normalize_label(h) == _normalize_label(r)))
    if name == "macro_f1":
        return _macro_f1()
    if name == "json_valid":
        return _mean_of(name, _json_valid)
    if name == "python_parses":
        return _mean_of(name, _python_parses)
    if name == "length":
        return Metric("length", lambda hyps, refs: np.array([[len(h.split()), 1.0] for h in hyps]),
                      lambda total: float(total[0] / total[1]) if total[1] else 0.0, higher_is_better=None)
    raise ValueError(f"Unknown metric {name!r}.")


def verdict(low: float, high: float, higher_is_better: bool | None) -> Verdict:
    """Words for a difference interval: only an interval that excludes zero is a difference."""
    if higher_is_better is None:
        return "longer" if low > 0 else "shorter" if high < 0 else "no detectable difference"
    if low > 0:
        return "better" if higher_is_better else "worse"
    if high < 0:
        return "worse" if higher_is_better else "better"
    return "no detectable difference"


def paired_bootstrap(metric: Metric, base: list[str], finetuned: list[str], refs: list[str],
                     n_resamples: int = N_RESAMPLES, seed: int = SEED) -> MetricComparison:
    """Score both models, and the 95% interval of (fine-tuned - base) over paired resamples of the examples."""
    if not (len(base) == len(finetuned) == len(refs)) or not refs:
        raise ValueError("base, fine-tuned and references must be non-empty and of the same length.")
    return bootstrap_stats(metric, metric.stats(base, refs), metric.stats(finetuned, refs), n_resamples, seed)


def bootstrap_stats(metric: Metric, sb: np.ndarray, sf: np.ndarray, n_resamples: int = N_RESAMPLES,
                    seed: int = SEED) -> MetricComparison:
    """The paired bootstrap on per-example statistics (rows are examples, in the same order for both models)."""

    def score(rows: np.ndarray) -> float:
        return metric.score(rows if metric.per_sample else rows.sum(axis=0))

    b, f = score(sb), score(sf)
    rng = np.random.default_rng(seed)
    n = len(sb)
    diffs = np.empty(n_resamples)
    for i in range(n_resamples):
        idx = rng.integers(0, n, n)
        diffs[i] = score(sf[idx]) - score(sb[idx])
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"base": b, "finetuned": f, "diff": f - b, "ci_low": float(low), "ci_high": float(high),
            "verdict": verdict(float(low), float(high), metric.higher_is_better)}


def compare(base: list[str], finetuned: list[str], refs: list[str], task: str = "chat",
            metrics: tuple[str, ...] | None = None, n_resamples: int = N_RESAMPLES,
            seed: int = SEED) -> dict[str, MetricComparison]:
    return {name: paired_bootstrap(get_metric(name), base, finetuned, refs, n_resamples, seed)
            for name in (metrics or METRICS_BY_TASK.get(task, METRICS_BY_TASK["chat"]))}


def sacrebleu_signature(name: str) -> str:
    """The signature sacrebleu prints for BLEU or chrF, to show next to the score (reproducibility)."""
    from sacrebleu.metrics import BLEU, CHRF  # metric libraries load only when scoring

    scorer = BLEU() if name == "bleu" else CHRF()
    scorer.corpus_score(["x"], [["x"]])  # the signature records the number of references once scored
    return str(scorer.get_signature())


MEAN = Metric("mean", stats=lambda *_: np.empty((0, 2)),
              score=lambda total: float(total[0] / total[1]) if total[1] else 0.0)
# generated tokens / seconds over the examples: rows are (new tokens, latency)
RATE = Metric("tokens_per_second", stats=lambda *_: np.empty((0, 2)),
              score=lambda total: float(total[0] / total[1]) if total[1] else 0.0)


def schema_metric(schema: dict) -> Metric:
    """The share of answers that parse as JSON and match the schema."""
    import jsonschema  # only a structured-output evaluation needs it

    validator = jsonschema.validators.validator_for(schema)(schema)

    def matches(hyp: str, ref: str) -> float:
        try:
            return float(validator.is_valid(json.loads(hyp)))
        except (ValueError, RecursionError):
            return 0.0

    return _mean_of("schema_valid", matches)


def compare_speed(base: list, finetuned: list, n_resamples: int = N_RESAMPLES,
                  seed: int = SEED) -> dict[str, MetricComparison]:
    """Latency per example (seconds; lower is better) and generated tokens per second, paired like the others.

    base/finetuned are engine.evaluate.generation.Answer lists in the same example order."""
    lat = MEAN.with_name("latency_s", higher_is_better=False)
    out = {"latency_s": bootstrap_stats(lat, np.array([[a.latency_s, 1.0] for a in base]),
                                        np.array([[a.latency_s, 1.0] for a in finetuned]), n_resamples, seed),
           "tokens_per_second": bootstrap_stats(RATE, np.array([[a.new_tokens, a.latency_s] for a in base]),
                                                np.array([[a.new_tokens, a.latency_s] for a in finetuned]),
                                                n_resamples, seed)}
    return out


def perplexity_ratio(test: tuple[list[float], list[int]], train: tuple[list[float], list[int]],
                     n_resamples: int = N_RESAMPLES, seed: int = SEED) -> PerplexityRatio:
    """Perplexity on test examples / perplexity on training examples, with a 95% interval (the two samples are
    different examples, so each is resampled on its own)."""
    st, sr = np.column_stack(test).astype(float), np.column_stack(train).astype(float)
    rng = np.random.default_rng(seed)
    ratios = np.empty(n_resamples)
    for i in range(n_resamples):
        a = st[rng.integers(0, len(st), len(st))].sum(axis=0)
        b = sr[rng.integers(0, len(sr), len(sr))].sum(axis=0)
        ratios[i] = PERPLEXITY.score(a) / PERPLEXITY.score(b)
    low, high = np.percentile(ratios, [2.5, 97.5])
    test_ppl, train_ppl = PERPLEXITY.score(st.sum(axis=0)), PERPLEXITY.score(sr.sum(axis=0))
    return {"test_perplexity": test_ppl, "train_perplexity": train_ppl, "ratio": test_ppl / train_ppl,
            "ci_low": float(low), "ci_high": float(high)}


PERPLEXITY = Metric("perplexity", stats=lambda *_: np.empty((0, 2)),
                    score=lambda total: float(np.exp(total[0] / total[1])) if total[1] else float("nan"),
                    higher_is_better=False)


def compare_perplexity(base: tuple[list[float], list[int]], finetuned: tuple[list[float], list[int]],
                       n_resamples: int = N_RESAMPLES, seed: int = SEED) -> MetricComparison:
    """Perplexity of the reference answers under each model, with the paired interval of the difference."""
    sb = np.column_stack([base[0], base[1]]).astype(float)
    sf = np.column_stack([finetuned[0], finetuned[1]]).astype(float)
    return bootstrap_stats(PERPLEXITY, sb, sf, n_resamples, seed)


def perplexity(nll_sums: list[float], token_counts: list[int]) -> float:
    """exp(total negative log-likelihood / total tokens) over the examples (not a mean of per-example values)."""
    total = float(np.sum(token_counts))
    return float(np.exp(np.sum(nll_sums) / total)) if total else float("nan")
