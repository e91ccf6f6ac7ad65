"""GPU check suite: one command for the day a GPU is lent (under 10 minutes on one H100/H200-class GPU).

1. LoRA throughput on a Llama-3-8B-shaped model with random weights (built from the config: nothing to download),
   bf16: the studio's run settings (engine.train.trainer.sft_args with the studio's batching for this machine:
   packing with flash attention when flash-attn is installed, else length grouping; Liger kernels when installed;
   PyTorch's fused AdamW, which is also transformers' default) against plain TRL defaults (each batch padded to its longest example), on the same data
   of widely varying lengths. Figures: non-padding tokens/s (after warm-up steps), the ratio, the padding share of
   the real dataloader batches, peak GPU memory, and the model FLOPs utilisation: 6 x parameters x tokens/s over the
   GPU's peak dense bf16 rate (the usual convention; LoRA does about 4/6 of that work, frozen weights get no
   gradient). Targets on an H100/H200: MFU >= 45%, studio >= 1.6x plain TRL.
2. The supervisor's out-of-memory classification (engine.jobs.failures) on a deliberately too-large batch.
3. QLoRA when bitsandbytes is installed: the same model saved once, loaded through the studio's own loader in 4-bit
   (NF4, double quantization, bf16 compute) and trained with the studio's settings: tokens/s, peak memory, and
   whether the loss fell. vLLM generation against HF generate is not measured: the studio's evaluation generates
   with transformers only (no vLLM path to compare yet); the figure says so.

    python bench/gpu_suite.py [--out FILE]      on a CUDA machine
    python bench/gpu_suite.py --cpu-smoke       tiny shapes on the CPU: the same code paths (make test runs it)

Prints one JSON object (and writes it to --out).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

# Llama-3-8B's shape (config.json of meta-llama/Meta-Llama-3-8B), and a tiny one for the CPU smoke run.
SHAPES = {
    "llama3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0,
                      rms_norm_eps=1e-5),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1024, max_position_embeddings=2048),
}
# Peak dense bf16 tensor throughput (vendor data sheets, without sparsity), FLOP/s.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


def has(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def conversations(n: int, seed: int = 0) -> list[dict]:
    """The demo shop's conversations with answers from one sentence to many paragraphs (lengths vary widely, as
    real support data does)."""
    from engine.demo import sample

    rng = random.Random(seed)
    rows = [r for r in sample.generate(n * 2, seed=seed + 11) if r["messages"][0]["role"] == "system"][:n]
    for row in rows:
        answer = row["messages"][-1]["content"]
        row["messages"][-1]["content"] = " ".join([answer] * rng.choice([1, 1, 2, 4, 8, 16, 32]))
    return rows


def build_model(shape: str, device: str, dtype):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**SHAPES[shape], tie_word_embeddings=False)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    return model


def studio_config(model_dir: Path, data: Path, steps: int, batch: int, max_length: int):
    from engine.train.config import RunConfig

    return RunConfig(name="gpu-suite", base_model=str(model_dir), train_file=str(data), technique="lora",
                     max_steps=steps, per_device_train_batch_size=batch, max_length=max_length, logging_steps=1,
                     save_steps=10_000, eval_steps=10_000, learning_rate=1e-4, wandb_mode="disabled",
                     early_stopping=False)


class StepClock:
    """Wall time at the end of each step (a TrainerCallback, made on first use: transformers loads late)."""

    @staticmethod
    def make():
        from transformers import TrainerCallback

        class Clock(TrainerCallback):
            def __init__(self):
                self.times: dict[int, float] = {}

            def on_step_end(self, args, state, control, **kwargs):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                self.times[state.global_step] = time.perf_counter()

        return Clock()


def timed_rate(trainer, clock, warmup: int) -> tuple[float | None, int, int]:
    """(non-padding tokens per second after the warm-up steps, the first timed step, the last step), from TRL's
    num_tokens (logged every step) and the step clock."""
    tokens = {h["step"]: h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h}
    last = max(tokens)
    warm = min(warmup, last - 1)
    seconds = clock.times[last] - clock.times[warm]
    return ((tokens[last] - tokens[warm]) / seconds if seconds > 0 else None), warm, last


def padding_share(trainer, batches: int) -> float:
    """Padding tokens over all tokens in the first `batches` batches of the real dataloader."""
    real = total = 0
    for i, batch in enumerate(trainer.get_train_dataloader()):
        if i >= batches:
            break
        ids = batch["input_ids"]
        total += ids.numel()
        real += int(batch["attention_mask"].sum()) if "attention_mask" in batch else ids.numel()
    return 1 - real / total if total else 0.0


def train_once(args, mode: str, tokenizer, rows, device: str, precision: str, tmp: Path) -> dict:
    """One LoRA training of args.steps steps, with the studio's settings or plain TRL defaults."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from engine.train import trainer as studio

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model = build_model(args.shape, device, dtype)
    params = sum(p.numel() for p in model.parameters())
    data = tmp / "train.jsonl"
    config = studio_config(tmp / "tokenizer", data, args.steps, args.batch, args.max_length)
    if mode == "studio":
        batching = studio.resolve_batching(config, device)
        sft = studio.sft_args(config, tmp / mode, False, device, precision, batching, "none")
    else:
        batching = "padding"
        sft = SFTConfig(output_dir=str(tmp / mode), max_steps=args.steps, per_device_train_batch_size=args.batch,
                        max_length=args.max_length, learning_rate=1e-4, logging_steps=1, save_strategy="no",
                        report_to="none", bf16=precision == "bf16", use_cpu=device == "cpu", disable_tqdm=True)
    clock = StepClock.make()
    trainer = SFTTrainer(model=model, args=sft, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=studio.peft_config(config), callbacks=[clock])
    pad = padding_share(trainer, min(args.steps, 20))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    rate, warm, last = timed_rate(trainer, clock, args.warmup)
    out = {"mode": mode, "batching": batching, "optim": str(trainer.args.optim), "params": params,
           "tokens_per_second": rate, "padding_share": round(pad, 4), "steps_timed": last - warm,
           "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None}
    del trainer, model
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def peak_flops(name: str | None) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if name and k in name), None)


