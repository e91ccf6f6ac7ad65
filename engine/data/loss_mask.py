"""Which tokens of a conversation carry the loss, for any chat template.

TRL's assistant-only loss needs `{% generation %}` markers in the template, and only patches the families it ships;
most templates people bring have none. The studio finds the assistant spans itself, from the model's own template:

1. Render the whole conversation, and for each assistant turn the conversation before it with the generation prompt
   and the conversation through it. What the turn adds after the generation prompt, up to and including the
   template's end-of-turn token, is the turn's span (its content, tool calls and reasoning as the template renders
   them, then the end-of-turn token, so the model learns to stop).
2. If the whole rendering starts with every turn's prompt followed by its span (the template is prefix-preserving),
   the conversation is one example: tokenized once, with the spans' tokens marked.
3. Otherwise (a template that drops earlier reasoning, say) each assistant turn becomes its own prompt-completion
   example: its prompt exactly as the model will see it at inference, the loss on its span.

A turn with `weight: 0` (OpenAI's format) stays as context and carries no loss. `all_tokens=True` is the explicit
choice of loss on every token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.data.chat_template import ModelTemplate, TemplateError, template_messages

METHODS = {
    "assistant_mask": "answer-only loss: the assistant spans of the model's own template, one example per conversation",
    "per_turn": "answer-only loss, one prompt-completion example per assistant turn (the template is not "
                "prefix-preserving)",
    "all_tokens": "loss on every token (answer-only loss turned off)",
}


@dataclass
class Encoded:
    input_ids: list[int]
    assistant_masks: list[int]


@dataclass
class EncodedRecord:
    examples: list[Encoded] = field(default_factory=list)
    method: str = "assistant_mask"
    trainable_turns: int = 0


def trainable(message: dict) -> bool:
    """An assistant turn that carries loss (OpenAI's `weight: 0` turns it off)."""
    weight = message.get("weight")
    return message.get("role") == "assistant" and not (isinstance(weight, (int, float)) and weight == 0)


def _span_end(template: ModelTemplate, rest: str) -> int:
    eot = template.end_of_turn
    if eot and eot in rest:
        return rest.rfind(eot) + len(eot)
    return len(rest.rstrip())


def turn_span(template: ModelTemplate, messages: list[dict], i: int, tools: list[dict] | None) -> tuple[str, str]:
    """(the prompt before assistant turn i with the generation prompt, the turn's span) as rendered."""
    prompt = template.render(messages[:i], tools, add_generation_prompt=True)
    through = template.render(messages[:i + 1], tools)
    if not through.startswith(prompt):
        # the generation prompt is not how the template opens an assistant turn: fall back to the common prefix
        common = 0
        for a, b in zip(prompt, through):
            if a != b:
                break
            common += 1
        prompt = through[:common]
    rest = through[len(prompt):]
    return prompt, rest[:_span_end(template, rest)]


def _mask(template: ModelTemplate, text: str, spans: list[tuple[int, int]]) -> Encoded:
    enc = template.tokenizer.encode(text, add_special_tokens=False)
    mask = []
    s = 0
    for start, _end in enc.offsets:
        while s < len(spans) and start >= spans[s][1]:
            s += 1
        mask.append(int(s < len(spans) and spans[s][0] <= start < spans[s][1]))
    return Encoded(list(enc.ids), mask)


def encode_conversation(template: ModelTemplate, messages: list[dict], tools: list[dict] | None = None,
                        all_tokens: bool = False) -> EncodedRecord:
    """The training examples of one conversation (normalized messages) under the model's template."""
    msgs = template_messages(messages, template)
    # folding a system message shifts indices by one; weights are read from the original assistant turns
    assistants = [m for m in messages if m.get("role") == "assistant"]
    turns = [i for i, m in enumerate(msgs) if m["role"] == "assistant"]
    wanted = [i for i, m in zip(turns, assistants) if trainable(m)]
    whole = template.render(msgs, tools)
    if all_tokens:
        enc = template.tokenizer.encode(whole, add_special_tokens=False)
        return EncodedRecord([Encoded(list(enc.ids), [1] * len(enc.ids))], "all_tokens", len(wanted))
    pieces = [turn_span(template, msgs, i, tools) for i in wanted]
    spans, preserving = [], True
    for prompt, span in pieces:
        start = len(prompt)
        if not (whole.startswith(prompt) and whole.startswith(span, start)):
            preserving = False
            break
        spans.append((start, start + len(span)))
    if preserving:
        examples = [_mask(template, whole, spans)] if spans else []
        return EncodedRecord(examples, "assistant_mask", len(wanted))
    examples = [_mask(template, prompt + span, [(len(prompt), len(prompt) + len(span))]) for prompt, span in pieces]
    return EncodedRecord(examples, "per_turn", len(wanted))


def loss_text(template: ModelTemplate, example: Encoded) -> list[str]:
    """The decoded runs of loss-carrying tokens (what the model is taught to write), for tests and the run log."""
    runs: list[list[int]] = []
    previous = 0
    for token, bit in zip(example.input_ids, example.assistant_masks):
        if bit and not previous:
            runs.append([])
        if bit:
            runs[-1].append(token)
        previous = bit
    return [template.tokenizer.decode(run, skip_special_tokens=False) for run in runs]


def check_renders(template: ModelTemplate, messages: list[dict], tools: list[dict] | None) -> str | None:
    """Why this conversation cannot be trained with this template, or None."""
    try:
        template.render(template_messages(messages, template), tools)
    except TemplateError as err:
        return f"the chat template refuses it ({err})"
    return None
