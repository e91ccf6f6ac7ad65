"""Metrics agree with their reference libraries; the paired bootstrap finds a real difference and no fake one."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from engine import scoring

REFS = ["The parcel will arrive on Monday.", "You can return the chair within 30 days.",
        "Refunds take five working days.", "Reset your password from the sign-in page.",
        "Delivery to Leeds is free over 50 pounds.", "The kettle has a two year warranty."]
HYPS = ["The parcel arrives Monday.", "You may return the chair in 30 days.", "Refunds take 5 days.",
        "Use the sign-in page to reset the password.", "Delivery is free over 50 pounds.", "Two year warranty."]


def test_bleu_and_chrf_match_sacrebleu():
    import sacrebleu

    assert scoring.paired_bootstrap(scoring.get_metric("bleu"), HYPS, HYPS, REFS, 10)["base"] == pytest.approx(
        sacrebleu.corpus_bleu(HYPS, [REFS]).score, abs=1e-6)
    assert scoring.paired_bootstrap(scoring.get_metric("chrf"), HYPS, HYPS, REFS, 10)["base"] == pytest.approx(
        sacrebleu.corpus_chrf(HYPS, [REFS]).score, abs=1e-6)
    assert scoring.sacrebleu_signature("bleu").startswith("nrefs:1")


def test_rouge_l_matches_rouge_score():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = np.mean([scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(HYPS, REFS)])
    got = scoring.paired_bootstrap(scoring.get_metric("rougeL"), HYPS, HYPS, REFS, 10)["base"]
    assert got == pytest.approx(expected, abs=1e-6)


def test_classification_metrics_match_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score

    refs = ["positive", "negative", "neutral", "positive", "negative", "positive", "neutral"]
    hyps = ["Positive.", "negative", "positive", "positive", "neutral", "positive", "neutral"]
    norm = [h.strip().lower().rstrip(".") for h in hyps]
    got = scoring.compare(hyps, hyps, refs, task="classification", n_resamples=10)
    assert got["accuracy"]["base"] == pytest.approx(accuracy_score(refs, norm), abs=1e-6)
    assert got["macro_f1"]["base"] == pytest.approx(f1_score(refs, norm, average="macro"), abs=1e-6)


def test_bootstrap_covers_a_known_difference_and_excludes_zero():
    rng = random.Random(1)
    n = 400
    refs = [f"label{rng.randint(0, 3)}" for _ in range(n)]
    base = [r if rng.random() < 0.5 else "label9" for r in refs]        # about 50% right
    tuned = [r if rng.random() < 0.7 else "label9" for r in refs]       # about 70% right
    true_diff = np.mean([t == r for t, r in zip(tuned, refs)]) - np.mean([b == r for b, r in zip(base, refs)])
    result = scoring.paired_bootstrap(scoring.get_metric("accuracy"), base, tuned, refs)
    assert result["diff"] == pytest.approx(true_diff)
    assert result["ci_low"] <= true_diff <= result["ci_high"]
    assert result["ci_low"] > 0 and result["verdict"] == "better"
    assert scoring.paired_bootstrap(scoring.get_metric("accuracy"), tuned, base, refs)["verdict"] == "worse"


def test_no_difference_is_not_called_a_difference():
    rng = random.Random(2)
    refs = [f"label{rng.randint(0, 3)}" for _ in range(200)]
    a = [r if rng.random() < 0.6 else "x" for r in refs]
    b = [r if rng.random() < 0.6 else "x" for r in refs]
    result = scoring.paired_bootstrap(scoring.get_metric("exact_match"), a, b, refs)
    assert result["ci_low"] <= 0 <= result["ci_high"]
    assert result["verdict"] == "no detectable difference"


def test_bootstrap_is_seeded():
    one = scoring.compare(HYPS, REFS, REFS, metrics=("rougeL",))
    two = scoring.compare(HYPS, REFS, REFS, metrics=("rougeL",))
    assert one == two


def test_structured_and_code_metrics():
    hyps = ['{"a": 1}', "{broken", "def f(x):\n    return x", "def f(:"]
    refs = ["", "", "", ""]
    assert scoring.compare(hyps, hyps, refs, metrics=("json_valid",), n_resamples=10)["json_valid"]["base"] == 0.25
    assert scoring.compare(hyps, hyps, refs, metrics=("python_parses",),
                           n_resamples=10)["python_parses"]["base"] == 0.5  # the JSON object is Python too


def test_perplexity_is_total_nll_over_total_tokens():
    assert scoring.perplexity([2.0, 4.0], [1, 3]) == pytest.approx(math.exp(6 / 4))
    assert scoring.perplexity([2.0, 4.0], [1, 3]) != pytest.approx(math.exp((2 / 1 + 4 / 3) / 2))


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        scoring.paired_bootstrap(scoring.get_metric("rougeL"), HYPS, HYPS[:-1], REFS)
