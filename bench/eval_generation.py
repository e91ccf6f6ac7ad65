"""Benchmark: batched generation against one-at-a-time generation, and a 500-example evaluation, on the demo model.

1. The same prompts answered one at a time and in batches of 16 (left padding), greedy, same max new tokens, in
   the same run: generated tokens per second of each and the ratio (budget >= 4).
2. A short run on 5,000 sample conversations (500 in the locked test split), then the full evaluation job against the
   base model (both models answer all 500, the few-shot fallback answers too, perplexity, the forgetting probes,
   metrics with 1,000 bootstrap resamples, the routing curve), queued with the supervisor and run in its own
   process as the page and the CLI run it: wall time from queueing to the saved report (budget 60 s on 2 cores).

    .venv/bin/python bench/eval_generation.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path


def throughput(model, tokenizer, prompts, batch_size: int, max_new_tokens: int) -> tuple[float, float]:
    from engine.evaluate import generation

    began = time.perf_counter()
    answers = generation.generate(model, tokenizer, prompts, batch_size=batch_size, max_new_tokens=max_new_tokens)
    elapsed = time.perf_counter() - began
    return sum(a.new_tokens for a in answers) / elapsed, elapsed


def main() -> int:
    home = Path(os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-eval-bench-")))
    from engine.data import split, versions
    from engine.demo import sample
    from engine.demo.model import build_demo_model
    from engine.evaluate import generation, queue, results
    from engine.jobs import supervisor
    from engine.store import projects, workspace
    from engine.train import launcher

    ws = workspace.current()
    workspace.apply_library_env(ws)
    if not (ws.demo_model / "model.safetensors").is_file():
        build_demo_model(ws.demo_model)

    model, tok = generation.load(str(ws.demo_model))
    prompts = [generation.prompt_of(r["messages"]) for r in sample.generate(64, seed=5)]
    single, t1 = throughput(model, tok, prompts, batch_size=1, max_new_tokens=64)
    batched, t16 = throughput(model, tok, prompts, batch_size=16, max_new_tokens=64)
    print(f"generation of {len(prompts)} answers: one at a time {single:,.0f} tok/s ({t1:.1f} s), batches of 16 "
          f"{batched:,.0f} tok/s ({t16:.1f} s); ratio {batched / single:.1f} (budget >= 4)")

    project = projects.ensure_project("bench")
    data = home / "sample-5000.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sample.generate(5000, seed=8)), encoding="utf-8")
    version = versions.import_file(project.id, data, data.name)
    made = split.create_split(version)
    config = launcher.config_for_split(made, str(ws.demo_model), name="bench", max_steps=100, early_stopping=False,
                                       eval_steps=100, save_steps=100, wandb_mode="disabled",
                                       target_modules=["all-linear"], lora_r=32, lora_alpha=64, learning_rate=3e-3)
    run = supervisor.wait(launcher.launch(config, project.id).id, timeout=900)
    assert run.status == "succeeded", run.error_message
    from engine.evaluate.options import EvalOptions

    began = time.perf_counter()  # as a user gets it: queued with the supervisor, its own process, the report saved
    job = supervisor.wait(queue.queue(EvalOptions(run_id=run.id, max_new_tokens=96)).id, timeout=900, poll=0.2)
    elapsed = time.perf_counter() - began
    assert job.status == "succeeded", job.error_message
    report = results.load_report(supervisor.get_run(run.id))
    rouge = report["metrics"]["rougeL"]
    print(f"evaluation job of {report['n_examples']} test examples (queue, process start, both models, fallback, "
          "perplexity on test and train samples, forgetting, metrics, routing): "
          f"{elapsed:.1f} s (budget 60 s); ROUGE-L {rouge['base']:.3f} -> {rouge['finetuned']:.3f} "
          f"[{rouge['ci_low']:+.3f}, {rouge['ci_high']:+.3f}]")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
