"""The shapes of review and A/B results (`studio review results --json`, `studio ab analyze --json`, the Review and
A/B pages): TypedDicts, so every reader uses the keys the statistics write. Intervals are 95%; a verdict in words
follows its interval."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict


class MeanInterval(TypedDict):
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


class ModelScores(MeanInterval):
    distribution: dict[str, int]  # "1".."5" -> ratings


class Kappa(TypedDict):
    reviewers: list[str]
    n: int
    kappa: float


class PairedDifference(TypedDict):
    """Fine-tuned minus base on the same examples: Wilcoxon signed-rank p, Holm-corrected over the criteria."""
    n: int
    mean_diff: float | None
    base_mean: float | None  # the two means over the examples both models were rated on
    finetuned_mean: float | None
    p_value: float | None
    p_holm: float | None


class CriterionResult(TypedDict):
    models: dict[str, ModelScores]
    alpha: float | None  # Krippendorff's alpha (ordinal)
    band: str | None
    overlap: int  # items rated by two or more reviewers
    agreement: str  # the band, or why there is none, in words
    weighted_kappa: list[Kappa]
    paired: PairedDifference


class ReviewerBias(TypedDict):
    reviewer: str
    items_shared: int
    bias: float | None
    ratings: int


class Disagreement(TypedDict):
    item: int
    example: int
    question: str
    spread: float
    reviewers: int


class RatingResults(TypedDict):
    campaign: NotRequired[int]
    kind: NotRequired[Literal["rating"]]
    n_ratings: int
    reviewers: list[str]
    criteria: dict[str, CriterionResult]
    safety_flags: dict[str, int]
    reviewer_bias: list[ReviewerBias]
    most_disagreement: list[Disagreement]
    gold: list[dict]


class LengthBias(TypedDict):
    decisive_votes: int
    longer_won: int
    share: float | None
    p_value: float | None
    warning: str | None


class CriterionVotes(TypedDict):
    n: int
    wins: int
    losses: int
    ties: int
    win_rate: float
    ci_low: float  # Wilson interval of the win rate
    ci_high: float
    p_value: float | None
    p_holm: float | None


class PairwiseResults(TypedDict):
    campaign: NotRequired[int]
    kind: NotRequired[Literal["pairwise"]]
    n: int
    wins: int
    losses: int
    ties: int
    both_bad: int
    win_rate: float | None  # (wins + ties/2) / votes; "both bad" counts as a tie
    ci_low: float | None  # Wilson interval
    ci_high: float | None
    sign_test_p: float | None
    tie_share: float | None
    both_bad_share: float | None
    length_bias: LengthBias
    per_criterion: dict[str, CriterionVotes]
    votes_needed: dict[str, float | int | None]
    verdict: str
    gold: list[dict]


class Welch(TypedDict):
    """Treatment minus control (per-user means), Welch's interval, and the relative lift (delta method)."""
    control: float
    treatment: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    relative_lift: float | None
    lift_ci_low: float | None
    lift_ci_high: float | None


class AbMetric(Welch):
    lower_is_better: bool


class SampleRatio(TypedDict):
    expected_share: float
    observed_share: float | None
    p_value: float
    alert: bool


class DataIssues(TypedDict):
    rows: int
    duplicate_rows_dropped: int
    users_in_both_variants: int
    rows_of_those_users_excluded: int
    columns: dict[str, str]


class LiftPoint(TypedDict):
    until: str
    users: int
    relative_lift: float | None
    lift_ci_low: float | None
    lift_ci_high: float | None


class AbResult(TypedDict):
    variants: dict[str, str]
    n: dict[str, int]  # users per variant
    requests: dict[str, int]
    srm: SampleRatio
    metrics: dict[str, AbMetric]
    data_issues: DataIssues
    guardrails: dict
    primary: str | None
    cumulative: list[LiftPoint]
    decision: Literal["ship", "do not ship", "keep collecting"]
    reasons: list[str]
    routing_snippet: str
