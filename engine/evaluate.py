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
import time
from pathlib import Path
from typing import Callable

from engine import forgetting, generation, routing, runs, scoring, split
from engine.loading import load_records
from engine.quality import usable
from engine.tables import Run

Progress = Callable[[float, str], None]


class EvalError(ValueError):
    pass


def split_part(run: Run, part: str, limit: int | None = None) -> list[list[dict]]:
    from engine import db
    from engine.tables import Split

    split_id = run.config.get("split_id")
    if split_id is None:
        raise EvalError(f"Run {run.id} was not trained on a split, so it has no locked test set to evaluate on.")
    with db.session() as s:
        made = s.get(Split, split_id)
    if made is None:
        raise EvalError(f"The split of run {run.id} no longer exists.")
    records = usable(load_records(split.split_path(made, part)).records)
    if not records:
        raise EvalError(f"The {part} split of run {run.id} is empty.")
    convs = [[{"role": m["role"], "content": m["content"]} for m in r.messages] for r in records]
    return convs[:limit] if limit else convs


def test_conversations(run: Run, limit: int | None = None) -> list[list[dict]]:
    return split_part(run, "test", limit)


def general_set(path: Path | str | None) -> list[list[dict]]:
    """The user's general-skills set (chat JSONL), or the built-in probe set."""
    if path is None:
        return forgetting.probe_set()
    records = usable(load_records(Path(path)).records)
    if not records:
        raise EvalError(f"The general set {path} has no usable examples.")
    return [[{"role": m["role"], "content": m["content"]} for m in r.messages] for r in records]


def evaluate_run(run_id: int, limit: int | None = None, batch_size: int = 16, max_new_tokens: int = 128,
                 task: str = "chat", progress: Progress | None = None, general: Path | str | None = None) -> dict:
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
    probes = general_set(general)
    probe_prompts = [generation.prompt_of(c) for c in probes]
    outputs, nll, probe_answers, text_nll = {}, {}, {}, {}
    for k, (name, adapter) in enumerate((("base", None), ("finetuned", final))):
        step(0.05 + 0.45 * k, f"Loading the {name} model")
        model, tokenizer = generation.load(base_model, adapter)

        def report(done: int, total: int, k=k, name=name) -> None:
            step(0.05 + 0.45 * k + 0.35 * done / total, f"{name}: {done}/{total} answers")

        outputs[name] = generation.generate(model, tokenizer, prompts, batch_size, max_new_tokens, progress=report,
                                            confidence=name == "finetuned")
        if name == "base":  # the fallback of the hybrid routing: the base model with a few training examples
            step(0.3, "base: few-shot answers for the routing analysis")
            shots = split_part(run, "train", routing.K_SHOT)
            outputs["fallback"] = generation.generate(
                model, tokenizer, [routing.few_shot_prompt(shots, p) for p in prompts], batch_size, max_new_tokens)
        step(0.4 + 0.45 * k, f"{name}: perplexity of the reference answers")
        nll[name] = generation.answer_nll(model, tokenizer, convs, batch_size)
        step(0.43 + 0.45 * k, f"{name}: general-skills probes")
        probe_answers[name] = [a.text for a in generation.generate(model, tokenizer, probe_prompts, batch_size, 48)]
        text_nll[name] = generation.text_nll(model, tokenizer, forgetting.GENERAL_TEXT, batch_size)
        del model
    base_text = [a.text for a in outputs["base"]]
    tuned_text = [a.text for a in outputs["finetuned"]]
    metrics = scoring.compare(base_text, tuned_text, refs, task)
    metrics["perplexity"] = scoring.compare_perplexity(nll["base"], nll["finetuned"])
    forgetting_report = forgetting.summarize(probe_answers["base"], probe_answers["finetuned"],
                                             [c[-1]["content"] for c in probes], text_nll["base"],
                                             text_nll["finetuned"])
    rouge = scoring.get_metric("rougeL")
    routing_report = routing.routing_curve(
        [a.confidence if a.confidence is not None else 0.0 for a in outputs["finetuned"]],
        list(rouge.stats(tuned_text, refs)[:, 0]), list(rouge.stats([a.text for a in outputs["fallback"]], refs)[:, 0]))
    speed = {name: sum(a.new_tokens for a in outs) / max(sum(a.latency_s for a in outs), 1e-9)
             for name, outs in outputs.items()}
    report = {
        "run": run_id, "base_model": base_model, "n_examples": len(convs), "task": task,
        "metrics": metrics, "forgetting": forgetting_report, "routing": routing_report,
        "generated_tokens_per_second": speed,
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
                             "prompt_tokens": a.prompt_tokens, "confidence": a.confidence}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, folder / "outputs.jsonl")
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if "routing" in report:
        (folder / "routing_rule.json").write_text(json.dumps(report["routing"]["rule"], indent=2) + "\n",
                                                  encoding="utf-8")


