"""Record shapes and their normalization to chat messages.

Every supported shape becomes a list of `{"role", "content", ...}` messages with roles system / user / assistant /
tool. What the source carries beyond that is kept: OpenAI `name`, `weight`, `tool_calls` and `tool_call_id` on the
message; ShareGPT `tools` and preference `rejected` answers in the record's `extra`. Problems inside a record
(a bad role, a missing content) are collected, not raised, so the quality report can list them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")

SHAPES = {
    "openai": "OpenAI chat (messages)",
    "sharegpt": "ShareGPT (conversations)",
    "sharegpt_preference": "ShareGPT preference (conversations + chosen + rejected)",
    "preference": "Preference (prompt + chosen + rejected)",
    "openai_preference": "OpenAI preference (input + preferred_output + non_preferred_output)",
    "feedback": "Unpaired feedback (prompt + completion + label true/false)",
    "alpaca": "Alpaca (instruction / input / output)",
    "prompt_completion": "prompt / completion",
    "input_output": "input / output",
    "columns": "mapped columns",
}
MAPPABLE = ("prompt", "completion", "system")
# Column names people use, in the order they are preferred (case and separators ignored).
COLUMN_NAMES = {
    "prompt": ("question", "instruction", "input", "prompt", "query", "text"),
    "completion": ("answer", "output", "response", "completion", "target"),
    "system": ("system", "context"),
}

_OPENAI_ROLE_ALIASES = {"developer": "system", "function": "tool"}
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
                   "function_call": "assistant", "observation": "tool", "tool": "tool", "function": "tool"}
_MESSAGE_KEPT = ("name", "weight", "tool_calls", "tool_call_id", "reasoning_content")
_MESSAGE_FIELDS = ("role", "content", *_MESSAGE_KEPT)
# Record fields a run or a check uses beyond the conversation: tools (rendered by the template), rejected
# (preference training), rank (the best branch of a conversation tree), tests (code evaluation).
# provenance: where a built preference pair came from (engine.review.preferences); label: whether a feedback
# record's answer was good (KTO).
USED_RECORD_FIELDS = ("tools", "rejected", "rank", "tests", "provenance", "label")


@dataclass(slots=True)
class Record:
    location: int
    messages: list[dict] | None = None
    extra: dict = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (error code, sentence)
    where: str = "Record"  # how the user's file counts records: Line (JSONL), Record (JSON), Row (CSV/Parquet)
    ignored: list[str] = field(default_factory=list)  # message fields dropped in normalization ("message.audio")

    @property
    def turns(self) -> list[dict]:
        """The messages, or none when the record could not be read (messages is None)."""
        return self.messages or []


def shape_of(value: Any) -> str | None:
    """The shape one record looks like, or None."""
    if not isinstance(value, dict):
        return None
    keys = value.keys()
    if "messages" in keys:
        return "openai"
    if "preferred_output" in keys and "non_preferred_output" in keys:
        return "openai_preference"
    if "conversations" in keys:
        return "sharegpt_preference" if "chosen" in keys and "rejected" in keys else "sharegpt"
    if "chosen" in keys and "rejected" in keys:
        return "preference"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if "prompt" in keys and "completion" in keys:
        # KTO's unpaired shape only with a true/false label: a "label" column of categories is a mapped column
        return "feedback" if isinstance(value.get("label"), bool) else "prompt_completion"
    if "input" in keys and "output" in keys:
        return "input_output"
    return None


def _folded(name: str) -> str:
    return "".join(c for c in str(name).casefold() if c.isalnum())


def propose_mapping(columns: list[str]) -> dict[str, str] | None:
    """A mapping chosen by the columns' names (question/answer, instruction/response, query/target, ...), or None
    when no prompt and answer pair can be told by name. Never a guess by position."""
    by_name = {_folded(c): c for c in reversed(columns)}  # the first column of a folded name wins
    mapping: dict[str, str] = {}
    for key in ("completion", "prompt", "system"):
        for name in COLUMN_NAMES[key]:
            column = by_name.get(name)
            if column is not None and column not in mapping.values():
                mapping[key] = column
                break
    if "prompt" not in mapping or "completion" not in mapping:
        return None
    return {key: mapping[key] for key in MAPPABLE if key in mapping}


def suggest_column(columns: list[str], key: str) -> str | None:
    """The column a widget should preselect for one part of the mapping (by name), or None."""
    by_name = {_folded(c): c for c in reversed(columns)}
    return next((by_name[n] for n in COLUMN_NAMES[key] if n in by_name), None)


def detect_shape(sample: list[Any]) -> str | None:
    """The most common shape among the sampled records."""
    counts: dict[str, int] = {}
    for value in sample:
        shape = shape_of(value)
        if shape:
            counts[shape] = counts.get(shape, 0) + 1
    return max(counts, key=lambda shape: counts[shape]) if counts else None


def normalize(value: Any, location: int, shape: str, mapping: dict[str, str] | None = None,
              where: str = "Record") -> Record:
    rec = Record(location, where=where)
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
        rec.problems.append(("not_an_object", f"{where} {location} is {kind}, not an object."))
        return rec
    if shape != "columns":
        own = shape_of(value)
        if own != shape and (shape, own) not in (("sharegpt", "sharegpt_preference"), ("prompt_completion", "feedback")):
            if own is None:
                keys = ", ".join(list(value)[:6]) or "no keys"
                msg = f"{where} {location} has no conversation in the {SHAPES[shape]} shape (keys: {keys})."
            else:
                msg = f"{where} {location} is in the {SHAPES[own]} shape but the file is {SHAPES[shape]}."
            rec.problems.append(("no_messages", msg))
            return rec
    _NORMALIZERS[shape](value, rec, mapping or {})
    if rec.messages is not None and not rec.messages and not any(c == "no_messages" for c, _ in rec.problems):
        rec.problems.append(("no_messages", f"{where} {location} has an empty conversation."))
    return rec


def _text(value: Any) -> str | None:
    """Message content as text: strings as they are, OpenAI content parts joined, anything else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        texts = [p.get("text") for p in value if p.get("type") in ("text", "input_text", None)]
        if texts and all(isinstance(t, str) for t in texts):
            return "\n".join(texts)
    return None


