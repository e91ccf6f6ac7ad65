"""Generating answers, and scoring reference answers, with a base model or a fine-tuned one (adapter on its base).

Batched with left padding (the prompts end where generation starts), greedy by default. Each answer keeps its
latency and token counts, so evaluation pages, reviews and A/B reuse them without generating again.
Heavy imports happen inside the functions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.train import base_models, model_safety

Nll = tuple[list[float], list[int]]  # per example: summed negative log-likelihood, and over how many tokens


@dataclass
class Answer:
    text: str
    prompt_tokens: int
    new_tokens: int
    latency_s: float  # the batch's wall time divided among its examples
    confidence: float | None = None  # mean probability of the model's own answer tokens (when asked for)


def load(base_model: str, adapter: Path | str | None = None, device: str | None = None, merge: bool = False):
    """(model, tokenizer) ready for generation: eval mode, left padding, the adapter applied when given.

    merge=True folds a LoRA adapter into the base weights, as a merged model would be served: the evaluation then
    measures serving latency, not the adapter's extra matrix products. Other adapters stay as they are."""
    import torch  # the ML stack loads in seconds: only jobs that train or generate import it
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: loaded on first use

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    for folder in (base_models.local_folder(base_model), adapter):  # nothing from a folder runs as code
        model_safety.check(folder)
    tokenizer = AutoTokenizer.from_pretrained(adapter or base_model, trust_remote_code=False)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype, **model_safety.LOAD_KWARGS)
    if adapter is not None and (Path(adapter) / "adapter_config.json").is_file():
        from peft import PeftModel  # the ML stack loads in seconds: only jobs that train or generate import it

        model = PeftModel.from_pretrained(model, str(adapter))
        if merge and str(getattr(model.peft_config.get("default"), "peft_type", "")).endswith("LORA"):
            model = model.merge_and_unload()
    elif adapter is not None:  # a full fine-tune: the folder is the model
        model = AutoModelForCausalLM.from_pretrained(str(adapter), dtype=dtype, **model_safety.LOAD_KWARGS)
    model.to(device).eval()
    return model, tokenizer


def prompt_of(messages: list[dict]) -> list[dict]:
    """The conversation up to (not including) its final assistant answer (earlier tool calls and results kept)."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
    return [dict(m) for m in messages[:last]]


def generate(model, tokenizer, prompts: list[list[dict]], batch_size: int = 16, max_new_tokens: int = 128,
             do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
             progress: Callable[[int, int], None] | None = None,
             should_stop: Callable[[], bool] | None = None, confidence: bool = False,
             tools: list[list[dict] | None] | None = None) -> list[Answer]:
    """Answers for each prompt (a list of messages, with the record's tools where it has them), batch by batch."""
    import torch  # the ML stack loads in seconds: only jobs that train or generate import it

    from engine.data.chat_template import ModelTemplate, template_messages

    template = ModelTemplate.from_transformers(tokenizer)
    # the template's end-of-turn token stops generation too (Gemma's <end_of_turn> is not its eos token)
    stop_ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    turn_end = tokenizer.convert_tokens_to_ids(template.end_of_turn) if template.end_of_turn else None
    if isinstance(turn_end, int) and turn_end != tokenizer.unk_token_id and turn_end not in stop_ids:
        stop_ids.append(turn_end)
    out: list[Answer] = []
    # Similar lengths share a batch (less padding); answers are put back in the input order.
    order = sorted(range(len(prompts)), key=lambda i: len(json.dumps(prompts[i])))
    results: dict[int, Answer] = {}
    for start in range(0, len(order), batch_size):
        if should_stop and should_stop():
            break
        idx = order[start:start + batch_size]
        texts = [template.render(template_messages(prompts[i], template), tools[i] if tools else None,
                                 add_generation_prompt=True) for i in idx]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        kwargs = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "pad_token_id": tokenizer.pad_token_id,
                  "eos_token_id": stop_ids or None,
                  "return_dict_in_generate": True, "output_scores": confidence}
        if do_sample:
            kwargs.update(temperature=temperature, top_p=top_p)
        began = time.perf_counter()
        with torch.no_grad():
            result = model.generate(**enc, **kwargs)
        elapsed = time.perf_counter() - began
        generated = result.sequences
        width = enc["input_ids"].shape[1]
        probs = None
        if confidence and result.scores:
            # probability of each chosen token under the model (greedy: the scores are the raw logits)
            chosen = generated[:, width:width + len(result.scores)]
            logits = torch.stack(result.scores, dim=1).float()
            probs = torch.softmax(logits, dim=-1).gather(-1, chosen[..., None]).squeeze(-1)
        for row, i in enumerate(idx):
            tokens = generated[row, width:]
            keep = tokens != tokenizer.pad_token_id
            new = tokens[keep]
            # special tokens stay where a template wraps tool calls in them (<tool_call> in Qwen), else dropped
            with_tools = bool(tools and tools[i])
            text = tokenizer.decode(new, skip_special_tokens=not with_tools)
            for end in (template.end_of_turn, tokenizer.eos_token) if with_tools else ():
                text = text.removesuffix(end or "") if end else text
            conf = float(probs[row][keep[:probs.shape[1]]].mean()) if probs is not None and keep.any() else None
            results[i] = Answer(text.strip(), int(enc["attention_mask"][row].sum()), int(len(new)),
                                elapsed / len(idx), conf)
        if progress:
            progress(len(results), len(prompts))
    out = [results[i] for i in range(len(prompts)) if i in results]
    return out


