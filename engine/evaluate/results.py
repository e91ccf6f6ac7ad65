"""The stored results of an evaluation: where they live (<run>/eval/ or <run>/eval-vs-run-N/), how they are saved
(outputs.jsonl, report.json, routing_rule.json; each replaced atomically), read back, rendered in words and listed
example by example."""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.data import split
from engine.evaluate import generation, routing
from engine.evaluate.report_types import EvalReport, RoutingReport
from engine.jobs import supervisor
from engine.store.tables import Run


def report_path(report: EvalReport) -> Path:
    return eval_dir(supervisor.get_run(report["run"]), report.get("baseline", "base").replace("run ", "")) / "report.json"


def save(folder: Path, convs: list[list[dict]], outputs: dict, report: EvalReport) -> None:
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
    part = folder / "report.json.part"
    part.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(part, folder / "report.json")
    if "routing" in report:
        (folder / "routing_rule.json").write_text(json.dumps(report["routing"]["rule"], indent=2) + "\n",
                                                  encoding="utf-8")


def render(report: EvalReport) -> str:
    against = "its base model" if report.get("baseline", "base") == "base" else report["baseline_model"]
    lines = [f"Run {report['run']} against {against} on {report['n_examples']} locked test examples "
             "(fine-tuned - baseline, 95% bootstrap interval):"]
    for name, m in report["metrics"].items():
        lines.append(f"  {name:<17} base {m['base']:9.4f}  fine-tuned {m['finetuned']:9.4f}  diff {m['diff']:+9.4f} "
                     f"[{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]  {m['verdict']}")
    for name, sig in report.get("signatures", {}).items():
        lines.append(f"  {name} signature: {sig}")
    lines += [f"  note: {n}" for n in report.get("notes", [])]
    code = report.get("code")
    if code and code.get("tests_disabled"):
        lines.append(f"  note: {code['tests_disabled']}")
    elif code and code.get("with_tests"):
        lines.append(f"  code tests ran in the sandbox at isolation level {code['isolation']}.")
    gap = report.get("train_test_gap")
    if gap:
        f, b = gap["finetuned"], gap["base"]
        lines.append(f"Train-test gap: fine-tuned perplexity test/train {f['ratio']:.2f}x [{f['ci_low']:.2f}, "
                     f"{f['ci_high']:.2f}] (baseline {b['ratio']:.2f}x)." + (f" {gap['warning']}" if gap["warning"]
                                                                               else ""))
    kept = report.get("forgetting")
    if kept:
        p, t = kept["probe_chrf"], kept["general_text_perplexity"]
        lines.append(f"Forgetting check: general probes (chrF) retained {p['retention']:.0%} "
                     f"[{p['ci_low']:.0%}, {p['ci_high']:.0%}]; general text perplexity retained {t['retention']:.0%} "
                     f"[{t['ci_low']:.0%}, {t['ci_high']:.0%}].")
        if kept["warning"]:
            lines.append("  " + kept["warning"])
            lines += [f"  - {r}" for r in kept["remedies"]]
    r = report.get("routing")
    if r:
        lines.append("Hybrid routing: " + routing_sentence(r))
    return "\n".join(lines)


def routing_sentence(r: RoutingReport) -> str:
    """The routing recommendation in words, following its interval."""
    best, gain = r["recommended"], r["gain"]
    interval = f"gain {gain['diff']:+.3f} ROUGE-L, 95% interval {gain['ci_low']:+.3f} to {gain['ci_high']:+.3f}"
    if best["threshold"] == 0:
        return (f"no fallback: routing low-confidence answers to the {routing.K_SHOT}-shot base model is not surely "
                f"better than the fine-tuned model alone (best threshold's {interval}; fine-tuned only "
                f"{r['only_finetuned']:.3f}, few-shot base only {r['only_fallback']:.3f}).")
    return (f"fall back to the {routing.K_SHOT}-shot base model below confidence {best['threshold']}: "
            f"{best['fallback_rate']:.0%} fallback, ROUGE-L {best['quality']:.3f} against {r['only_finetuned']:.3f} "
            f"for the fine-tuned model alone ({interval}).")


def comparable_runs(run: Run, candidates) -> list[Run]:
    """The runs `run` can be evaluated against: other runs trained on the same locked test set (the same split, or
    an augmented child version's split, whose test file is the parent's), so both answer the same questions."""
    split_id = run.config.get("split_id")
    return [r for r in candidates if r.id != run.id and split.same_test_set(split_id, r.config.get("split_id"))]


def eval_dir(run: Run, baseline: str | int = "base") -> Path:
    """Where an evaluation's outputs and report live: eval/ against the base model, eval-vs-run-N/ against run N."""
    baseline = str(baseline)
    return supervisor.run_path(run) / ("eval" if baseline in ("", "base") else f"eval-vs-run-{int(baseline)}")


def load_report(run: Run, baseline: str | int = "base") -> EvalReport | None:
    path = eval_dir(run, baseline) / "report.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def evaluated_baselines(run: Run) -> list[str]:
    """The baselines this run has a report against: "base" and/or run ids."""
    found = ["base"] if (eval_dir(run) / "report.json").is_file() else []
    folder = supervisor.run_path(run)
    found += sorted((p.name.removeprefix("eval-vs-run-") for p in folder.glob("eval-vs-run-*")
                     if (p / "report.json").is_file()), key=int)
    return found


def per_example(run: Run, baseline: str | int = "base") -> list[dict]:
    """Each test example with both answers and its ROUGE-L change, largest regression first."""
    from rouge_score import rouge_scorer  # metric libraries load only when scoring (nltk behind it is slow to import)

    path = eval_dir(run, baseline) / "outputs.jsonl"
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
