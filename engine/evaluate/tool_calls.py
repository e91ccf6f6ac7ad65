"""Tool calls scored as structure: a generated answer calls the right tool when it holds a JSON object whose function
name and arguments equal the reference call's (arguments compared as JSON values, so key order and spacing do not
matter). Templates write calls in their own wrappers (`<tool_call>...</tool_call>`, `<|python_tag|>`, a bare JSON
object); any of them is found.

Model output is hostile text: the scan reads at most MAX_CHARS characters and tries at most MAX_STARTS opening
braces, so its cost is bounded whatever the answer holds.
"""

from __future__ import annotations

import json
from typing import Any

MAX_CHARS = 20_000
MAX_STARTS = 32


def reference_call(message: dict) -> dict | None:
    """The first tool call of a reference assistant message as {"name", "arguments"}, or None."""
    calls = message.get("tool_calls")
    if not isinstance(calls, list) or not calls or not isinstance(calls[0], dict):
        return None
    first: dict = calls[0]
    fn: dict = first["function"] if isinstance(first.get("function"), dict) else first
    if not isinstance(fn.get("name"), str):
        return None
    return {"name": fn["name"], "arguments": _arguments(fn.get("arguments", fn.get("parameters", {})))}


def reference_text(message: dict) -> str:
    """What an answer is compared with in text metrics: the content, or the call as canonical JSON."""
    call = reference_call(message)
    if call is not None and not (message.get("content") or "").strip():
        return json.dumps(call, sort_keys=True, ensure_ascii=False)
    return message.get("content") or ""


def _arguments(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def generated_calls(text: str) -> list[dict]:
    """The tool calls found in a generated answer, as {"name", "arguments"}."""
    decoder = json.JSONDecoder()
    text = text[:MAX_CHARS]
    found: list[dict] = []
    start, tries = text.find("{"), 0
    while start != -1 and tries < MAX_STARTS:
        tries += 1
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):  # not JSON here, or nested past the parser's depth
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            found.append({"name": value["name"],
                          "arguments": _arguments(value.get("arguments", value.get("parameters", {})))})
        start = text.find("{", end)
    return found


def call_matches(text: str, reference: dict) -> float:
    """1.0 when the answer's first call has the reference's name and arguments, else 0.0."""
    calls = generated_calls(text)
    return float(bool(calls) and calls[0]["name"] == reference["name"]
                 and calls[0]["arguments"] == reference["arguments"])
