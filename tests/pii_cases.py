"""A labelled fixture for phone-number detection: real phone numbers in the formats people write them (US, UK,
German, French, Indian, international), and the look-alikes that fooled the old pattern (arithmetic, dates, version
numbers, ranges, ids, ISBNs, postcodes, times, prices, coordinates, card numbers), each inside a sentence.

    cases() -> [(text, has_phone)]     at least 200 of each, deterministic

The true numbers are drawn from real numbering plans (fictional ranges where they exist: 555-01xx in North America,
Ofcom's 020 7946 0xxx and 07700 900xxx in the UK) and kept only when the national plan says the number is valid.
Used by tests/test_quality_checks.py (precision and recall floors) and bench/pii_precision.py (the figures).
"""

from __future__ import annotations

import random

SENTENCES_WITH_PHONE = [
    "Please call me at {}.", "You can reach our office on {} between 9 and 5.", "My number is {}, text first.",
    "Ring {} if the parcel is late.", "Contact: Maria Lopez, {}", "Tel. {} (reception)", "Phone {} and ask for Sam.",
    "If the courier does not show up, dial {} before noon.", "Our hotline {} is open on weekends too.",
    "Leave a message at {} and we will call back.",
]
SENTENCES_WITHOUT = [
    "The total is {} after discounts.", "See {} for the details.", "It was logged as {} in the system.",
    "Reference: {}", "The value {} came from the spreadsheet.", "We shipped it on {} as promised.",
    "Check entry {} again, please.", "Line {} of the report looks wrong.",
]
US_AREAS = [212, 213, 305, 312, 415, 503, 512, 617, 646, 702, 713, 718, 773, 808, 917, 206, 404, 214, 303, 602]


def _true_numbers(rng: random.Random) -> list[str]:
    import phonenumbers

    out: list[str] = []

    def keep(number: str, region: str) -> None:
        parsed = phonenumbers.parse(number, region)
        if phonenumbers.is_valid_number(parsed):
            out.append(number)

    while len(out) < 50:
        area, line = rng.choice(US_AREAS), rng.randint(100, 199)
        fmt = rng.choice(["({a}) 555-0{l}", "{a}-555-0{l}", "{a}.555.0{l}", "+1 {a} 555 0{l}", "+1 ({a}) 555-0{l}",
                          "1-{a}-555-0{l}"])
        keep(fmt.format(a=area, l=line), "US")
    while len(out) < 90:
        line = rng.randint(0, 999)
        fmt = rng.choice(["020 7946 0{l:03d}", "+44 20 7946 0{l:03d}", "07700 900{l:03d}", "+44 7700 900{l:03d}"])
        keep(fmt.format(l=line), "GB")
    while len(out) < 130:
        area = rng.choice(["30", "40", "89", "221", "69"])
        digits = "".join(rng.choice("123456789") for _ in range(8 if len(area) == 2 else 7))
        keep(rng.choice([f"+49 {area} {digits}", f"0{area} {digits}"]), "DE")
    while len(out) < 170:
        first = rng.choice("12345")
        pairs = " ".join(f"{rng.randint(10, 99)}" for _ in range(4))
        keep(rng.choice([f"+33 {first} {pairs}", f"0{first} {pairs}"]), "FR")
    while len(out) < 210:
        mobile = f"{rng.choice('9876')}{rng.randint(1000, 9999)} {rng.randint(10000, 99999)}"
        keep(rng.choice([f"+91 {mobile}", f"0{mobile}"]), "IN")
    return out


def _look_alikes(rng: random.Random) -> list[str]:
    makers = [
        lambda: f"{rng.randint(1000, 9999)}-{rng.randint(100, 999)}-{rng.randint(100, 999)}=" f"{rng.randint(100, 999)}",
        lambda: f"{rng.randint(1990, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        lambda: f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{rng.randint(1990, 2030)}",
        lambda: f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(1990, 2030)}",
        lambda: f"v{rng.randint(0, 12)}.{rng.randint(0, 40)}.{rng.randint(0, 200)}",
        lambda: f"pages {rng.randint(100, 400)}-{rng.randint(401, 900)}",
        lambda: f"{rng.randint(1900, 1999)}-{rng.randint(2000, 2030)}",
        lambda: f"ORD-{rng.randint(2019, 2030)}-{rng.randint(100000, 999999)}",
        lambda: f"order {rng.randint(1000, 9999)} {rng.randint(1000, 9999)} {rng.randint(10, 99)}",
        lambda: f"SKU {rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}-{rng.randint(100, 999)}",
        lambda: f"978-{rng.randint(0, 9)}-{rng.randint(10, 99)}-{rng.randint(100000, 999999)}-{rng.randint(0, 9)}",
        lambda: f"{rng.randint(10000, 99999)}-{rng.randint(1000, 9999)}",
        lambda: f"{rng.randint(7, 11)}:{rng.randint(0, 59):02d}-{rng.randint(12, 18)}:{rng.randint(0, 59):02d}",
        lambda: f"{rng.randint(1, 9)},{rng.randint(100, 999)},{rng.randint(100, 999)}.{rng.randint(0, 99):02d}",
        lambda: f"{rng.uniform(-80, 80):.4f}, {rng.uniform(-170, 170):.4f}",
        lambda: f"SN {rng.randint(2015, 2030)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
        lambda: f"{rng.randint(1000, 9999)} * {rng.randint(10, 99)} = {rng.randint(10000, 999999)}",
        lambda: f"{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)} inhabitants",
        lambda: "4111 1111 1111 1111" if rng.random() < 0.5 else "5500 0000 0000 0004",
        lambda: f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
    ]
    return [makers[i % len(makers)]() for i in range(220)]


def cases(seed: int = 7) -> list[tuple[str, bool]]:
    rng = random.Random(seed)
    true = [rng.choice(SENTENCES_WITH_PHONE).format(n) for n in _true_numbers(rng)]
    false = [rng.choice(SENTENCES_WITHOUT).format(x) for x in _look_alikes(rng)]
    return [(t, True) for t in true] + [(t, False) for t in false]
