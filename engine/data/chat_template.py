"""A model's chat template as the studio uses it: render conversations exactly as transformers does (its sandboxed
Jinja renderer, so an untrusted template from a hub runs in the same sandbox), and learn once what the template can
do: take a system role, render tools and tool calls, render a message's `name`, and which token ends a turn.

Works from a model folder with the `tokenizers` library alone (no torch): the quality report, the launch's checks,
the trainer and the evaluation share it. A model without a chat template (a base model) gets DEFAULT_TEMPLATE.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.data import template_limits
from engine.data.template_limits import TemplateRefused
from engine.errors import StudioError

# For models that bring no template (base models): plain headers a base model can learn, ending each answer with the
# model's own end-of-sequence token so that generation learns to stop. Documented in the README.
DEFAULT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '### System:\n' + message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '### User:\n' + message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'tool' %}{{ '### Tool result:\n' + message['content'] + '\n\n' }}"
    "{% else %}{{ '### Assistant:\n' + message['content'] + eos_token + '\n\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '### Assistant:\n' }}{% endif %}"
)
_PROBE = "Zq7probe answer"
_PROBE_TOOL = "zq7_probe_tool"
_PROBE_CALL = "zq7_probe_call"
_PROBE_NAME = "Zq7Name"
_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")


class TemplateError(StudioError):
    """A conversation cannot be rendered with the model's template; the message says which and why."""


def _token_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def read_template_files(folder: Path) -> tuple[str | None, dict[str, str]]:
    """(chat template, special token strings) from a tokenizer folder's files."""
    template = None
    jinja = folder / "chat_template.jinja"
    config: dict = {}
    cfg_file = folder / "tokenizer_config.json"
    if cfg_file.is_file():
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    if jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    elif isinstance(config.get("chat_template"), str):
        template = config["chat_template"]
    elif isinstance(config.get("chat_template"), list):  # named templates: the default one
        template = next((t.get("template") for t in config["chat_template"] if t.get("name") == "default"), None)
    specials = {}
    map_file = folder / "special_tokens_map.json"
    sources = [json.loads(map_file.read_text(encoding="utf-8"))] if map_file.is_file() else []
    for source in [*sources, config]:
        for key in _SPECIAL_KEYS:
            text = _token_text(source.get(key))
            if text is not None:
                specials[key] = text
    return template, specials


