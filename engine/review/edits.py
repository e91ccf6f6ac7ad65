"""A reviewer's edit of a generated record (augmentation campaigns): JSON messages, checked before it is saved."""

from __future__ import annotations

import json

from engine.errors import StudioError


class EditError(StudioError, ValueError):
    """An edited record that cannot be saved (one sentence)."""


def parse_edit(text: str) -> list[dict]:
    """An edited candidate as the review form sends it: JSON messages, each a role and non-empty content."""
    try:
        value = json.loads(text)
    except ValueError:
        raise EditError("The edited record is not valid JSON (a list of {role, content}).") from None
    if not (isinstance(value, list) and value and all(
            isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
            and isinstance(m.get("content"), str) and m["content"].strip() for m in value)):
        raise EditError("The edited record must be a list of messages, each with a role (system, user, "
                        "assistant) and non-empty content.")
    if value[-1]["role"] != "assistant":
        raise EditError("The edited record must end with the assistant's answer.")
    return [{"role": m["role"], "content": m["content"]} for m in value]
