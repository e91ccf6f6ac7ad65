"""The tiny demo model: a 2-layer Llama with its own byte-level BPE tokenizer, built offline in seconds.

Model weights cannot be downloaded on the project's machines, so the studio builds a real Hugging Face model folder
itself and every loading path (`from_pretrained`) is exercised on it. A short plain-text pre-training on a built-in
corpus (general ChatML conversations, which contain the end-of-turn token, plus prose in the sample's domain) lets
fine-tuning visibly move the loss and lets generation stop.
Deterministic: two builds give bit-identical files.

    studio demo-model workspace/models/demo
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from engine.demo import sample

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB_SIZE = 800
SEED = 1234

# ChatML; the {% generation %} block marks assistant tokens for TRL's assistant_only_loss (end-of-turn included).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

_TOPICS = {
    "water": "Water boils at 100 degrees Celsius at sea level and freezes at 0 degrees.",
    "the sun": "The sun is a star at the centre of our solar system. Its light reaches the earth in about eight minutes.",
    "a week": "A week has seven days: Monday, Tuesday, Wednesday, Thursday, Friday, Saturday and Sunday.",
    "plants": "Plants use sunlight, water and carbon dioxide to make sugar. This process is called photosynthesis.",
    "the heart": "The heart pumps blood through the body. An adult heart beats about seventy times a minute.",
    "bread": "Bread is made from flour, water, salt and yeast. The dough rises before it is baked in a hot oven.",
    "rain": "Rain forms when water vapour in clouds cools and falls as drops.",
    "a triangle": "A triangle has three sides and three angles, and its angles add up to 180 degrees.",
    "the moon": "The moon travels around the earth about once a month and reflects the light of the sun.",
    "email": "An email is a message sent over the internet. It needs an address, a subject and a body.",
    "a budget": "A budget lists the money you expect to earn and to spend, so you can plan and save.",
    "sleep": "Most adults need seven to nine hours of sleep a night to stay healthy and alert.",
}
_QUESTIONS = ["What do you know about {t}?", "Tell me about {t}.", "Explain {t} in one or two sentences.",
              "Can you describe {t}?"]
# Varied system prompts: with a single one, the tiny model learned it as its most likely line and answered every
# question with "You are a helpful assistant." (the system prompt, echoed), before and after fine-tuning.
_SYSTEMS = ["You are a helpful assistant.", "You answer questions briefly and clearly.", "Be friendly and precise.",
            "You are a patient teacher.", "Answer in one or two sentences.", "You explain things simply.",
            "You are a science tutor for adults.", "Keep your answers short.", "You are a careful assistant.",
            "Reply politely and to the point."]
_REPLIES = ["Thank you, that helps.", "Great, thanks!", "I see. Thank you for the clear answer."]


def corpus(seed: int = SEED, n: int = 400) -> list[str]:
    """Built-in plain-text corpus: short general conversations written in ChatML, so the end-of-turn token appears."""
    rng = random.Random(seed)
    texts = []
    topics = sorted(_TOPICS)
    for _ in range(n):
        topic = rng.choice(topics)
        question = rng.choice(_QUESTIONS).format(t=topic)
        turns = [("system", rng.choice(_SYSTEMS)), ("user", question), ("assistant", _TOPICS[topic])]
        if rng.random() < 0.3:
            turns += [("user", rng.choice(_REPLIES)), ("assistant", "You are welcome. Ask me anything else.")]
        texts.append("".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in turns))
    return texts


def domain_corpus(seed: int = SEED, n: int = 400) -> list[str]:
    """Plain prose in the sample's domain (the shop's policies with random details), without the chat format.

    With it the base model knows the vocabulary and facts (validation loss on the sample about 2.9 instead of 9), and
    fine-tuning visibly teaches the assistant's behaviour (2.9 -> 2.1 in 60 LoRA steps) instead of fighting random
    embeddings.
    """
    rng = random.Random(seed + 1)
    out = []
    for _ in range(n):
        _, answer = sample.INTENTS[rng.choice(sorted(sample.INTENTS))]
        out.append(answer.format(**sample.slots(rng)) + "\n")
    return out


def pretraining_corpus() -> list[str]:
    return corpus() + domain_corpus()


def tokenizer_corpus() -> list[str]:
    """Text the BPE merges are learned from: the general corpus plus the sample dataset's vocabulary."""
    rows = sample.generate()
    support = [m["content"] for row in rows for m in row["messages"]]
    return corpus() + support


def train_tokenizer():
    """Train the byte-level BPE tokenizer (the `tokenizers` library only: no transformers import, < 1 s)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # heavy: loaded on first use

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(tokenizer_corpus(), trainer)
    return tok


def build_tokenizer(out_dir: Path):
    """Save the trained tokenizer as a fast tokenizer with the ChatML chat template."""
    from transformers import PreTrainedTokenizerFast  # heavy: loaded on first use

    fast = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(), eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        model_max_length=2048,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "right"
    fast.save_pretrained(str(out_dir))
    return fast


def build_demo_model(out_dir: Path | str, pretrain_steps: int = 300, progress=None) -> Path:
    """Write a complete Hugging Face model folder (config, safetensors weights, tokenizer) to out_dir; `progress`
    gets a line every 50 pre-training steps."""
    import torch  # the ML stack loads in seconds: only jobs that train or generate import it
    from transformers import LlamaConfig, LlamaForCausalLM  # heavy: loaded on first use

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out_dir)
    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=176, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    if pretrain_steps:
        _pretrain(model, tokenizer, pretrain_steps, progress=progress)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(out_dir))
    (out_dir / "studio_demo.json").write_text(json.dumps(
        {"built_by": "finetune-studio", "pretrain_steps": pretrain_steps, "seed": SEED}, indent=2) + "\n")
    return out_dir


def _pretrain(model, tokenizer, steps: int, block: int = 96, batch: int = 16, progress=None) -> None:
    """Plain next-token training on the built-in corpus.

    A fixed thread count keeps the float reduction order, and so the weights, bit-identical between builds.
    """
    import torch  # the ML stack loads in seconds: only jobs that train or generate import it

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ids = tokenizer("".join(pretraining_corpus()), add_special_tokens=False)["input_ids"]
        data = torch.tensor(ids, dtype=torch.long)
        gen = torch.Generator().manual_seed(SEED)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
        model.train()
        for step in range(steps):
            starts = torch.randint(0, len(data) - block - 1, (batch,), generator=gen)
            x = torch.stack([data[s:s + block] for s in starts])
            loss = model(input_ids=x, labels=x).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if progress and (step + 1) % 50 == 0:
                progress(f"  pre-training the demo model: step {step + 1}/{steps}, loss {loss.item():.2f}")
        model.eval()
    finally:
        torch.set_num_threads(threads)
