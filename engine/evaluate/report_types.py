"""The shape of an evaluation report (report.json, `studio eval --json`): TypedDicts, so the page, the CLI and the
review stage read the same keys the evaluation writes. Every comparison is fine-tuned minus baseline on the same
examples, with a 95% interval; a verdict in words follows the interval."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

Verdict = Literal["better", "worse", "longer", "shorter", "no detectable difference"]  # longer/shorter: length
ForgettingVerdict = Literal["forgetting", "possible_forgetting", "retained"]


class MetricComparison(TypedDict):
    """One metric: each model's value, the paired difference and its 95% bootstrap interval."""
    base: float
    finetuned: float
    diff: float
    ci_low: float
    ci_high: float
    verdict: Verdict


class Retention(TypedDict):
    """Fine-tuned / base (for perplexity, base / fine-tuned) with its 95% interval."""
    base: float
    finetuned: float
    retention: float
    ci_low: float
    ci_high: float
    verdict: NotRequired[ForgettingVerdict]


class ForgettingReport(TypedDict):
    probe_chrf: Retention
    general_text_perplexity: Retention
    verdict: ForgettingVerdict
    warning: str | None
    remedies: list[str]
    probes: int


class PerplexityRatio(TypedDict):
    test_perplexity: float
    train_perplexity: float
    ratio: float
    ci_low: float
    ci_high: float


class TrainTestGap(TypedDict):
    """Test/train perplexity ratio of each model; the base model's is the control."""
    base: PerplexityRatio
    finetuned: PerplexityRatio
    warning: str | None


class RoutingPoint(TypedDict):
    threshold: float
    fallback_rate: float
    quality: float


class Interval(TypedDict):
    diff: float
    ci_low: float
    ci_high: float


class RoutingRule(TypedDict):
    route: str
    fallback: str
    confidence: str
    fallback_when: str
    threshold: float
    expected_fallback_rate: float
    expected_quality: float


class RoutingReport(TypedDict):
    """Hybrid routing: below a confidence threshold, answer with the few-shot base model instead."""
    points: list[RoutingPoint]
    recommended: RoutingPoint
    recommendation: str
    gain: Interval
    rule: RoutingRule
    only_finetuned: float
    only_fallback: float


class CodeReport(TypedDict):
    languages_checked: list[str]
    compile_checked: int
    isolation: str  # the sandbox level the tests ran at (engine.evaluate.sandbox.level)
    with_tests: int
    tests_disabled: NotRequired[str]
    test_failures: NotRequired[dict[str, list[str]]]


class BootstrapInfo(TypedDict):
    resamples: int
    seed: int
    interval: str


class EvalReport(TypedDict):
    run: int
    base_model: str
    baseline: str  # "base" or "run N"
    baseline_model: str
    n_examples: int
    task: str
    metrics: dict[str, MetricComparison]
    forgetting: ForgettingReport
    train_test_gap: TrainTestGap
    generated_tokens_per_second: dict[str, float]
    latency_s_per_example: dict[str, float]
    signatures: dict[str, str]
    bootstrap: BootstrapInfo
    notes: NotRequired[list[str]]
    json_schema: NotRequired[str]
    code: NotRequired[CodeReport]
    routing: NotRequired[RoutingReport]
