"""Simulated production traffic for the demo shop: request logs as a deployed support assistant would write them
(time, model version, request, response, latency, error, rating, user), drawn from the training distribution, or
shifted to topics the training data never had (a new product line and a payment change) from a given day on.
Deterministic (seeded). Used by the demo, the monitoring tests and bench/monitor_ingest.py.

    rows(n, model="support-v1.0.0", shift_from=None)
"""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.demo import sample

# Topics the training data does not have: what a shift in production looks like.
SHIFTED = [
    ("Can I pay for the {thing} with {pay}?", "Yes, {pay} works at checkout for every order, the {thing} included."),
    ("Does the {thing} work with the {app} app?", "The {thing} pairs with the {app} app over Bluetooth in a minute."),
    ("My {thing} will not connect to wifi after the firmware update.", "Hold the reset button of the {thing} for "
     "ten seconds, then pair it again in the {app} app."),
    ("Is there a subscription for {thing} filters?", "Filters for the {thing} ship every three months with the "
     "subscription; cancel any time in your account."),
]
THINGS = ["smart speaker", "robot vacuum", "air purifier", "smart thermostat", "video doorbell", "smart plug"]
PAY = ["Klarna", "PayPal", "Apple Pay", "bank transfer", "crypto", "gift cards"]
APPS = ["Home", "Northwind Smart", "Alexa", "Google Home"]


def _request(rng: random.Random, shifted: bool) -> tuple[str, str]:
    if shifted:
        user, answer = rng.choice(SHIFTED)
        values = {"thing": rng.choice(THINGS), "pay": rng.choice(PAY), "app": rng.choice(APPS)}
        return user.format(**values), answer.format(**values)
    conv = sample.conversation(rng)
    user = next(m["content"] for m in conv["messages"] if m["role"] == "user")
    return user, conv["messages"][-1]["content"]


def rows(n: int, model: str = "support-v1.0.0", days: int = 14, shift_from: int | None = None,
         shift_share: float = 0.7, seed: int = 0, start: datetime | None = None) -> list[dict]:
    """n log rows over `days` days; from day `shift_from` on, `shift_share` of the requests are shifted topics (and
    rated lower: the model was not trained for them)."""
    rng = random.Random(seed)
    start = start or datetime(2026, 11, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        day = i * days // n
        shifted = shift_from is not None and day >= shift_from and rng.random() < shift_share
        request, response = _request(rng, shifted)
        when = start + timedelta(days=day, seconds=rng.randrange(86400))
        out.append({"timestamp": when.isoformat(), "model_version": model, "request": request, "response": response,
                    "latency_ms": round(rng.lognormvariate(6.0, 0.35), 1), "error": int(rng.random() < 0.02),
                    "rating": rng.choice([2, 3, 3, 4]) if shifted else rng.choice([3, 4, 4, 5, 5]),
                    "user_id": f"u{rng.randrange(max(10, n // 5))}"})
    return out


def write_csv(path: Path, data: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)
    return path
