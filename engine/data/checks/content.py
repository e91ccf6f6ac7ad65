"""Content checks on the answers: too short, copying the input, degenerate repetition, unfilled template slots,
AI boilerplate."""

from __future__ import annotations

import re

from engine.data.checks import windows
from engine.data.report import Finding, drop_fix
from engine.data.shapes import Record

SHORT_CHARS = 5
_VAGUE = {"ok", "okay", "k", "yes", "no", "sure", "n/a", "na", "none", "null", "idk", "i don't know", "i do not know",
          "thanks", "thank you", "done", "fine", "...", "?", "-", "same", "see above", "tbd", "todo"}
_NORM = re.compile(r"[^\w\s]")
_WORD = re.compile(r"\w+")
PLACEHOLDER = re.compile(
    r"\{\{\s*[A-Za-z_][\w .-]{0,40}?\s*\}\}"         # {{name}}
    r"|\[\[\s*[A-Za-z_][\w .-]{0,40}?\s*\]\]"       # [[name]]
    r"|<<\s*[A-Za-z_][\w-]{0,40}\s*>>"              # <<name>>
    r"|\[(?:your|insert|enter|add)[ _][^\]\n]{1,30}\]",  # [Your Name], [insert date]
    re.IGNORECASE)
BOILERPLATE = re.compile(
    r"\bas an ai\b|\bas an artificial intelligence\b|\bas a (?:large )?language model\b"
    r"|\bI(?:'m| am) (?:just |only )?(?:an ai|an artificial intelligence|a (?:large )?language model)\b"
    r"|\bI (?:do not|don't) have (?:personal )?(?:opinions|feelings|emotions|beliefs|preferences)\b"
    r"|\bmy (?:knowledge|training)(?: data)? cut-?off\b|\bI (?:cannot|can't|am unable to) browse\b",
    re.IGNORECASE)
# A degenerate answer: 30+ words of which under 30% of the 3-grams are distinct (a model stuck in a loop).
REPEAT_MIN_WORDS = 30
REPEAT_MAX_DISTINCT = 0.3


def _norm(text: str) -> str:
    return " ".join(_NORM.sub(" ", text.lower()).split())


def _answer(rec: Record) -> str | None:
    return rec.turns[-1]["content"] if rec.turns[-1]["role"] == "assistant" else None


def _prompt(rec: Record) -> str:
    return next((m["content"] for m in reversed(rec.turns[:-1]) if m["role"] == "user"), "")


def check_short(records: list[Record]) -> Finding | None:
    details = {}
    for rec in records:
        answer = _answer(rec)
        if answer is None:
            continue
        text = answer.strip()
        if len(text) < SHORT_CHARS or len(text) <= 40 and _norm(text) in _VAGUE:
            details[rec.location] = f"answer is {text[:20]!r}"
    if not details:
        return None
    locs = sorted(details)
    return Finding(
        "short_output",
        f"Answers under {SHORT_CHARS} characters or vague ('ok', 'sure') teach little, unless the task "
        "really is a one-word label.", locs, drop_fix("short_output"), details=details)


def check_copies_input(records: list[Record]) -> Finding | None:
    """The answer is the user's input verbatim (the whole message, or the part after the instruction).

    Exact after trimming: adding punctuation or splitting paragraphs is a real transformation, not a copy.
    """
    details = {}
    for rec in records:
        answer = _answer(rec)
        prompt = _prompt(rec).strip()
        if not answer or not answer.strip() or not prompt:
            continue
        parts = prompt.split("\n\n", 1)
        if answer.strip() in (prompt, parts[-1].strip()):
            details[rec.location] = "answer repeats the input"
    if not details:
        return None
    locs = sorted(details)
    return Finding("output_copies_input",
                   "Answers that repeat the input instead of answering it teach the model to echo.",
                   locs, drop_fix("output_copies_input"), details=details)


def repetition_ratio(text: str) -> float | None:
    """Distinct word 3-grams / all 3-grams for texts of 30+ words (None for shorter ones); low means degenerate."""
    words = _WORD.findall(windows.sample(text).lower())
    if len(words) < REPEAT_MIN_WORDS:
        return None
    if len(set(words)) / len(words) > 0.5:
        return 1.0  # many distinct words: cannot be degenerate; skip the 3-gram pass
    grams = list(zip(words, words[1:], words[2:]))
    return len(set(grams)) / len(grams)


def check_repetitive(records: list[Record]) -> Finding | None:
    details = {}
    for rec in records:
        for m in rec.turns:
            if m["role"] != "assistant":
                continue
            ratio = repetition_ratio(m["content"])
            if ratio is not None and ratio < REPEAT_MAX_DISTINCT:
                details[rec.location] = f"only {ratio:.0%} of its word 3-grams are distinct"
                break
    if not details:
        return None
    locs = sorted(details)
    return Finding("repetitive",
                   "Answers that repeat the same phrases over and over (degenerate text) teach the model to loop.",
                   locs, drop_fix("repetitive"), details=details)


def _first_match(records: list[Record], pattern: re.Pattern, roles: tuple[str, ...]) -> dict[int, tuple]:
    """location -> (matched text, role) of the first message (of these roles) the pattern matches."""
    found = {}
    for rec in records:
        for m in rec.turns:
            if m["role"] in roles and (hit := pattern.search(m["content"])):
                found[rec.location] = (hit.group(0), m["role"])
                break
    return found


def check_placeholders(records: list[Record]) -> Finding | None:
    hits = _first_match(records, PLACEHOLDER, ("system", "user", "assistant", "tool"))
    if not hits:
        return None
    return Finding("template_placeholder",
                   "Unfilled template slots such as {{name}}: fill them, or the model will answer with the slot.",
                   sorted(hits), drop_fix("template_placeholder"),
                   details={loc: f"unfilled slot {text[:40]} in the {role} message"
                            for loc, (text, role) in hits.items()})


def check_boilerplate(records: list[Record]) -> Finding | None:
    hits = _first_match(records, BOILERPLATE, ("assistant",))
    if not hits:
        return None
    return Finding("ai_boilerplate",
                   "AI boilerplate in answers ('as an AI language model'): the fine-tuned model would copy the "
                   "disclaimers.", sorted(hits), drop_fix("ai_boilerplate"),
                   details={loc: f"says {text!r}" for loc, (text, _) in hits.items()})