def oom_check(args, device: str) -> dict:
    """A batch far beyond the GPU's memory: the supervisor must call it gpu_oom, with its advice."""
    if device != "cuda":
        return {"status": "not run", "why": "needs CUDA"}
    import torch

    from engine.jobs.failures import classify_exception

    model = build_model(args.shape, device, torch.bfloat16)
    try:
        ids = torch.randint(0, model.config.vocab_size, (256, 8192), device=device)
        model(input_ids=ids, labels=ids).loss.backward()
        return {"status": "failed", "why": "the oversized batch did not run out of memory"}
    except Exception as err:  # noqa: BLE001 - whatever torch raises is what the supervisor sees
        kind, sentence = classify_exception(err)
        return {"status": "passed" if kind == "gpu_oom" else "failed", "kind": kind, "sentence": sentence}
    finally:
        del model
        torch.cuda.empty_cache()


def qlora_check(args, device: str, tokenizer, rows, tmp: Path) -> dict:
    """A few QLoRA steps through the studio's loader (BitsAndBytesConfig NF4 + prepare_model_for_kbit_training)."""
    if device != "cuda" or not has("bitsandbytes"):
        return {"status": "not run", "why": "needs CUDA and bitsandbytes"}
    import torch
    from datasets import Dataset
    from trl import SFTTrainer

    from engine.train import trainer as studio

    base = tmp / "base"
    model = build_model(args.shape, device, torch.bfloat16)
    model.save_pretrained(str(base))
    tokenizer.save_pretrained(str(base))
    del model
    torch.cuda.empty_cache()
    steps = min(args.steps, 15)
    config = studio_config(base, tmp / "train.jsonl", steps, args.batch, args.max_length).model_copy(
        update={"technique": "qlora"})
    batching = studio.resolve_batching(config, device)
    model, tok = studio.load_model(config, device, "bf16", batching)
    clock = StepClock.make()
    trainer = SFTTrainer(model=model, args=studio.sft_args(config, tmp / "qlora", False, device, "bf16", batching,
                                                           "none"),
                         train_dataset=Dataset.from_list(rows), processing_class=tok,
                         peft_config=studio.peft_config(config), callbacks=[clock])
    torch.cuda.reset_peak_memory_stats()
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h and "num_tokens" in h]
    rate, _, last = timed_rate(trainer, clock, args.warmup)
    out = {"status": "passed" if logs and logs[-1]["loss"] < logs[0]["loss"] else "failed",
           "first_loss": logs[0]["loss"], "last_loss": logs[-1]["loss"], "steps": last,
           "tokens_per_second": rate, "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2),
           "load_in_4bit": bool(getattr(model, "is_loaded_in_4bit", False))}
    del trainer, model
    torch.cuda.empty_cache()
    return out


NOT_BUILT = {"status": "not run", "why": "the studio's evaluation generates with transformers only: there is no "
                                         "vLLM generation path to compare with yet"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on the CPU (the same code paths)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--max-length", type=int)
    parser.add_argument("--examples", type=int)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--checks", default="lora,oom,qlora", help="which checks to run (default: all)")
    args = parser.parse_args()
    smoke = args.cpu_smoke
    args.shape = "tiny" if smoke else "llama3-8b"
    for key, gpu, cpu in (("steps", 30, 4), ("warmup", 5, 1), ("batch", 8, 4), ("max_length", 1024, 256),
                          ("examples", 2000, 64)):
        if getattr(args, key) is None:
            setattr(args, key, cpu if smoke else gpu)

    import torch

    from engine.demo.model import build_tokenizer

    if not smoke and not torch.cuda.is_available():
        print("No CUDA GPU is visible here: the suite needs one (or --cpu-smoke for the tiny shapes on the CPU).",
              file=sys.stderr)
        return 2
    device = "cpu" if smoke else "cuda"
    precision = "bf16" if device == "cuda" else "fp32"
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-suite-") as folder:
        tmp = Path(folder)
        tokenizer = build_tokenizer(tmp / "tokenizer")
        rows = conversations(args.examples)
        (tmp / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        checks = set(args.checks.split(","))
        runs = {mode: train_once(args, mode, tokenizer, rows, device, precision, tmp) for mode in ("plain", "studio")} \
            if "lora" in checks else {}
        oom = oom_check(args, device) if "oom" in checks else None
        qlora = qlora_check(args, device, tokenizer, rows, tmp) if "qlora" in checks else None
    name = gpu_name() if device == "cuda" else None
    peak = peak_flops(name)
    for r in runs.values():
        r["mfu"] = round(6 * r["params"] * r["tokens_per_second"] / peak, 4) if peak and r["tokens_per_second"] \
            else None
    plain = runs["plain"]["tokens_per_second"] if runs else None
    studio = runs["studio"]["tokens_per_second"] if runs else None
    result = {"device": device, "gpu": name, "precision": precision, "shape": args.shape, "steps": args.steps,
              "batch": args.batch, "max_length": args.max_length, "lora": runs,
              "studio_over_plain": round(studio / plain, 3) if plain and studio else None,
              "oom_classification": oom, "qlora": qlora, "vllm_vs_hf_generate": NOT_BUILT,
              "seconds": round(time.perf_counter() - began, 1)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
