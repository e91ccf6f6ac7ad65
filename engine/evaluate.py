"""Evaluate a fine-tuned run against its base model on the locked test split of the run's data.

Both models answer every test prompt (batched, greedy); every answer is stored with its prompt, reference, latency
and token counts in <run>/eval/outputs.jsonl; the task metrics and the perplexity of the reference answers are
compared pairwise with 95% bootstrap intervals; the report goes to <run>/eval/report.json.

    studio eval RUN [--json] [--limit N]

The locked test split is what this step is for: it is read here and nowhere in training or model selection.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from engine import generation, runs, scoring, split
from engine.loading import load_records
from engine.quality import usable
from engine.tables import Run

Progress = Callable[[float, str], None]


class EvalError(ValueError):
    pass


def test_conversations(run: Run, limit: int | None = None) -> list[list[dict]]:
    from engine import db
    from engine.tables import Split

    split_id = run.config.get("split_id")
    if split_id is None:
        raise EvalError(f"Run {run.id} was not trained on a split, so it has no locked test set to evaluate on.")
    with db.session() as s:
        made = s.get(Split, split_id)
    if made is None:
        raise EvalError(f"The split of run {run.id} no longer exists.")
    records = usable(load_records(split.split_path(made, "test")).records)
    if not records:
        raise EvalError(f"The test split of run {run.id} is empty.")
    convs = [[{"role": m["role"], "content": m["content"]} for m in r.messages] for r in records]
    return convs[:limit] if limit else convs


def evaluate_run(run_id: int, limit: int | None = None, batch_size: int = 16, max_new_tokens: int = 128,
                 task: str = "chat", progress: Progress | None = None) -> dict:
    step = progress or (lambda fraction, label: None)
    run = runs.get_run(run_id)
    if run.status != "succeeded":
        raise EvalError(f"Run {run_id} is {run.status}; only a succeeded run can be evaluated.")
    final = runs.run_path(run) / "final"
    if not final.is_dir():
        raise EvalError(f"Run {run_id} has no saved model in {final}.")
    convs = test_conversations(run, limit)
    prompts = [generation.prompt_of(c) for c in convs]
    refs = [c[-1]["content"] for c in convs]
    base_model = run.config["base_model"]
    outputs, nll = {}, {}
    for k, (name, adapter) in enumerate((("base", None), ("finetuned", final))):
        step(0.05 + 0.45 * k, f"Loading the {name} model")
        model, tokenizer = generation.load(base_model, adapter)

        def report(done: int, total: int, k=k, name=name) -> None:
            step(0.05 + 0.45 * k + 0.35 * done / total, f"{name}: {done}/{total} answers")

        outputs[name] = generation.generate(model, tokenizer, prompts, batch_size, max_new_tokens, progress=report)
        step(0.45 + 0.45 * k, f"{name}: perplexity of the reference answers")
        nll[name] = generation.answer_nll(model, tokenizer, convs, batch_size)
        del model
    base_text = [a.text for a in outputs["base"]]
    tuned_text = [a.text for a in outputs["finetuned"]]
    metrics = scoring.compare(base_text, tuned_text, refs, task)
    metrics["perplexity"] = scoring.compare_perplexity(nll["base"], nll["finetuned"])
    speed = {name: sum(a.new_tokens for a in outs) / max(sum(a.latency_s for a in outs), 1e-9)
             for name, outs in outputs.items()}
    report = {
        "run": run_id, "base_model": base_model, "n_examples": len(convs), "task": task,
        "metrics": metrics, "generated_tokens_per_second": speed,
        "latency_s_per_example": {n: sum(a.latency_s for a in o) / len(o) for n, o in outputs.items()},
        "signatures": {name: scoring.sacrebleu_signature(name) for name in ("bleu", "chrf") if name in metrics},
        "bootstrap": {"resamples": scoring.N_RESAMPLES, "seed": scoring.SEED, "interval": "95% percentile"},
    }
    save(runs.run_path(run) / "eval", convs, outputs, report)
    step(1.0, "Done")
    return report


def save(folder: Path, convs: list[list[dict]], outputs: dict, report: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "outputs.jsonl.part"
    with tmp.open("w", encoding="utf-8") as f:
        for i, conv in enumerate(convs):
            row = {"index": i, "prompt": generation.prompt_of(conv), "reference": conv[-1]["content"]}
            for name, outs in outputs.items():
                a = outs[i]
                row[name] = {"answer": a.text, "latency_s": a.latency_s, "new_tokens": a.new_tokens,
                             "prompt_tokens": a.prompt_tokens}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, folder / "outputs.jsonl")
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def render(report: dict) -> str:
    lines = [f"Run {report['run']} against its base model on {report['n_examples']} locked test examples "
             "(fine-tuned - base, 95% bootstrap interval):"]
    for name, m in report["metrics"].items():
        lines.append(f"  {name:<12} base {m['base']:9.4f}  fine-tuned {m['finetuned']:9.4f}  diff {m['diff']:+9.4f} "
                     f"[{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]  {m['verdict']}")
    for name, sig in report.get("signatures", {}).items():
        lines.append(f"  {name} signature: {sig}")
    return "\n".join(lines)
