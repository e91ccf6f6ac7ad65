"""Results of a review campaign, with honest statistics.

Ratings: per criterion and model, the mean over items (each item's reviewers averaged first) with a 95% t interval,
the 1-5 distribution, each reviewer's bias (their mean minus the other reviewers' mean on the same items), agreement
by Krippendorff's alpha (ordinal; the `krippendorff` package) and quadratic-weighted Cohen's kappa per reviewer pair
(scikit-learn), read against the usual bands (>= 0.8 reliable, 0.667-0.8 tentative, lower unreliable), the items with
most disagreement, gold-item accuracy per reviewer, and the paired per-criterion difference (fine-tuned - base) on
the same examples: Wilcoxon signed-rank (scipy) with Holm's correction across criteria (statsmodels).

Pairwise votes: the fine-tuned model's win rate (wins + ties/2) / n with a Wilson interval, where "both bad" counts as
a tie; the two-sided sign test on decisive votes (scipy's exact binomial test); the shares of ties and "both bad";
a length-bias check (does the longer answer win more often than chance?); per-criterion paired differences (each
vote +1, -1 or 0) by Wilcoxon's signed-rank test with Holm's correction; and
the votes needed to detect a given win rate at 80% power (statsmodels).
"""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import combinations
from typing import Any, cast

import numpy as np

from engine.review import campaigns
from engine.review.result_types import PairwiseResults, RatingResults
from engine.stat_helpers import wilson
from engine.store import users

BANDS = ((0.8, "reliable"), (0.667, "tentative"), (-math.inf, "unreliable"))


def band(alpha: float | None) -> str | None:
    if alpha is None or math.isnan(alpha):
        return None
    return next(name for low, name in BANDS if alpha >= low)


