"""The forgetting check: does the fine-tuned model keep the general skills of its base model?

A small general-skills probe set written for this project (arithmetic, geography, opposites, sequences, everyday
facts; about 100 items, generated from templates below, license-clean) is answered by both models and scored with
chrF against its references; plus the perplexity of a general text sample. Retention = fine-tuned / base, with a 95%
paired bootstrap interval; under 90% the check warns and lists the remedies. A user can supply their own general set
(OpenAI chat JSONL).
"""

from __future__ import annotations

import random

import numpy as np

from engine.evaluate import scoring
from engine.evaluate.report_types import ForgettingReport, ForgettingVerdict, Retention

# Retention under 90% of the base model's general skills is forgetting: the threshold the guidance uses for
# "catastrophic forgetting" checks (a drop of more than 10% on held-out general probes), judged on the interval.
RETENTION_WARNING = 0.9
RETAINED = (f"Retained: the fine-tuned model keeps the base model's general skills (no retention interval lies "
            f"under {RETENTION_WARNING:.0%}).")
REMEDIES = [
    "Mix general-purpose examples into the training data (Train page, More settings: mix in general examples).",
    "Lower the learning rate or the number of epochs.",
    "Prefer LoRA (or a lower LoRA rank) to full fine-tuning.",
]

_CAPITALS = {"France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin", "Japan": "Tokyo",
             "Canada": "Ottawa", "Egypt": "Cairo", "Kenya": "Nairobi", "Peru": "Lima", "Norway": "Oslo",
             "Poland": "Warsaw", "Greece": "Athens", "Portugal": "Lisbon", "Ireland": "Dublin", "Austria": "Vienna",
             "Chile": "Santiago", "Thailand": "Bangkok", "Sweden": "Stockholm", "Finland": "Helsinki",
             "Hungary": "Budapest"}