def _add(rec: Record, role: Any, content: Any, raw_role: Any = None, **kept: Any) -> None:
    """Append one message, recording a bad role or a missing content as a problem of the record."""
    if rec.messages is None:
        rec.messages = []
    n = len(rec.messages) + 1
    text = _text(content)
    if role not in ROLES:
        shown = raw_role if raw_role is not None else role
        what = "has no role" if shown is None else f"has the unknown role {str(shown)[:40]!r}"
        rec.problems.append(("bad_role", f"{rec.where} {rec.location}, message {n} {what}."))
    if (text is None or not text.strip()) and not kept.get("tool_calls"):
        rec.problems.append(("missing_content", f"{rec.where} {rec.location}, message {n} has no text content."))
    message = {"role": role if role in ROLES else str(raw_role if raw_role is not None else role),
               "content": text if text is not None else ""}
    message.update({k: v for k, v in kept.items() if v is not None})
    rec.messages.append(message)


def _openai(value: dict, rec: Record, mapping: dict) -> None:
    messages = value.get("messages")
    if not isinstance(messages, list) or not messages:
        rec.problems.append(("no_messages", f"{rec.where} {rec.location} has no messages list, or it is empty."))
        return
    rec.messages = []
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, dict):
            rec.problems.append(("not_an_object", f"{rec.where} {rec.location}, message {i} is not an object."))
            continue
        raw = m.get("role")
        role = _OPENAI_ROLE_ALIASES.get(raw, raw) if isinstance(raw, str) else raw
        _add(rec, role, m.get("content"), raw_role=raw, **{k: m.get(k) for k in _MESSAGE_KEPT})
        rec.ignored += [f"message.{k}" for k in m if k not in _MESSAGE_FIELDS and f"message.{k}" not in rec.ignored]
    rec.extra = {k: v for k, v in value.items() if k != "messages"}


def _sharegpt(value: dict, rec: Record, mapping: dict) -> None:
    turns = value.get("conversations")
    if not isinstance(turns, list) or not turns:
        rec.problems.append(("no_messages", f"{rec.where} {rec.location} has no conversations list, or it is empty."))
        return
    rec.messages = []
    if isinstance(value.get("system"), str) and value["system"].strip():
        _add(rec, "system", value["system"])
    for i, t in enumerate(turns, start=1):
        if not isinstance(t, dict):
            rec.problems.append(("not_an_object", f"{rec.where} {rec.location}, turn {i} is not an object."))
            continue
        raw = t.get("from", t.get("role"))
        content = t.get("value", t.get("content"))
        if raw == "function_call":
            calls = _function_call(content)
            if calls:  # a structured call renders through the model's tool support, never as an empty answer
                _add(rec, "assistant", "", raw_role=raw, tool_calls=calls)
            else:
                _add(rec, "assistant", content, raw_role=raw)
        else:
            _add(rec, _SHAREGPT_ROLES.get(raw) if isinstance(raw, str) else None, content, raw_role=raw)
    rec.extra = {k: v for k, v in value.items() if k not in ("conversations", "system", "chosen", "rejected")}