def mean_ci(values) -> dict:
    """Mean with its 95% t interval."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    m = float(x.mean())
    low, high = t_interval(m, float(x.std(ddof=1)) if n > 1 else 0.0, n)
    return {"mean": m, "ci_low": low, "ci_high": high, "n": n}


def t_interval(mean: float, sd: float, n: int) -> tuple[float, float]:
    """The 95% t interval of a mean from its summary figures (the mean itself when n < 2 or sd is 0). Student's t
    quantile from scipy.special: the same function scipy.stats calls, without the second scipy.stats costs to
    import (the monitoring report runs from the command line)."""
    from scipy.special import stdtrit  # loaded on first use

    if n < 2 or not sd:
        return mean, mean
    half = float(stdtrit(n - 1, 0.975)) * sd / math.sqrt(n)
    return mean - half, mean + half


def holm(p_values: dict[str, float | None]) -> dict[str, float | None]:
    from statsmodels.stats.multitest import multipletests  # heavy: loaded on first use

    names = [k for k, p in p_values.items() if p is not None and not math.isnan(p)]
    if not names:
        return dict.fromkeys(p_values)
    adjusted = multipletests([p_values[k] for k in names], alpha=0.05, method="holm")[1]
    out: dict[str, float | None] = {k: None for k in p_values}
    out.update({k: float(p) for k, p in zip(names, adjusted)})
    return out


def votes_needed(win_rate: float, power: float = 0.8, alpha: float = 0.05) -> int | None:
    """Votes needed to tell `win_rate` from 50% (two-sided) with the given power."""
    from statsmodels.stats.power import NormalIndPower  # heavy: loaded on first use
    from statsmodels.stats.proportion import proportion_effectsize  # heavy: loaded on first use

    if abs(win_rate - 0.5) < 1e-9:
        return None
    effect = abs(proportion_effectsize(win_rate, 0.5))
    return int(math.ceil(NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=power, ratio=0)))


MIN_OVERLAP = 2  # items rated by two or more reviewers that Krippendorff's alpha needs at the least


def agreement(alpha: float | None, overlap: int) -> str:
    """The agreement in words: the band of alpha, or why there is none (never a bare "None")."""
    if alpha is not None and not math.isnan(alpha):
        return f"{band(alpha)} (alpha {alpha:.3f} over {overlap} items rated by two or more reviewers)"
    if overlap < MIN_OVERLAP:
        return (f"not enough overlap: {overlap} item{'s' if overlap != 1 else ''} rated by two or more reviewers, "
                f"at least {MIN_OVERLAP} needed")
    return f"not measurable: every rating of the {overlap} shared items is the same score"


def krippendorff_alpha(matrix: list[list[float]]) -> float | None:
    """Ordinal alpha of a reviewers x items matrix (nan where a reviewer did not rate the item)."""
    import krippendorff  # the scientific stack costs a second to import: only when statistics are computed

    data = np.asarray(matrix, dtype=float)
    if data.shape[0] < 2 or np.sum(~np.isnan(data).all(axis=0)) < 2:
        return None
    pairable = np.sum((~np.isnan(data)).sum(axis=0) >= 2)
    values = data[~np.isnan(data)]
    if pairable == 0 or len(np.unique(values)) < 2:
        return None
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal",
                                    value_domain=[1, 2, 3, 4, 5]))


def _paired(per_item: dict, model_of: dict, example_of: dict) -> tuple[dict, list[float]]:
    """(fine-tuned minus base on the examples both were rated on, the differences). The paired means are over those
    examples: their difference is the paired diff (the overall means may include examples only one model has)."""
    by_example: dict[int, dict[str, float]] = defaultdict(dict)
    for i, v in per_item.items():
        by_example[example_of[i]][model_of[i]] = v
    pairs = [d for d in by_example.values() if len(d) == 2]
    diffs = [d["finetuned"] - d["base"] for d in pairs]
    return {"n": len(diffs), "mean_diff": float(np.mean(diffs)) if diffs else None,
            "base_mean": float(np.mean([d["base"] for d in pairs])) if pairs else None,
            "finetuned_mean": float(np.mean([d["finetuned"] for d in pairs])) if pairs else None}, diffs


def rating_results(rows: list[dict]) -> RatingResults:
    """rows: engine.review.campaigns.ratings_table of a rating campaign."""
    from scipy import stats  # the scientific stack costs a second to import: only when statistics are computed
    from sklearn.metrics import cohen_kappa_score  # heavy: loaded on first use

    crits = campaigns.CRITERIA
    out: dict = {"n_ratings": len(rows), "reviewers": sorted({r["reviewer"] for r in rows}), "criteria": {}}
    item_scores: dict[tuple[int, str], list[dict]] = defaultdict(list)  # (item, criterion) -> ratings
    for r in rows:
        for c in crits:
            item_scores[(r["item"], c)].append(r)
    items = sorted({r["item"] for r in rows})
    model_of = {r["item"]: r["model"] for r in rows}
    example_of = {r["item"]: r["example"] for r in rows}
    reviewers = out["reviewers"]
    p_values: dict[str, float | None] = {}
    for c in crits:
        per_item = {i: float(np.mean([r[c] for r in item_scores[(i, c)]])) for i in items}
        entry: dict[str, Any] = {"models": {}}
        for m in campaigns.MODELS:
            vals = [v for i, v in per_item.items() if model_of[i] == m]
            dist = {str(k): sum(1 for r in rows if r["model"] == m and r[c] == k) for k in range(1, 6)}
            entry["models"][m] = {**mean_ci(vals), "distribution": dist}
        matrix = [[next((r[c] for r in item_scores[(i, c)] if r["reviewer"] == who), np.nan) for i in items]
                  for who in reviewers]
        alpha = krippendorff_alpha(matrix)
        overlap = int(np.sum((~np.isnan(np.asarray(matrix, dtype=float))).sum(axis=0) >= 2)) if reviewers else 0
        entry["alpha"], entry["band"], entry["overlap"] = alpha, band(alpha), overlap
        entry["agreement"] = agreement(alpha, overlap)
        kappas = []
        for a, b in combinations(range(len(reviewers)), 2):
            both = [(matrix[a][j], matrix[b][j]) for j in range(len(items))
                    if not (np.isnan(matrix[a][j]) or np.isnan(matrix[b][j]))]
            if len(both) >= 2 and len({v for pair in both for v in pair}) > 1:
                kappas.append({"reviewers": [reviewers[a], reviewers[b]], "n": len(both),
                               "kappa": float(cohen_kappa_score([int(x) for x, _ in both], [int(y) for _, y in both],
                                                                weights="quadratic", labels=[1, 2, 3, 4, 5]))})
        entry["weighted_kappa"] = kappas
        # paired difference on the same examples: fine-tuned - base
        entry["paired"], diffs = _paired(per_item, model_of, example_of)
        p = None
        if len(diffs) >= 2 and any(d != 0 for d in diffs):
            p = float(stats.wilcoxon(diffs).pvalue)
        entry["paired"]["p_value"] = p
        p_values[c] = p
        out["criteria"][c] = entry
    for c, adj in holm(p_values).items():
        out["criteria"][c]["paired"]["p_holm"] = adj
    out["safety_flags"] = {m: sum(1 for r in rows if r["model"] == m and r["safety_flag"]) for m in campaigns.MODELS}
    out["reviewer_bias"] = _bias(rows)
    out["most_disagreement"] = _disagreement(rows)
    out["gold"] = _gold_ratings(rows)
    return cast(RatingResults, out)


def _overall(r: dict) -> float:
    return float(np.mean([r[c] for c in campaigns.CRITERIA]))


def _bias(rows: list[dict]) -> list[dict]:
    """Each reviewer's mean overall score minus the other reviewers' mean on the same items."""
    by_item = defaultdict(list)
    for r in rows:
        by_item[r["item"]].append(r)
    out = []
    for who in sorted({r["reviewer"] for r in rows}):
        gaps = []
        for item_rows in by_item.values():
            mine = [_overall(r) for r in item_rows if r["reviewer"] == who]
            others = [_overall(r) for r in item_rows if r["reviewer"] != who]
            if mine and others:
                gaps.append(mine[0] - float(np.mean(others)))
        out.append({"reviewer": who, "items_shared": len(gaps), "bias": float(np.mean(gaps)) if gaps else None,
                    "ratings": sum(1 for r in rows if r["reviewer"] == who)})
    return out


def _disagreement(rows: list[dict], top: int = 10) -> list[dict]:
    by_item = defaultdict(list)
    for r in rows:
        by_item[r["item"]].append(r)
    spread = []
    for item, rs in by_item.items():
        if len(rs) >= 2:
            overall = [_overall(r) for r in rs]
            spread.append({"item": item, "example": rs[0]["example"], "question": rs[0]["question"],
                           "spread": max(overall) - min(overall), "reviewers": len(rs)})
    return sorted(spread, key=lambda d: -d["spread"])[:top]


def _gold_ratings(rows: list[dict]) -> list[dict]:
    out: defaultdict[str, dict[str, int]] = defaultdict(lambda: {"gold_items": 0, "within_one": 0})
    for r in rows:
        if r.get("gold"):
            g = out[r["reviewer"]]
            g["gold_items"] += 1
            g["within_one"] += int(abs(r["accuracy"] - int(r["gold"])) <= 1)
    return [{"reviewer": k, **v, "accuracy": v["within_one"] / v["gold_items"]} for k, v in sorted(out.items())]


def pairwise_results(rows: list[dict], target_win_rate: float = 0.6) -> PairwiseResults:
    """rows: engine.review.campaigns.ratings_table of a pairwise campaign; wins are the fine-tuned model's."""
    from scipy import stats  # the scientific stack costs a second to import: only when statistics are computed

    votes = [r["vote"] for r in rows]
    n = len(votes)
    wins, losses = votes.count("finetuned"), votes.count("base")
    ties, both_bad = votes.count("tie"), votes.count("both_bad")
    win_rate = (wins + (ties + both_bad) / 2) / n if n else None
    low, high = wilson(wins + (ties + both_bad) / 2, n) if n else (None, None)
    sign_p = float(stats.binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else None
    out: dict[str, Any] = {"n": n, "wins": wins, "losses": losses, "ties": ties, "both_bad": both_bad,
           "win_rate": win_rate, "ci_low": low, "ci_high": high, "sign_test_p": sign_p,
           "tie_share": ties / n if n else None, "both_bad_share": both_bad / n if n else None}
    # length bias: among decisive votes between answers of different length, how often did the longer one win?
    decisive = [r for r in rows if r["vote"] in campaigns.MODELS and r["base_words"] != r["finetuned_words"]]
    longer_won = sum(1 for r in decisive if r["vote"] == ("finetuned" if r["finetuned_words"] > r["base_words"]
                                                          else "base"))
    lb: dict[str, Any] = {"decisive_votes": len(decisive), "longer_won": longer_won,
          "share": longer_won / len(decisive) if decisive else None,
          "p_value": float(stats.binomtest(longer_won, len(decisive), 0.5).pvalue) if decisive else None}
    lb["warning"] = None
    if lb["p_value"] is not None and lb["p_value"] < 0.05 and lb["share"] > 0.5:
        lb["warning"] = (f"The longer answer won {lb['share']:.0%} of the decisive votes (p = {lb['p_value']:.3g}): "
                         "reviewers may be rewarding length; check a sample of wins by hand.")
    out["length_bias"] = lb
    per: dict[str, dict[str, Any]] = {}
    for c in campaigns.CRITERIA:
        cv = [r.get(f"vote_{c}") for r in rows if r.get(f"vote_{c}")]
        if not cv:
            continue
        w, lo = cv.count("finetuned"), cv.count("base")
        # the paired difference per item is +1 (fine-tuned better), -1 or 0 (tie, dropped by Wilcoxon's method)
        diffs = [1 if v == "finetuned" else -1 if v == "base" else 0 for v in cv]
        low_c, high_c = wilson(w + cv.count("tie") / 2, len(cv))
        per[c] = {"n": len(cv), "wins": w, "losses": lo, "ties": cv.count("tie"),
                  "win_rate": (w + cv.count("tie") / 2) / len(cv), "ci_low": low_c, "ci_high": high_c,
                  "p_value": float(stats.wilcoxon(diffs, zero_method="wilcox").pvalue) if w + lo else None}
    for c, adj in holm({c: v["p_value"] for c, v in per.items()}).items():
        per[c]["p_holm"] = adj
    out["per_criterion"] = per
    out["votes_needed"] = {"target_win_rate": target_win_rate, "votes": votes_needed(target_win_rate)}
    if win_rate is not None and abs(win_rate - 0.5) > 0.01:
        out["votes_needed"]["at_observed_win_rate"] = votes_needed(win_rate)
    out["verdict"] = _pairwise_verdict(out)
    gold: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r.get("gold"):
            gold[r["reviewer"]][0] += 1
            gold[r["reviewer"]][1] += int(r["vote"] == r["gold"] or (r["gold"] == "tie" and r["vote"] == "both_bad"))
    out["gold"] = [{"reviewer": k, "gold_items": v[0], "agreed": v[1], "accuracy": v[1] / v[0]}
                   for k, v in sorted(gold.items())]
    return cast(PairwiseResults, out)


def _pairwise_verdict(r: dict) -> str:
    if not r["n"]:
        return "No votes yet."
    if r["ci_low"] > 0.5:
        return (f"The fine-tuned model is preferred: win rate {r['win_rate']:.0%} (95% interval {r['ci_low']:.0%} to "
                f"{r['ci_high']:.0%}, above 50%).")
    if r["ci_high"] < 0.5:
        return (f"The baseline is preferred: the fine-tuned model's win rate is {r['win_rate']:.0%} (95% interval "
                f"{r['ci_low']:.0%} to {r['ci_high']:.0%}, below 50%).")
    return (f"No detectable preference yet: win rate {r['win_rate']:.0%} (95% interval {r['ci_low']:.0%} to "
            f"{r['ci_high']:.0%} includes 50%).")


def campaign_results(actor, campaign_id: int) -> RatingResults | PairwiseResults:
    users.require(actor, *campaigns.ANALYSTS)
    campaign = campaigns.get_campaign(campaign_id)
    if campaign.kind == campaigns.CORRECTION:
        raise campaigns.ReviewError(f"Campaign {campaign_id} collects corrected answers, not scores: its corrections "
                                    "go into the model's retraining data (export them to read them).")
    if campaign.kind == campaigns.AUGMENT:
        raise campaigns.ReviewError(f"Campaign {campaign_id} reviews generated records, not models: accept them with "
                                    f"`studio augment accept {campaign_id}` (or on the Review page).")
    rows = campaigns.ratings_table(actor, campaign_id)
    if campaign.kind == "rating":
        rated = rating_results(rows)
        rated["campaign"], rated["kind"] = campaign_id, "rating"
        return rated
    voted = pairwise_results(rows)
    voted["campaign"], voted["kind"] = campaign_id, "pairwise"
    return voted


def project_summary(actor, project_id: int) -> dict:
    """For the notebook: campaigns, ratings, and the latest pairwise campaign's win rate with its interval."""
    users.require(actor, *campaigns.ANALYSTS)
    project_campaigns = campaigns.list_campaigns(project_id)
    out: dict[str, Any] = {"campaigns": len(project_campaigns), "ratings": 0, "latest_pairwise": None}
    for c in project_campaigns:
        out["ratings"] += sum(p["done"] for p in campaigns.progress(actor, c.id))
    for c in project_campaigns:
        if c.kind == "pairwise":
            r = pairwise_results(campaigns.ratings_table(actor, c.id))
            if r["n"]:
                out["latest_pairwise"] = {"campaign": c.id, **{k: r[k] for k in ("n", "win_rate", "ci_low",
                                                                                  "ci_high", "verdict")}}
                break
    return out
