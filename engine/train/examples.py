"""A run's examples: the training (and mix-in) and validation records read from the split, refused when they hold a
locked test record, then tokenized under the model's own chat template with the answer-only loss mask
(engine.data.loss_mask), every field of the chat format used or refused: `weight: 0` turns carry no loss,
`tool_calls`, `tool` messages and `tools` render through the template's tool support, `name` where the template
renders it.

The trainer hands TRL pre-tokenized `input_ids` and `assistant_masks`; TRL builds the labels from the mask, truncates
to max_length and batches as usual.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from engine.data import split
from engine.data.chat_template import ModelTemplate, record_tools, uses_tools
from engine.data.loading import load_records
from engine.data.loss_mask import METHODS, check_renders, encode_conversation
from engine.data.quality import usable
from engine.data.readers import InputError
from engine.data.test_lock import project_of
from engine.jobs.failures import DataError
from engine.train.config import RunConfig

# Message and record keys the studio uses; anything else in a record is a field the run does not train on.
MESSAGE_KEYS = {"role", "content", "weight", "tool_calls", "tool_call_id", "name", "reasoning_content"}
RECORD_KEYS = {"messages", "tools"}


@dataclass
class Row:
    location: int
    messages: list[dict]
    tools: list[dict] | None


def load_rows(path: str, purpose: str, project_id: int | None = None) -> list[Row]:
    """The usable records of a file, refusing any record of a locked test split."""
    try:
        records = usable(load_records(Path(path)).records)
    except InputError as err:
        raise DataError(str(err)) from None
    if not records:
        raise DataError(f"{path} has no usable examples.")
    try:
        split.refuse_locked(records, purpose, project_id)
    except split.LockedTestError as err:
        raise DataError(str(err)) from None
    return [Row(r.location, list(r.messages or []), record_tools(r.extra)) for r in records]


def training_rows(config: RunConfig) -> list[Row]:
    project_id = project_of(config.dataset_version_id)
    rows = load_rows(config.train_file, "training", project_id)
    if config.mix_file and config.mix_share > 0:
        general = load_rows(config.mix_file, "training", project_id)
        want = round(len(rows) * config.mix_share / (1 - config.mix_share))
        rng = random.Random(config.seed)
        rows += rng.sample(general, min(want, len(general)))
    return rows


def validation_rows(config: RunConfig) -> list[Row] | None:
    if not config.eval_file:
        return None
    return load_rows(config.eval_file, "early stopping and model selection", project_of(config.dataset_version_id))


def _named(locations: list[int], what: str = "record") -> str:
    shown = ", ".join(str(n) for n in locations[:10])
    more = f" and {len(locations) - 10} more" if len(locations) > 10 else ""
    return f"{what}{'s' if len(locations) > 1 else ''} {shown}{more}"


def refusals(template: ModelTemplate, rows: list[Row], label: str) -> list[str]:
    """Why these records cannot train with this template: tool data for a template without tool support, records
    the template refuses to render. Each problem names its records."""
    problems = []
    if not template.renders_tools:
        tooled = [r.location for r in rows if uses_tools(r.messages, {"tools": r.tools} if r.tools else None)]
        if tooled:
            problems.append(f"The model's chat template cannot render tools or tool calls, and the {label} data "
                            f"has them ({_named(tooled)}); choose a model whose template supports tools, or drop "
                            "those records.")
    broken: dict[str, list[int]] = {}
    for r in rows:
        why = check_renders(template, r.messages, r.tools)
        if why:
            broken.setdefault(why, []).append(r.location)
    for why, where in broken.items():
        problems.append(f"The {label} data's {_named(where)}: {why}.")
    return problems


@dataclass
class EncodedSet:
    input_ids: list[list[int]] = field(default_factory=list)
    assistant_masks: list[list[int]] = field(default_factory=list)
    methods: Counter = field(default_factory=Counter)
    no_loss: list[int] = field(default_factory=list)  # records left without any trainable turn (all weight 0)

    def dataset(self):
        from datasets import Dataset  # the ML stack loads in seconds: only jobs that train import it

        return Dataset.from_dict({"input_ids": self.input_ids, "assistant_masks": self.assistant_masks})


def encode_rows(template: ModelTemplate, rows: list[Row], answer_only: bool) -> EncodedSet:
    out = EncodedSet()
    for row in rows:
        encoded = encode_conversation(template, row.messages, row.tools, all_tokens=not answer_only)
        if not encoded.examples or not any(any(e.assistant_masks) for e in encoded.examples):
            out.no_loss.append(row.location)
            continue
        out.methods[encoded.method] += 1
        for example in encoded.examples:
            out.input_ids.append(example.input_ids)
            out.assistant_masks.append(example.assistant_masks)
    return out


def unused_fields(rows: list[Row], template: ModelTemplate) -> dict[str, list[int]]:
    """Fields present in the records that this run will not use, with the records that hold them."""
    found: dict[str, list[int]] = {}
    for row in rows:
        for m in row.messages:
            for key in m:
                if key not in MESSAGE_KEYS or (key == "name" and not template.renders_name):
                    found.setdefault(f"message.{key}", []).append(row.location)
    return {k: sorted(set(v)) for k, v in found.items()}


def describe_loss(template: ModelTemplate, encoded: EncodedSet, rows: list[Row], answer_only: bool) -> dict:
    """What the run's log and the run page show about how the loss was put on the tokens."""
    method = encoded.methods.most_common(1)[0][0] if encoded.methods else ("assistant_mask" if answer_only
                                                                          else "all_tokens")
    folded = sum(1 for r in rows if r.messages and r.messages[0].get("role") == "system") \
        if not template.system_role else 0
    notes = [METHODS[method]]
    if encoded.methods.get("per_turn") and method != "per_turn":
        notes.append(f"{encoded.methods['per_turn']} records as one example per assistant turn")
    if template.source == "default":
        notes.append("the model has no chat template: the studio's default template was used (see the README)")
    if folded:
        notes.append(f"the template has no system role: the system prompt of {folded} records was folded into "
                     "their first user turn")
    if encoded.no_loss:
        notes.append(f"{len(encoded.no_loss)} records have no assistant turn with loss (weight 0) and were left out "
                     f"({_named(encoded.no_loss)})")
    if not answer_only:
        notes.append("answer-only loss is off: the model also learns to write the prompts")
    return {"method": method, "methods": dict(encoded.methods), "examples": len(encoded.input_ids),
            "template": template.describe(), "system_folded": folded, "no_loss_records": encoded.no_loss[:50],
            "unused_fields": {k: v[:50] for k, v in unused_fields(rows, template).items()},
            "message": "; ".join(notes) + "."}
