"""Benchmark: the studio's training overhead and batching, on the demo model, in one run.

1. Overhead: the same model, data and settings trained by a bare TRL script and through the studio (supervised
   subprocess, metrics callback, W&B offline). Figure: non-padding tokens per second of the studio / the bare script
   (budget >= 0.97). Each side runs `--repeats` times, alternating; the median counts.
2. Batching: data with widely varying lengths, through the studio with its default ("auto": length grouping on a
   CPU, packing with flash attention on CUDA) and with TRL's default (each batch padded to its longest example).
   Figure: the ratio of non-padding tokens per second (budget >= 1.3), and the padding share of each, counted on the
   real dataloader batches.
3. Start-up: seconds from launch to the first metrics line (budget 10 s).

    .venv/bin/python bench/train_overhead.py [--steps 60] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = dict(per_device_train_batch_size=8, max_length=512, learning_rate=2e-3, logging_steps=10, seed=0,
                assistant_only_loss=True)


def conversations(n: int, varied: bool, seed: int = 0) -> list[dict]:
    from engine.demo import sample

    rng = random.Random(seed)
    rows = sample.generate(n, seed=seed + 11)[: n]
    if varied:  # answers from one sentence to several paragraphs
        for row in rows:
            answer = row["messages"][-1]["content"]
            row["messages"][-1]["content"] = " ".join([answer] * rng.choice([1, 1, 1, 2, 4, 8]))
    return [r for r in rows if r["messages"][0]["role"] == "system"]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sft_args(batching: str) -> dict:
    """The SFTConfig arguments a batching mode means (as engine.train.trainer sets them on a CPU)."""
    return {"packing": batching == "packing",
            "train_sampling_strategy": "group_by_length" if batching == "length_grouping" else "random"}


def bare_trl(model_dir: Path, data: Path, steps: int, out: Path, batching: str) -> float:
    """A plain TRL script: non-padding tokens per second of training (TRL's own num_tokens / train_runtime)."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = [json.loads(line) for line in data.read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    args = SFTConfig(output_dir=str(out), max_steps=steps, report_to="none", use_cpu=True, bf16=False,
                     gradient_checkpointing=False, disable_tqdm=True, save_strategy="no", **sft_args(batching),
                     **SETTINGS)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                                target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    result = trainer.train()
    tokens = next(h["num_tokens"] for h in reversed(trainer.state.log_history) if "num_tokens" in h)
    return tokens / result.metrics["train_runtime"]


def studio(model_dir: Path, data: Path, steps: int, batching: str, wandb: str = "offline") -> dict:
    """Through the supervisor, as the dashboard and the CLI run it."""
    from engine.jobs import event_log, supervisor
    from engine.train import launcher
    from engine.train.config import RunConfig

    config = RunConfig.build(base_model=str(model_dir), train_file=str(data), max_steps=steps, batching=batching,
                             early_stopping=False, save_steps=10_000, eval_steps=10_000, wandb_mode=wandb,
                             **SETTINGS)
    launched = time.time()
    run = launcher.launch(config)
    folder = supervisor.run_path(run)
    first = None
    while True:
        supervisor.reconcile()
        if first is None:
            logs = [e for e in event_log.read_events(folder) if e["event"] == "log"]
            if logs:
                first = logs[0]["time"] - launched
        run = supervisor.get_run(run.id)
        if run.status not in supervisor.ACTIVE:
            break
        time.sleep(0.2)
    final = event_log.final_event(event_log.read_events(folder))
    assert run.status == "succeeded", run.error_message
    return {"tps": final["num_tokens"] / final["train_runtime"], "first_metric_s": first,
            "batching": final["batching"]}


def padding_share(model_dir: Path, data: Path, batching: str, batches: int = 30) -> float:
    """Share of padding tokens in the real training batches TRL builds for this setting."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = [json.loads(line) for line in data.read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(model_dir)
    args = SFTConfig(output_dir=tempfile.mkdtemp(), report_to="none", use_cpu=True, bf16=False,
                     gradient_checkpointing=False, **sft_args(batching), **SETTINGS)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), args=args,
                         train_dataset=Dataset.from_list(rows), processing_class=tok)
    total = real = 0
    for i, batch in enumerate(trainer.get_train_dataloader()):
        if i == batches:
            break
        ids = batch["input_ids"]
        total += ids.numel()
        real += int(batch["attention_mask"].sum()) if "attention_mask" in batch else int((ids != tok.pad_token_id).sum())
    return 1 - real / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    home = Path(os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-train-bench-")))
    from engine.demo.model import build_demo_model
    from engine.store import workspace

    ws = workspace.current()
    workspace.apply_library_env(ws)
    model_dir = ws.demo_model
    if not (model_dir / "model.safetensors").is_file():
        build_demo_model(model_dir)
    uniform = write(home / "uniform.jsonl", conversations(600, varied=False))
    varied = write(home / "varied.jsonl", conversations(600, varied=True))

    bare, ours, firsts = [], [], []
    for i in range(args.repeats):
        result = studio(model_dir, uniform, args.steps, batching="auto")
        bare.append(bare_trl(model_dir, uniform, args.steps, home / f"bare-{i}", batching=result["batching"]))
        ours.append(result["tps"])
        firsts.append(result["first_metric_s"])
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"overhead: bare TRL {b:,.0f} tok/s, studio {o:,.0f} tok/s (runs: bare {[round(x) for x in bare]}, "
          f"studio {[round(x) for x in ours]}); studio/bare = {o / b:.3f} (budget >= 0.97)")

    default = studio(model_dir, varied, args.steps, batching="auto", wandb="disabled")
    padded = studio(model_dir, varied, args.steps, batching="padding", wandb="disabled")["tps"]
    share_default = padding_share(model_dir, varied, default["batching"])
    share_padded = padding_share(model_dir, varied, "padding")
    print(f"batching on varied lengths: studio default ({default['batching']}) {default['tps']:,.0f} tok/s (padding "
          f"{share_default:.1%}), TRL default {padded:,.0f} tok/s (padding {share_padded:.1%}); ratio "
          f"{default['tps'] / padded:.2f} (budget >= 1.3)")
    print(f"first metrics line after launch: {', '.join(f'{x:.1f} s' for x in firsts)} (budget 10 s)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