_OPPOSITES = {"hot": "cold", "big": "small", "fast": "slow", "early": "late", "open": "closed", "light": "dark",
              "happy": "sad", "full": "empty", "high": "low", "old": "new", "wet": "dry", "hard": "soft",
              "strong": "weak", "rich": "poor", "loud": "quiet"}
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_FACTS = [
    ("How many days are in a week?", "There are seven days in a week."),
    ("How many hours are in a day?", "There are 24 hours in a day."),
    ("At what temperature does water boil at sea level?", "Water boils at 100 degrees Celsius at sea level."),
    ("At what temperature does water freeze?", "Water freezes at 0 degrees Celsius."),
    ("How many sides does a triangle have?", "A triangle has three sides."),
    ("What do plants need to make their food?", "Plants need sunlight, water and carbon dioxide."),
    ("What does the heart do?", "The heart pumps blood through the body."),
    ("What is bread made from?", "Bread is made from flour, water, salt and yeast."),
    ("How many minutes are in an hour?", "There are 60 minutes in an hour."),
    ("How many months are in a year?", "There are twelve months in a year."),
    ("What is the largest planet in our solar system?", "Jupiter is the largest planet in our solar system."),
    ("Which gas do people need to breathe?", "People need oxygen to breathe."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What is the opposite of north?", "The opposite of north is south."),
    ("How many continents are there?", "There are seven continents."),
    ("How many weeks are in a year?", "There are 52 weeks in a year."),
]
GENERAL_TEXT = [
    "The sun is a star at the centre of our solar system. Its light reaches the earth in about eight minutes.",
    "A week has seven days, and most people work on five of them and rest on the weekend.",
    "Rain forms when water vapour in clouds cools and falls to the ground as drops.",
    "Bread is made from flour, water, salt and yeast; the dough rises before it is baked in a hot oven.",
    "The moon travels around the earth about once a month and reflects the light of the sun.",
    "Most adults need seven to nine hours of sleep a night to stay healthy and alert.",
    "A budget lists the money you expect to earn and to spend, so that you can plan ahead and save.",
    "Trains and buses carry many people at once, which saves energy compared with everyone driving a car.",
]


def probe_set(seed: int = 0) -> list[list[dict]]:
    """About 100 general questions with reference answers, as chat conversations (deterministic)."""
    rng = random.Random(seed)
    items = []
    for _ in range(30):
        a, b = rng.randint(2, 60), rng.randint(2, 60)
        items.append((f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."))
    items += [(f"What is the capital of {c}?", f"The capital of {c} is {city}.") for c, city in _CAPITALS.items()]
    items += [(f"What is the opposite of {w}?", f"The opposite of {w} is {o}.") for w, o in _OPPOSITES.items()]
    items += [(f"Which day comes after {d}?", f"{_DAYS[(i + 1) % 7]} comes after {d}.") for i, d in enumerate(_DAYS)]
    items += [(f"Which month comes after {m}?", f"{_MONTHS[(i + 1) % 12]} comes after {m}.")
              for i, m in enumerate(_MONTHS)]
    items += _FACTS
    return [[{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": q},
             {"role": "assistant", "content": a}] for q, a in items]


def summarize(base_answers: list[str], tuned_answers: list[str], references: list[str],
              base_text_nll: tuple[list[float], list[int]], tuned_text_nll: tuple[list[float], list[int]],
              n_resamples: int = scoring.N_RESAMPLES, seed: int = scoring.SEED) -> ForgettingReport:
    """Retention of probe quality (chrF) and of general-text perplexity, each with a 95% interval, and a verdict."""
    chrf = scoring.get_metric("chrf")
    probes = ratio(chrf, chrf.stats(base_answers, references), chrf.stats(tuned_answers, references),
                   n_resamples, seed)
    # For perplexity lower is better, so retention is base / fine-tuned.
    sb = np.column_stack(base_text_nll).astype(float)
    sf = np.column_stack(tuned_text_nll).astype(float)
    text = ratio(scoring.PERPLEXITY, sf, sb, n_resamples, seed)
    text["base"], text["finetuned"] = text["finetuned"], text["base"]  # ratio() was given them swapped
    for measure in (probes, text):
        measure["verdict"] = verdict(measure)
    overall: ForgettingVerdict = ("forgetting" if "forgetting" in (probes["verdict"], text["verdict"]) else
               "possible_forgetting" if "possible_forgetting" in (probes["verdict"], text["verdict"]) else
               "retained")
    worst = min((probes, text), key=lambda m: m["retention"])
    warning = None
    if overall == "forgetting":
        surely = min((m for m in (probes, text) if m["verdict"] == "forgetting"), key=lambda m: m["retention"])
        warning = (f"The fine-tuned model keeps only {surely['retention']:.0%} of the base model's general skills "
                   f"(95% interval {surely['ci_low']:.0%} to {surely['ci_high']:.0%}, all under "
                   f"{RETENTION_WARNING:.0%}): it is forgetting.")
    elif overall == "possible_forgetting":
        warning = (f"Possible forgetting: the fine-tuned model keeps {worst['retention']:.0%} of the base model's "
                   f"general skills, but the 95% interval ({worst['ci_low']:.0%} to {worst['ci_high']:.0%}) reaches "
                   f"{RETENTION_WARNING:.0%}: collect more probes (your own general set) to tell.")
    return {"probe_chrf": probes, "general_text_perplexity": text, "verdict": overall, "warning": warning,
            "remedies": REMEDIES if overall == "forgetting" else [], "probes": len(references)}


def verdict(measure: Retention) -> ForgettingVerdict:
    """"forgetting" only when the whole interval lies under the line; "possible_forgetting" when the point does but
    the interval reaches it; "retained" otherwise (a verdict in words follows its interval)."""
    if measure["ci_high"] < RETENTION_WARNING:
        return "forgetting"
    if measure["retention"] < RETENTION_WARNING:
        return "possible_forgetting"
    return "retained"


def ratio(metric: scoring.Metric, sb: np.ndarray, sf: np.ndarray, n_resamples: int, seed: int) -> Retention:
    """fine-tuned / base score, with the 95% interval of the ratio over paired resamples of the examples."""
    def score(rows):
        return metric.score(rows.sum(axis=0))

    b, f = score(sb), score(sf)
    rng = np.random.default_rng(seed)
    n = len(sb)
    ratios = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        base = score(sb[idx])
        if base:
            ratios.append(score(sf[idx]) / base)
    low, high = np.percentile(ratios, [2.5, 97.5]) if ratios else (float("nan"), float("nan"))
    return {"base": b, "finetuned": f, "retention": f / b if b else float("nan"), "ci_low": float(low),
            "ci_high": float(high)}