def render(report: dict) -> str:
    lines = [f"Run {report['run']} against its base model on {report['n_examples']} locked test examples "
             "(fine-tuned - base, 95% bootstrap interval):"]
    for name, m in report["metrics"].items():
        lines.append(f"  {name:<12} base {m['base']:9.4f}  fine-tuned {m['finetuned']:9.4f}  diff {m['diff']:+9.4f} "
                     f"[{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]  {m['verdict']}")
    for name, sig in report.get("signatures", {}).items():
        lines.append(f"  {name} signature: {sig}")
    f = report.get("forgetting")
    if f:
        p, t = f["probe_chrf"], f["general_text_perplexity"]
        lines.append(f"Forgetting check: general probes (chrF) retained {p['retention']:.0%} "
                     f"[{p['ci_low']:.0%}, {p['ci_high']:.0%}]; general text perplexity retained {t['retention']:.0%} "
                     f"[{t['ci_low']:.0%}, {t['ci_high']:.0%}].")
        if f["warning"]:
            lines.append("  " + f["warning"])
            lines += [f"  - {r}" for r in f["remedies"]]
    r = report.get("routing")
    if r:
        best = r["recommended"]
        lines.append(f"Hybrid routing: fall back to the {routing.K_SHOT}-shot base model below confidence "
                     f"{best['threshold']}: {best['fallback_rate']:.0%} fallback, ROUGE-L {best['quality']:.3f} "
                     f"(fine-tuned only {r['only_finetuned']:.3f}, few-shot base only {r['only_fallback']:.3f}).")
    return "\n".join(lines)


def eval_dir(run: Run) -> Path:
    return runs.run_path(run) / "eval"


def load_report(run: Run) -> dict | None:
    path = eval_dir(run) / "report.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def per_example(run: Run) -> list[dict]:
    """Each test example with both answers and its ROUGE-L change, largest regression first."""
    from rouge_score import rouge_scorer

    path = eval_dir(run) / "outputs.jsonl"
    if not path.is_file():
        return []
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        base = scorer.score(row["reference"], row["base"]["answer"])["rougeL"].fmeasure
        tuned = scorer.score(row["reference"], row["finetuned"]["answer"])["rougeL"].fmeasure
        question = next((m["content"] for m in reversed(row["prompt"]) if m["role"] == "user"), "")
        rows.append({"example": row["index"] + 1, "rougeL_base": round(base, 4), "rougeL_finetuned": round(tuned, 4),
                     "change": round(tuned - base, 4), "question": question, "reference": row["reference"],
                     "base_answer": row["base"]["answer"], "finetuned_answer": row["finetuned"]["answer"]})
    return sorted(rows, key=lambda r: r["change"])


def start_background(run_id: int, max_new_tokens: int = 128) -> None:
    """Evaluate in its own process (the dashboard stays responsive); progress goes to eval/eval.log."""
    import subprocess
    import sys

    from engine import workspace

    run = runs.get_run(run_id)
    if run.status != "succeeded":
        raise EvalError(f"Run {run_id} is {run.status}; only a succeeded run can be evaluated.")
    folder = eval_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    if background_state(run)["state"] == "running":
        return  # a second click while it runs starts nothing
    ws = workspace.current()
    env = {**os.environ, **ws.library_env(), "STUDIO_HOME": str(ws.root), "TMPDIR": str(ws.tmp)}
    with (folder / "eval.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "eval", str(run_id), "--max-new-tokens",
                                 str(max_new_tokens)], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    (folder / "job.json").write_text(json.dumps({"pid": proc.pid, "started": time.time()}))


def cancel_background(run: Run) -> None:
    """Stop a running evaluation (its whole process group); nothing is written, the previous report stays."""
    import signal

    job = eval_dir(run) / "job.json"
    if background_state(run)["state"] != "running":
        return
    info = json.loads(job.read_text())
    info["cancelled"] = True
    job.write_text(json.dumps(info))
    try:
        os.killpg(info["pid"], signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def background_state(run: Run) -> dict:
    """{"state": none|running|done|failed, "progress", "label"} from the job file, the log and the report."""
    import psutil

    folder = eval_dir(run)
    job = folder / "job.json"
    if not job.is_file():
        return {"state": "none", "progress": 0.0, "label": ""}
    info = json.loads(job.read_text())
    log = (folder / "eval.log").read_text(errors="replace") if (folder / "eval.log").is_file() else ""
    steps = [line for line in log.splitlines() if line.startswith("[") and "%]" in line]
    progress, label = 0.0, "starting"
    if steps:
        progress = float(steps[-1][1:steps[-1].index("%")]) / 100
        label = steps[-1].split("]", 1)[1].strip()
    report = folder / "report.json"
    if report.is_file() and report.stat().st_mtime >= info["started"]:
        return {"state": "done", "progress": 1.0, "label": "done"}
    try:
        alive = psutil.Process(info["pid"]).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        alive = False
    if alive:
        return {"state": "running", "progress": progress, "label": label}
    if info.get("cancelled"):
        return {"state": "cancelled", "progress": progress, "label": "cancelled"}
    last = [line for line in log.splitlines() if line.startswith("studio:")]
    return {"state": "failed", "progress": progress, "label": last[-1] if last else "the evaluation stopped"}
