"""Metrics agree with their reference libraries; the paired bootstrap finds a real difference and no fake one."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from engine.evaluate import scoring

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


def test_schema_validity_agrees_with_jsonschema():
    import jsonschema

    schema = {"type": "object", "required": ["intent"], "properties": {"intent": {"enum": ["refund", "other"]}}}
    answers = ['{"intent": "refund"}', '{"intent": "upgrade"}', "not json", '{"other": 1}', '{"intent": "other"}']
    stats = scoring.schema_metric(schema).stats(answers, [""] * len(answers))
    expected = []
    for a in answers:
        try:
            jsonschema.validate(json.loads(a), schema)
            expected.append(1.0)
        except (ValueError, jsonschema.ValidationError):
            expected.append(0.0)
    assert list(stats[:, 0]) == expected == [1.0, 0.0, 0.0, 0.0, 1.0]


def test_speed_comparison_is_paired_and_lower_latency_is_better():
    from engine.evaluate.generation import Answer

    base = [Answer("a", 10, 20, 0.2) for _ in range(30)]
    tuned = [Answer("a", 10, 20, 0.1) for _ in range(30)]
    out = scoring.compare_speed(base, tuned, n_resamples=200)
    assert out["latency_s"]["diff"] == pytest.approx(-0.1) and out["latency_s"]["verdict"] == "better"
    assert out["tokens_per_second"]["base"] == pytest.approx(100.0)
    assert out["tokens_per_second"]["finetuned"] == pytest.approx(200.0)
    assert out["tokens_per_second"]["verdict"] == "better"


def test_perplexity_ratio_interval_covers_a_known_gap():
    rng = np.random.default_rng(3)
    tokens = rng.integers(20, 60, 200)
    # about 1.0 nats per token on training examples, 1.0 + ln 1.5 on test examples: a true ratio of 1.5
    train = (list(tokens * (1.0 + rng.normal(0, 0.05, 200))), list(tokens))
    test = (list(tokens * (1.0 + np.log(1.5) + rng.normal(0, 0.05, 200))), list(tokens))
    out = scoring.perplexity_ratio(test, train, n_resamples=1000)
    assert out["ci_low"] <= 1.5 <= out["ci_high"] and out["ci_high"] - out["ci_low"] < 0.1
    same = scoring.perplexity_ratio(train, train, n_resamples=1000)
    assert same["ratio"] == pytest.approx(1.0) and same["ci_low"] < 1.0 < same["ci_high"]


def test_tool_calls_are_scored_as_structure_whatever_the_wrapper():
    from engine.evaluate import tool_calls

    ref_message = {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "track_order", "arguments": "{\"order\": \"4411\", \"fast\": true}"}}]}
    ref = tool_calls.reference_call(ref_message)
    assert ref == {"name": "track_order", "arguments": {"order": "4411", "fast": True}}
    assert json.loads(tool_calls.reference_text(ref_message)) == ref
    qwen = '<tool_call>\n{"name": "track_order", "arguments": {"fast": true, "order": "4411"}}\n</tool_call>'
    llama = '{"name": "track_order", "parameters": {"order": "4411", "fast": true}}'
    assert tool_calls.call_matches(qwen, ref) == 1.0
    assert tool_calls.call_matches(llama, ref) == 1.0
    assert tool_calls.call_matches('{"name": "track_order", "arguments": {"order": "4412", "fast": true}}', ref) == 0
    assert tool_calls.call_matches('{"name": "refund", "arguments": {"order": "4411", "fast": true}}', ref) == 0
    assert tool_calls.call_matches("Your order 4411 is on its way.", ref) == 0.0


def test_a_hostile_answer_full_of_braces_is_scanned_in_bounded_time():
    import time

    from engine.evaluate import tool_calls

    began = time.perf_counter()
    assert tool_calls.generated_calls("{" * 2_000_000) == []
    assert tool_calls.generated_calls('{"a": ' * 200_000) == []
    assert time.perf_counter() - began < 5  # unbounded, each of these is minutes of quadratic parsing


def test_tool_call_accuracy_is_paired_over_the_tool_examples_only():
    from engine.evaluate.comparison import tool_call_accuracy

    call = {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "track_order", "arguments": {"order": "1"}}}]}
    convs = [[{"role": "user", "content": "q"}, call]] * 30 + [[{"role": "user", "content": "hi"},
                                                               {"role": "assistant", "content": "Hello"}]] * 10
    right = '<tool_call>{"name": "track_order", "arguments": {"order": "1"}}</tool_call>'
    base = ["I will look it up."] * 40
    tuned = [right] * 30 + ["Hello"] * 10
    metric = tool_call_accuracy(convs, base, tuned)["tool_call_accuracy"]
    assert metric["base"] == 0.0 and metric["finetuned"] == 1.0 and metric["verdict"] == "better"
    assert tool_call_accuracy([c for c in convs if not c[-1].get("tool_calls")], base[:10], tuned[:10]) == {}