@lru_cache(maxsize=32)
def _compiled(template: str):
    """The template compiled in Jinja's immutable sandbox, with what transformers' apply_chat_template gives
    templates (its tojson that does not escape HTML, raise_exception, strftime_now, loop controls, a pass-through
    `{% generation %}` block, namespaces that refuse underscore attributes). Kept here rather than imported from
    transformers so that pages and the quality report render templates without loading transformers; the template
    tests check that the tokens equal transformers' own apply_chat_template."""
    import jinja2  # only rendering a chat template needs it
    from jinja2.ext import Extension, loopcontrols  # (same)
    from jinja2.sandbox import ImmutableSandboxedEnvironment  # (same)

    class Generation(Extension):
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.Scope(body, lineno=lineno)

    class Namespace(jinja2.utils.Namespace):
        def __init__(*args, **kwargs):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            if any(isinstance(k, str) and k.startswith("_") for k in attrs):
                raise jinja2.exceptions.SecurityError("templates cannot store underscore attributes")
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError("templates cannot store underscore attributes")
            template_limits.check_value(value)  # a namespace is where a value can grow from one loop step to the next
            jinja2.utils.Namespace.__setitem__(self, name, value)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    class Limited(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "+"})

        def call_binop(self, context, operator, left, right):
            return template_limits.safe_binop(left, operator, right)

    env = Limited(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals.update(raise_exception=raise_exception, namespace=Namespace,
                       strftime_now=lambda fmt: datetime.now().strftime(fmt))
    env.globals[template_limits.BUDGET_NAME] = template_limits.budgeted
    return env.from_string(template_limits.wrap_loops(env, template))


def render(template: str, messages: list[dict], tools: list[dict] | None = None, add_generation_prompt=False,
           specials: dict[str, str] | None = None) -> str:
    """The text transformers' apply_chat_template would produce for these messages. TemplateRefused (not a
    TemplateError: it refuses the template, not one conversation) when the template goes over its limits."""
    try:
        return template_limits.render(_compiled(template), messages=messages, tools=tools or None,
                                      add_generation_prompt=add_generation_prompt, **(specials or {}))
    except TemplateRefused:
        raise
    except RecursionError:
        raise TemplateRefused("The chat template calls itself without end; the studio refuses it.") from None
    except Exception as err:  # noqa: BLE001 - a template's own raise_exception, or any Jinja error
        raise TemplateError(str(err).splitlines()[0][:200] if str(err) else type(err).__name__) from None


@dataclass
class ModelTemplate:
    """A tokenizer (the `tokenizers` library's) with the chat template the studio renders with, and what the
    template can do."""

    tokenizer: Any
    template: str
    specials: dict[str, str]
    source: str  # "model" or "default" (the model brought none)
    special_strings: list[str] = field(default_factory=list)
    system_role: bool = True
    end_of_turn: str = ""
    renders_tools: bool = False
    renders_name: bool = False

    @classmethod
    def from_folder(cls, folder: Path | str) -> ModelTemplate:
        from tokenizers import Tokenizer  # light: no torch

        folder = Path(folder)
        file = folder / "tokenizer.json"
        if not file.is_file():
            raise TemplateError(f"No tokenizer.json in {folder}.")
        template, specials = read_template_files(folder)
        return cls.build(Tokenizer.from_file(str(file)), template, specials)

    @classmethod
    def from_transformers(cls, tokenizer) -> ModelTemplate:
        """From a loaded transformers tokenizer (the trainer and the evaluation have one)."""
        specials = {key: getattr(tokenizer, key) for key in _SPECIAL_KEYS if isinstance(getattr(tokenizer, key,
                                                                                                  None), str)}
        return cls.build(tokenizer.backend_tokenizer, tokenizer.chat_template, specials)

    @classmethod
    def build(cls, tokenizer, template: str | None, specials: dict[str, str]) -> ModelTemplate:
        added = tokenizer.get_added_tokens_decoder()
        strings = sorted({t.content for t in added.values() if t.special} | set(specials.values()), key=len,
                         reverse=True)
        specials = {k: v for k, v in specials.items()}
        specials.setdefault("eos_token", "")
        specials.setdefault("bos_token", "")
        made = cls(tokenizer, template or DEFAULT_TEMPLATE, specials, "model" if template else "default", strings)
        made._inspect()
        return made

    def render(self, messages: list[dict], tools: list[dict] | None = None, add_generation_prompt=False) -> str:
        return render(self.template, messages, tools, add_generation_prompt, self.specials)

    def _inspect(self) -> None:
        """Probe the template once with marker strings: what it renders, and how an assistant turn ends."""
        user = {"role": "user", "content": "Hi"}
        try:
            self.render([{"role": "system", "content": "S"}, user, {"role": "assistant", "content": "A"}])
        except TemplateError:
            self.system_role = False
        prompt = self.render([user], add_generation_prompt=True)
        full = self.render([user, {"role": "assistant", "content": _PROBE}])
        after = full[len(prompt):] if full.startswith(prompt) else full
        tail = after[after.find(_PROBE) + len(_PROBE):] if _PROBE in after else ""
        found = [(tail.find(s), s) for s in self.special_strings if s and s in tail]
        self.end_of_turn = min(found)[1] if found else tail.strip()
        try:
            text = self.render([{"role": "user", "content": "Hi", "name": _PROBE_NAME}])
            self.renders_name = _PROBE_NAME in text
        except TemplateError:
            self.renders_name = False
        tools = [{"type": "function", "function": {"name": _PROBE_TOOL, "description": "probe",
                                                   "parameters": {"type": "object", "properties": {}}}}]
        call = {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": _PROBE_CALL, "arguments": {"x": 1}}}]}
        try:
            text = self.render([user, call], tools=tools)
            self.renders_tools = _PROBE_TOOL in text and _PROBE_CALL in text
        except TemplateError:
            self.renders_tools = False

    def describe(self) -> dict:
        return {"source": self.source, "system_role": self.system_role, "end_of_turn": self.end_of_turn,
                "renders_tools": self.renders_tools, "renders_name": self.renders_name}


def tool_arguments(value: Any) -> Any:
    """Tool-call arguments as templates expect them (a mapping); OpenAI's JSON string is parsed when it holds one."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if isinstance(parsed, dict) else value
    return value


def tool_calls_for_template(calls: Any) -> list[dict]:
    out = []
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, dict):
            continue
        fn: dict = call["function"] if isinstance(call.get("function"), dict) else call
        entry = {"type": "function", "function": {"name": fn.get("name"), "arguments": tool_arguments(
            fn.get("arguments", fn.get("parameters", {})))}}
        if call.get("id"):
            entry["id"] = call["id"]
        out.append(entry)
    return out


def record_tools(extra: dict | None) -> list[dict] | None:
    """A record's `tools` list (OpenAI's list, or ShareGPT's JSON string of one) in the OpenAI function shape; None
    when the record has none."""
    tools = (extra or {}).get("tools")
    if isinstance(tools, str):
        try:
            tools = json.loads(tools) if tools.strip() else None
        except ValueError:
            return None
    if not isinstance(tools, list) or not tools:
        return None
    return [t if isinstance(t, dict) and t.get("type") == "function" and "function" in t
            else {"type": "function", "function": t} for t in tools if isinstance(t, dict)]


def template_messages(messages: list[dict], template: ModelTemplate) -> list[dict]:
    """Messages as the template takes them: tool calls in the function shape, `name` where it renders, `weight`
    left out (it steers the loss, not the text), and a system message folded into the first user turn where the
    template has no system role."""
    out = []
    for m in messages:
        msg: dict = {"role": m["role"], "content": m.get("content") or ""}
        if m.get("tool_calls"):
            msg["tool_calls"] = tool_calls_for_template(m["tool_calls"])
        if m.get("tool_call_id"):
            msg["tool_call_id"] = m["tool_call_id"]
        if m.get("reasoning_content"):  # reasoning models' templates render it (or drop it in earlier turns)
            msg["reasoning_content"] = msg["thinking"] = m["reasoning_content"]  # (gpt-oss reads "thinking")
        if m.get("name") and template.renders_name:
            msg["name"] = m["name"]
        out.append(msg)
    if not template.system_role and out and out[0]["role"] == "system":
        system = out.pop(0)["content"]
        first_user = next((m for m in out if m["role"] == "user"), None)
        if first_user is not None:
            first_user["content"] = f"{system}\n\n{first_user['content']}" if system else first_user["content"]
    return out


def uses_tools(messages: list[dict], extra: dict | None) -> bool:
    return bool(record_tools(extra)) or any(m.get("tool_calls") or m.get("role") == "tool" for m in messages)
