"""The teacher: any OpenAI-compatible chat endpoint (a hosted provider, a local vLLM or llama.cpp server, or the
studio's own `transformers serve`), called through the `openai` client library, whose retries honour Retry-After and
back off on 429, 5xx and timeouts.

The API key is read from the environment (OPENAI_API_KEY, or the variable the settings name) of the process that
runs the job; a key entered on the page reaches the job the same way, in its environment only (engine.jobs.supervisor
.secret_env). It is never written to the database, a log, a config or an error message.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from engine import settings as studio_settings
from engine.errors import StudioError

KEY_ENV = "OPENAI_API_KEY"
PAGE_KEY_ENV = studio_settings.variable("teacher_key")  # where a key entered on the page travels (process environment only)
_KEYLIKE = re.compile(r"(sk|key|token)[-_A-Za-z0-9]{8,}")


class TeacherError(StudioError, RuntimeError):
    """The teacher cannot be used; the message says why (never with the key)."""


class TeacherSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str = Field(..., min_length=8, max_length=500, description="e.g. http://127.0.0.1:8000/v1")
    model: str = Field(..., min_length=1, max_length=200)
    key_env: str = Field(default=KEY_ENV, pattern=r"^[A-Z_][A-Z0-9_]{0,63}$")
    concurrency: int = Field(default=4, ge=1, le=64)
    timeout_s: float = Field(default=60.0, gt=0, le=600)
    max_retries: int = Field(default=4, ge=0, le=10)
    temperature: float = Field(default=0.9, ge=0, le=2)
    max_tokens: int = Field(default=512, ge=16, le=8192)


@dataclass
class Reply:
    texts: list[str]  # one per choice
    tokens: int  # prompt + completion tokens, from the response's usage (0 when the server gives none)
    retries: int


def api_key(teacher: TeacherSettings) -> str:
    """The key from the page (carried in this process's environment) or the named variable; local servers take any
    non-empty key, so a missing one is "none"."""
    from_page = studio_settings.current().teacher_key
    return (from_page.get_secret_value() if from_page else "") or os.environ.get(teacher.key_env) or "none"


def client(settings: TeacherSettings):
    from openai import OpenAI  # only the augmentation job talks to a teacher

    return OpenAI(base_url=settings.base_url, api_key=api_key(settings), timeout=settings.timeout_s,
                  max_retries=settings.max_retries)


def chat(api, settings: TeacherSettings, messages: list[dict], n: int = 1) -> Reply:
    """One chat completion with n choices. Raises TeacherError with one sentence (no key, no traceback)."""
    import openai  # only the augmentation job talks to a teacher

    try:
        raw = api.chat.completions.with_raw_response.create(
            model=settings.model, messages=messages, n=n, temperature=settings.temperature,
            max_tokens=settings.max_tokens)
        completion = raw.parse()
    except openai.APIStatusError as err:
        raise TeacherError(f"The teacher answered HTTP {err.status_code} after {settings.max_retries} retries"
                           f"{_detail(err)}.") from None
    except openai.APITimeoutError:
        raise TeacherError(f"The teacher did not answer within {settings.timeout_s:g} s "
                           f"({settings.max_retries} retries).") from None
    except openai.APIConnectionError:
        raise TeacherError(f"The teacher at {settings.base_url} cannot be reached.") from None
    except (ValueError, TypeError, AttributeError):  # a body that is not a chat completion
        raise TeacherError("The teacher's reply is not a chat completion (malformed JSON).") from None
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list):
        raise TeacherError("The teacher's reply is not a chat completion (no choices).")
    texts = [c.message.content for c in choices if getattr(c, "message", None) is not None
             and isinstance(c.message.content, str)]
    usage = getattr(completion, "usage", None)
    tokens = int(getattr(usage, "total_tokens", 0) or 0) if usage is not None else 0
    return Reply(texts=texts, tokens=tokens, retries=int(getattr(raw, "retries_taken", 0) or 0))


def _detail(err) -> str:
    message = str(getattr(err, "message", "") or "")[:200]
    message = _KEYLIKE.sub("[key]", message)  # a provider may echo a key back in its error
    return f" ({message})" if message else ""
