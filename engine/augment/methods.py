"""The three augmentation methods of the guide, as tasks for the teacher: editable prompt templates (string.Template:
$text, $user, $assistant, $topic, $examples, $language, $source_language; a template cannot reach anything else),
the requests each task makes, and strict parsing of the replies (a reply that is not the asked shape is a counted
rejection, never a crash).

- paraphrase, scope "user": n rewordings of the record's last user turn, asked as n choices of one request; the
  answer is kept. Scope "exchange": n rewordings of the last exchange (user turn and answer) as JSON.
- synthetic: new conversations from a topic description and three of the user's records as examples, as JSON.
- backtranslate: the last user turn into another language and back, two requests; the answer is kept.
"""

from __future__ import annotations

import json
import random
import re
import string
from dataclasses import dataclass, field

from engine.data.shapes import Record

METHODS = ("paraphrase", "synthetic", "backtranslate")
TEMPLATES = {
    "paraphrase_user": ("Reword the following request so that it asks for exactly the same thing in different words. "
                        "Keep every name, number and detail. Reply with the reworded request only.\n\nRequest:\n"
                        "$text"),
    "paraphrase_exchange": ("Rewrite this exchange between a user and an assistant in different words, keeping "
                            "every fact, name and number. Reply with JSON only: "
                            '{"user": "...", "assistant": "..."}\n\nUser: $user\n\nAssistant: $assistant'),
    "synthetic": ("Write one new conversation between a user and an assistant about: $topic\nMatch the style, "
                  "length and tone of these examples, but do not copy them:\n\n$examples\n\nReply with JSON only: "
                  '{"user": "...", "assistant": "..."}'),
    "to_language": "Translate this text into $language. Reply with the translation only.\n\n$text",
    "back": "Translate this text into $source_language. Reply with the translation only.\n\n$text",
}
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_QUOTES = "\"'“”‘’«»"


@dataclass
class Task:
    key: str  # what the results file remembers: a resumed job never asks for a done task again
    method: str
    source: int | None  # index into the source records (None: synthetic draws several examples)
    examples: list[int] = field(default_factory=list)


@dataclass
class Outcome:
    candidates: list[list[dict]]  # each a conversation (messages)
    rejected: int = 0  # replies that were not the asked shape
    requests: int = 0
    tokens: int = 0
    retries: int = 0


def fill(template: str, **values: str) -> str:
    return string.Template(template).safe_substitute(**values)


def last_user(rec: Record) -> int | None:
    return next((i for i in range(len(rec.turns) - 1, -1, -1) if rec.turns[i]["role"] == "user"), None)


def tasks(method: str, sources: list[Record], per_record: int, count: int, seed: int) -> list[Task]:
    if method == "synthetic":
        rng = random.Random(seed)
        pool = [i for i, r in enumerate(sources) if last_user(r) is not None]
        return [Task(f"synthetic:{k}", method, None, rng.sample(pool, min(3, len(pool)))) for k in range(count)]
    return [Task(f"{method}:{i}", method, i) for i, r in enumerate(sources) if last_user(r) is not None]


def run_task(task: Task, sources: list[Record], options, ask) -> Outcome:
    """ask(messages, n) -> teacher.Reply. options: the job's AugmentOptions (templates, n, language...)."""
    if task.source is None:
        return _synthetic([sources[i] for i in task.examples], options, ask)
    if task.method == "paraphrase":
        return _paraphrase(sources[task.source], options, ask)
    return _backtranslate(sources[task.source], options, ask)


def _ask(out: Outcome, ask, prompt: str, n: int = 1) -> list[str]:
    reply = ask([{"role": "user", "content": prompt}], n)
    out.requests += 1
    out.tokens += reply.tokens
    out.retries += reply.retries
    return reply.texts


def _paraphrase(rec: Record, options, ask) -> Outcome:
    out = Outcome([])
    u = last_user(rec)
    assert u is not None  # tasks() keeps records with a user turn
    exchange = options.scope == "exchange" and u + 1 < len(rec.turns)
    if exchange:
        prompt = fill(options.templates["paraphrase_exchange"], user=rec.turns[u]["content"],
                      assistant=rec.turns[u + 1]["content"])
    else:
        prompt = fill(options.templates["paraphrase_user"], text=rec.turns[u]["content"])
    texts = _ask(out, ask, prompt, options.per_record)
    for text in texts[:options.per_record]:
        turns = [dict(m) for m in rec.turns]
        if exchange:
            pair = parse_pair(text)
            if pair is None:
                out.rejected += 1
                continue
            turns[u]["content"], turns[u + 1]["content"] = pair
            turns = turns[:u + 2]
        else:
            reworded = clean(text)
            if not reworded:
                out.rejected += 1
                continue
            turns[u]["content"] = reworded
        out.candidates.append(turns)
    return out


def _backtranslate(rec: Record, options, ask) -> Outcome:
    out = Outcome([])
    u = last_user(rec)
    assert u is not None
    there = clean(next(iter(_ask(out, ask, fill(options.templates["to_language"], text=rec.turns[u]["content"],
                                                   language=options.language))), ""))
    if not there:
        out.rejected += 1
        return out
    back = clean(next(iter(_ask(out, ask, fill(options.templates["back"], text=there,
                                                source_language=options.source_language))), ""))
    if not back:
        out.rejected += 1
        return out
    turns = [dict(m) for m in rec.turns]
    turns[u]["content"] = back
    out.candidates.append(turns)
    return out


def _synthetic(examples: list[Record], options, ask) -> Outcome:
    out = Outcome([])
    shown = "\n\n".join(f"User: {r.turns[last_user(r) or 0]['content']}\nAssistant: {_answer_after(r)}"
                        for r in examples)
    text = next(iter(_ask(out, ask, fill(options.templates["synthetic"], topic=options.topic, examples=shown))), "")
    pair = parse_pair(text)
    if pair is None:
        out.rejected += 1
        return out
    system = [m for m in examples[0].turns if m["role"] == "system"][:1] if examples else []
    out.candidates.append([*(dict(m) for m in system), {"role": "user", "content": pair[0]},
                           {"role": "assistant", "content": pair[1]}])
    return out


def _answer_after(rec: Record) -> str:
    u = last_user(rec)
    return next((m["content"] for m in rec.turns[(u or 0) + 1:] if m["role"] == "assistant"), "")


def clean(text: str | None) -> str:
    """The reply itself: no code fence, no stray surrounding quotes, no blank edges."""
    text = _FENCE.sub("", (text or "").strip()).strip()
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text


def parse_pair(text: str | None) -> tuple[str, str] | None:
    """(user, assistant) from a reply that must be exactly {"user": str, "assistant": str} (a code fence allowed)."""
    try:
        value = json.loads(_FENCE.sub("", (text or "").strip()))
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    user, assistant = value.get("user"), value.get("assistant")
    if not (isinstance(user, str) and isinstance(assistant, str) and user.strip() and assistant.strip()):
        return None
    return user.strip(), assistant.strip()
