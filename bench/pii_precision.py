"""Benchmark: phone-number detection on a labelled fixture (tests/pii_cases.py: 210 real numbers in the formats
people write, 220 look-alikes: arithmetic, dates, versions, ranges, ids, ISBNs, postcodes, times, prices,
coordinates, card numbers), each in a sentence. Prints precision and recall of the studio's detector (phonenumbers'
matcher) and, as the baseline measured in the same run, of the regular expression it replaced (issue 10).

    .venv/bin/python bench/pii_precision.py
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The pattern the studio used before (engine/checks/sensitive.py until issue 10), with its digit-count check.
OLD_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}[ .-]\d{3,4}[ .-]?\d{3,4}(?!\w)")


def old_detector(text: str) -> bool:
    for m in OLD_PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 9 <= len(digits) <= 15 and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", m.group(0)):
            return True
    return False


def score(detect, cases) -> tuple[float, float, int, int, float]:
    start = time.perf_counter()
    tp = fp = fn = 0
    for text, has_phone in cases:
        got = detect(text)
        tp += got and has_phone
        fp += got and not has_phone
        fn += has_phone and not got
    seconds = time.perf_counter() - start
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1), fp, fn, seconds


def main() -> int:
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from pii_cases import cases

    from engine.data.checks.sensitive import find_pii, phone_regions

    labelled = cases()
    n_true = sum(1 for _, t in labelled if t)
    print(f"fixture: {n_true} texts with a phone number, {len(labelled) - n_true} look-alikes "
          f"(national formats of {', '.join(phone_regions())})")
    for name, detect in (("studio (phonenumbers)", lambda t: any(k == "phone" for k, _, _ in find_pii(t))),
                         ("old regular expression", old_detector)):
        precision, recall, fp, fn, seconds = score(detect, labelled)
        print(f"{name:<24} precision {precision:.3f}  recall {recall:.3f}  ({fp} false alarms, {fn} missed; "
              f"{1000 * seconds / len(labelled):.2f} ms per text)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
