"""The demo model: built offline, deterministic, loadable by transformers, with an assistant-marking template."""

from __future__ import annotations

import hashlib

from engine.data.tokens import TokenCounter
from engine.demo.model import build_demo_model, train_tokenizer


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_build_is_bit_identical(tmp_path):
    # Two builds with a short pre-training take the same code path as the full build, at a fraction of its time.
    one = build_demo_model(tmp_path / "one", pretrain_steps=20)
    two = build_demo_model(tmp_path / "two", pretrain_steps=20)
    assert digest(one) == digest(two)


def test_demo_model_is_small(demo_model):
    assert sum(p.stat().st_size for p in demo_model.iterdir()) < 2_000_000


def test_loads_generates_and_stops(demo_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_model)
    model = AutoModelForCausalLM.from_pretrained(demo_model)
    assert 700 <= len(tok) <= 800 and tok.eos_token == "<|im_end|>"
    msgs = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Tell me about the sun."}]
    enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=80, do_sample=False)
    new = out[0][enc["input_ids"].shape[1]:].tolist()
    assert tok.eos_token_id in new  # pre-training taught it to end its turn


def test_chat_template_marks_assistant_tokens(demo_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_model)
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]
    enc = tok.apply_chat_template(msgs, return_assistant_tokens_mask=True, return_dict=True)
    marked = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(marked) == "Hello there<|im_end|>"


def test_token_counts_use_the_same_tokenizer(demo_model, ws):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_model)
    assert train_tokenizer().get_vocab() == tok.get_vocab()
    counter = TokenCounter.from_path(demo_model)
    text = "Where is my order NW-12345? It has not arrived."
    assert counter.count([text]) == [len(tok(text, add_special_tokens=False)["input_ids"])]
    # the template overhead per message is measured from the real template
    msgs = [{"role": "user", "content": text}]
    full = len(tok.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"])
    assert counter.count([text])[0] + counter.overhead["user"] == full


def test_cli_builds_it(ws, tmp_path):
    from conftest import run_studio

    proc = run_studio("demo-model", tmp_path / "m", "--pretrain-steps", "0", env_home=ws.root, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "m" / "model.safetensors").is_file() and (tmp_path / "m" / "tokenizer.json").is_file()


def test_training_labels_cover_the_answers_and_their_end_of_turn_only(demo_model, tmp_path):
    """The assistant-only mask end to end through TRL: system and user turns, role headers and the newline after
    <|im_end|> are never trained on; every answer token and its <|im_end|> are. And generation starts after the
    assistant header."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(demo_model)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is the mug under warranty?"},
            {"role": "assistant", "content": "Yes, two years."}, {"role": "user", "content": "And the rug?"},
            {"role": "assistant", "content": "One year."}]
    args = SFTConfig(output_dir=str(tmp_path), assistant_only_loss=True, max_length=256, report_to="none",
                     use_cpu=True, max_steps=1)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(demo_model), args=args, processing_class=tok,
                         train_dataset=Dataset.from_list([{"messages": msgs}]))
    row = trainer.train_dataset[0]
    trained_on = "".join(tok.decode([i]) if label != -100 else "\0" for i, label in zip(row["input_ids"],
                                                                                        row["labels"]))
    assert [part for part in trained_on.split("\0") if part] == ["Yes, two years.<|im_end|>", "One year.<|im_end|>"]
    prompt = tok.apply_chat_template(msgs[:2], add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")
