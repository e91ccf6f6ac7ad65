"""Structural checks: the blocking errors found while reading, and the shape of each conversation."""

from __future__ import annotations

import re
from collections import Counter

from engine.data.report import Finding, Fix, drop_fix
from engine.data.shapes import Record

_ERROR_TEXT = {
    "unparseable_line": "could not be parsed",
    "not_an_object": "are not JSON objects",
    "no_messages": "hold no conversation",
    "bad_role": "have a message with an unknown or missing role",
    "missing_content": "have a message without text",
    "no_assistant_turn": "have no assistant answer to learn from",
}


def _summary(code: str, locations: list[int], details: dict[int, str]) -> str:
    first = details[locations[0]]
    more = f" ({len(locations) - 1} more like it.)" if len(locations) > 1 else ""
    return f"Records that {_ERROR_TEXT[code]}. First: {first}{more}"


def check_errors(records: list[Record]) -> list[Finding]:
    """One finding per error code, listing every record that has it (a record may have several codes)."""
    by_code: dict[str, dict[int, str]] = {}
    for rec in records:
        for code, sentence in rec.problems:
            by_code.setdefault(code, {}).setdefault(rec.location, sentence)
        if rec.messages and not any(m["role"] == "assistant" for m in rec.messages):
            by_code.setdefault("no_assistant_turn", {})[rec.location] = (
                f"{rec.where} {rec.location} has no assistant message.")
    findings = []
    for code in _ERROR_TEXT:
        details = by_code.get(code)
        if details:
            locations = sorted(details)
            findings.append(Finding(code, _summary(code, locations, details), locations,
                                    drop_fix(code), details=details))
    return findings


_NUMBER = re.compile(r"[-+]?(?:\d[\d,_]*)?\.?\d+(?:[eE][-+]?\d+)?%?")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?"
                        r"|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}(?: \d{1,2}:\d{2}(?::\d{2})?)?")
_ID = re.compile(r"[\w.:-]{1,64}")  # one token with no spaces (u_1234, 9f8e-77, req:88)
_GENERATED_ID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
                           r"|[0-9a-fA-F]{16,}")  # UUIDs and long hex digests
_DIGIT = re.compile(r"\d")
NOT_TEXT_SHARE = 0.5  # "most rows"


def looks_like_text(value: str, role: str = "user") -> bool:
    """False for what fills id, timestamp and number columns. A prompt is never a number, a date or an id token
    holding digits; an answer may be a number (arithmetic, a rating, a label) or a code the task extracts, so for
    answers only dates, times, UUIDs, hex digests and booleans count as not text."""
    v = value.strip()
    if not v:
        return True  # empty is missing_content's business
    if len(v) > 64:
        return True
    if _TIMESTAMP.fullmatch(v) or _GENERATED_ID.fullmatch(v) or v.lower() in ("true", "false", "null", "none"):
        return False
    if role == "user" and (_NUMBER.fullmatch(v) or (_ID.fullmatch(v) and _DIGIT.search(v))):
        return False
    return True


def check_mapped_columns(records: list[Record], mapping: dict[str, str] | None) -> list[Finding]:
    """not_text: a mapped prompt or answer column that holds ids, timestamps or numbers in most rows (the wrong
    column was mapped: a traffic log, say) blocks training, naming the column."""
    if not mapping:
        return []
    sentences: list[str] = []
    details: dict[int, str] = {}
    for key, role in (("prompt", "user"), ("completion", "assistant")):
        column = mapping.get(key)
        bad = {}
        total = 0
        for rec in records:
            message = next((m for m in rec.messages or [] if m["role"] == role), None)
            if message is None or not message["content"].strip():
                continue
            total += 1
            if not looks_like_text(message["content"], role):
                bad[rec.location] = f"{column} = {message['content'].strip()[:40]!r}"
        if total and len(bad) > NOT_TEXT_SHARE * total:
            what = "prompt" if key == "prompt" else "answer"
            sentences.append(f"The column {column!r}, mapped as the {what}, does not hold text in {len(bad):,} of "
                             f"{total:,} rows (ids, timestamps or numbers): map the column that holds the {what}s.")
            for loc, note in bad.items():
                details[loc] = f"{details[loc]}; {note}" if loc in details else note
    if not sentences:
        return []
    return [Finding("not_text", " ".join(sentences), sorted(details), None, details=details)]