def _function_call(value: Any) -> list[dict] | None:
    """ShareGPT's function_call turn (`{"name", "arguments"}` as JSON text, or a list of them) as OpenAI tool_calls;
    None when it is not one."""
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return None
    calls = parsed if isinstance(parsed, list) else [parsed]
    out = []
    for call in calls:
        if not (isinstance(call, dict) and isinstance(call.get("name"), str)):
            return None
        arguments = call.get("arguments", call.get("parameters", {}))
        out.append({"type": "function", "function": {"name": call["name"], "arguments": arguments}})
    return out or None


def _answer_text(value: Any) -> Any:
    """A preference answer: a ShareGPT turn, an OpenAI message, a list of messages (the last one), or text."""
    if isinstance(value, list) and value:
        value = value[-1]
    if isinstance(value, dict):
        return value.get("value", value.get("content"))
    return value


def _sharegpt_preference(value: dict, rec: Record, mapping: dict) -> None:
    _sharegpt(value, rec, mapping)
    if rec.messages is None:
        return
    _add(rec, "assistant", _answer_text(value.get("chosen")))
    rec.extra["rejected"] = _answer_text(value.get("rejected"))


def _preference(value: dict, rec: Record, mapping: dict) -> None:
    rec.messages = []
    prompt = value.get("prompt")
    if isinstance(prompt, list):
        _openai({"messages": prompt}, rec, mapping)
    else:
        _add(rec, "user", prompt)
    if rec.messages is None:
        return
    _add(rec, "assistant", _answer_text(value.get("chosen")))
    rec.extra = {**{k: v for k, v in value.items() if k not in ("prompt", "chosen", "rejected")},
                 "rejected": _answer_text(value.get("rejected"))}


def _openai_preference(value: dict, rec: Record, mapping: dict) -> None:
    """OpenAI's DPO fine-tuning format: {"input": {"messages": [...], "tools": ...}, "preferred_output": [message],
    "non_preferred_output": [message]}."""
    given = value.get("input")
    _openai(given if isinstance(given, dict) else {"messages": given}, rec, mapping)
    if rec.messages is None:
        return
    _add(rec, "assistant", _answer_text(value.get("preferred_output")))
    rec.extra = {**rec.extra, **{k: v for k, v in value.items()
                                 if k not in ("input", "preferred_output", "non_preferred_output")},
                 "rejected": _answer_text(value.get("non_preferred_output"))}


def _alpaca(value: dict, rec: Record, mapping: dict) -> None:
    rec.messages = []
    if isinstance(value.get("system"), str) and value["system"].strip():
        _add(rec, "system", value["system"])
    history = value.get("history") or []
    if isinstance(history, list):
        for pair in history:
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                _add(rec, "user", pair[0])
                _add(rec, "assistant", pair[1])
    instruction, extra_input = value.get("instruction"), value.get("input")
    if isinstance(instruction, str) and isinstance(extra_input, str) and extra_input.strip():
        instruction = f"{instruction}\n\n{extra_input}"
    _add(rec, "user", instruction)
    _add(rec, "assistant", value.get("output"))


def _prompt_completion(value: dict, rec: Record, mapping: dict) -> None:
    rec.messages = []
    for key, role in (("prompt", "user"), ("completion", "assistant")):
        part = value.get(key)
        if isinstance(part, list) and part and all(isinstance(m, dict) for m in part):
            for m in part:
                _add(rec, _OPENAI_ROLE_ALIASES.get(m.get("role"), m.get("role")), m.get("content"),
                     raw_role=m.get("role"))
        else:
            _add(rec, role, part)


def _feedback(value: dict, rec: Record, mapping: dict) -> None:
    """KTO's unpaired shape: one answer and whether it was good (label true) or bad (label false)."""
    _prompt_completion(value, rec, mapping)
    rec.extra = {k: v for k, v in value.items() if k not in ("prompt", "completion")}


def _input_output(value: dict, rec: Record, mapping: dict) -> None:
    rec.messages = []
    _add(rec, "user", value.get("input"))
    _add(rec, "assistant", value.get("output"))


def _scalar_text(value: Any) -> Any:
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _columns(value: dict, rec: Record, mapping: dict) -> None:
    rec.messages = []
    system = mapping.get("system")
    if system and isinstance(value.get(system), str) and value[system].strip():
        _add(rec, "system", value[system])
    _add(rec, "user", _scalar_text(value.get(mapping["prompt"])))
    _add(rec, "assistant", _scalar_text(value.get(mapping["completion"])))
    used = set(mapping.values())
    rec.extra = {k: v for k, v in value.items() if k not in used}


_NORMALIZERS = {
    "openai": _openai, "sharegpt": _sharegpt, "sharegpt_preference": _sharegpt_preference,
    "preference": _preference, "openai_preference": _openai_preference, "alpaca": _alpaca, "prompt_completion": _prompt_completion,
    "feedback": _feedback, "input_output": _input_output, "columns": _columns,
}