def answer_nll(model, tokenizer, conversations: list[list[dict]], batch_size: int = 16,
               tools: list[list[dict] | None] | None = None) -> Nll:
    """Per conversation: the summed negative log-likelihood of its assistant tokens, and how many there are. The
    assistant tokens are those the training mask marks under the model's own chat template (engine.data.loss_mask),
    whatever the template; a conversation that a non-prefix-preserving template splits sums over its turns.

    Perplexity over a set is exp(sum of NLL / sum of tokens) (engine.evaluate.scoring.perplexity).
    """
    import torch  # the ML stack loads in seconds: only jobs that train or generate import it

    from engine.data.chat_template import ModelTemplate
    from engine.data.loss_mask import encode_conversation

    template = ModelTemplate.from_transformers(tokenizer)
    pieces: list[tuple[int, list[int], list[int]]] = []  # (conversation, input ids, mask)
    for n, messages in enumerate(conversations):
        for example in encode_conversation(template, messages, tools[n] if tools else None).examples:
            pieces.append((n, example.input_ids, example.assistant_masks))
    nll, counts = [0.0] * len(conversations), [0] * len(conversations)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(pieces), batch_size):
        batch = pieces[start:start + batch_size]
        width = max(len(ids) for _, ids, _ in batch)
        ids = torch.tensor([p[1] + [pad] * (width - len(p[1])) for p in batch], device=model.device)
        attention = torch.tensor([[1] * len(p[1]) + [0] * (width - len(p[1])) for p in batch], device=model.device)
        target = torch.tensor([p[2] + [0] * (width - len(p[2])) for p in batch], device=model.device).bool()
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=attention).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        wanted = target[:, 1:] & attention[:, 1:].bool()
        for (n, _, _), total, count in zip(batch, (-(logp * wanted)).sum(dim=1).tolist(), wanted.sum(dim=1).tolist()):
            nll[n] += total
            counts[n] += int(count)
    return nll, counts


def text_nll(model, tokenizer, texts: list[str], batch_size: int = 16) -> Nll:
    """Per plain text: summed negative log-likelihood of its tokens after the first, and how many there are."""
    import torch  # the ML stack loads in seconds: only jobs that train or generate import it

    nll, counts = [], []
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(model.device)
            with torch.no_grad():
                logits = model(**enc).logits.float()
            ids, mask = enc["input_ids"], enc["attention_mask"].bool()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            wanted = mask[:, 1:]
            nll += (-(logp * wanted)).sum(dim=1).tolist()
            counts += wanted.sum(dim=1).tolist()
    finally:
        tokenizer.padding_side = side
    return nll, [int(c) for c in counts]