def check_turns(records: list[Record]) -> list[Finding]:
    """missing_system, missing_user, last_turn_not_assistant on readable records."""
    no_system, no_user, bad_last = [], [], []
    for rec in records:
        roles = [m["role"] for m in rec.turns]
        if "system" not in roles:
            no_system.append(rec.location)
        if "user" not in roles:
            no_user.append(rec.location)
        if roles and roles[-1] != "assistant":
            bad_last.append(rec.location)
    findings = []
    if no_system:
        findings.append(Finding(
            "missing_system",
            "No system message, while the model will run with one: it learns behaviour without the "
            "instructions it will see in production.",
            no_system, Fix("set_system_prompt", "Set one system prompt for all records")))
    if no_user:
        findings.append(Finding(
            "missing_user", "No user message: the answer responds to nothing.",
            no_user, drop_fix("missing_user")))
    if bad_last:
        findings.append(Finding(
            "last_turn_not_assistant",
            "The conversation ends on a turn that is not the assistant's: the trailing turns teach nothing.",
            bad_last, drop_fix("last_turn_not_assistant")))
    return findings


def check_system_prompts(records: list[Record]) -> Finding | None:
    """Records whose system prompt differs from the most common one (when there are several)."""
    prompts = {rec.location: next((m["content"] for m in rec.turns if m["role"] == "system"), None)
               for rec in records}
    counts = Counter(p.strip() for p in prompts.values() if p)
    if len(counts) < 2:
        return None
    main, main_count = counts.most_common(1)[0]
    odd = [loc for loc, p in prompts.items() if p and p.strip() != main]
    if main_count < 0.5 * sum(counts.values()) or not odd:
        return None  # no dominant prompt: varied system prompts look intentional
    return Finding(
        "inconsistent_system_prompt",
        f"A different system prompt from the {main_count} records that share the most common one: the "
        "model will see one prompt in production, so train on that one.",
        odd, Fix("set_system_prompt", "Set one system prompt for all records"),
        details={loc: "different system prompt" for loc in odd})


def too_few(good: int) -> Finding:
    return Finding("too_few_examples",
                   f"Only {good} usable examples; training needs at least 10, and under 100 prompt engineering is "
                   "the better tool.", [])


def check_unused_fields(records: list[Record]) -> Finding | None:
    """Fields of the records that no training run uses (they are kept in the dataset, never trained on)."""
    from engine.data.shapes import USED_RECORD_FIELDS  # (the shapes own which fields they keep)

    details: dict[int, str] = {}
    fields: Counter = Counter()
    for rec in records:
        names = list(rec.ignored) + [k for k in rec.extra if k not in USED_RECORD_FIELDS]
        if names:
            details[rec.location] = "not used: " + ", ".join(names[:6])
            fields.update(names)
    if not details:
        return None
    listed = ", ".join(f"{name} ({count})" for name, count in fields.most_common(8))
    return Finding("unused_field", f"Fields that training does not use: {listed}. They stay in the dataset but "
                   "no run learns from them; map them into the conversation if they matter.", sorted(details),
                   None, details=details)


def check_system_role(records: list[Record], tokenizer: str | None) -> Finding | None:
    """With a model's tokenizer folder: its chat template has no system role (Gemma), so the system prompt of these
    records is folded into their first user turn for training and evaluation."""
    from pathlib import Path

    from engine.data.chat_template import ModelTemplate, TemplateError  # (the same stage's template reader)

    folder = Path(tokenizer) if tokenizer else None
    if folder is None or not (folder.is_dir() and (folder / "tokenizer.json").is_file()):
        return None
    try:
        template = ModelTemplate.from_folder(folder)
    except (TemplateError, OSError, ValueError):
        return None
    if template.system_role:
        return None
    where = [r.location for r in records if r.turns and r.turns[0].get("role") == "system"]
    if not where:
        return None
    return Finding("system_folded", "This model's chat template has no system role: the system prompt of these "
                   "records is put at the start of their first user turn in training and evaluation (the model "
                   "learns the instructions as part of the question).", where, None)
