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

from engine.evaluate import forgetting

from engine.evaluate import generation

from engine.evaluate import routing

from engine.jobs import supervisor

from engine.evaluate import scoring

from engine.data import split
from engine.data.loading import load_records
from engine.data.quality import usable
from engine.store.tables import Run

Progress = Callable[[float, str], None]


class EvalError(ValueError):
    pass


def split_part(run: Run, part: str, limit: int | None = None) -> list[list[dict]]:
    return split_examples(run, part, limit)[0]


def split_examples(run: Run, part: str, limit: int | None = None) -> tuple[list[list[dict]], list[dict]]:
    """(conversations, the records' other fields, e.g. "tests") of one part of the run's split."""
    from engine.store import db
    from engine.store.tables import Split

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
    records = records[:limit] if limit else records
    return [[{"role": m["role"], "content": m["content"]} for m in r.messages] for r in records], \
        [dict(r.extra) for r in records]


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


def load_schema(path: Path | str) -> dict:
    """A JSON Schema from a file, checked against its meta-schema; one sentence when it is not one."""
    import jsonschema

    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except (OSError, UnicodeDecodeError) as err:
        raise EvalError(f"The JSON Schema file {path} cannot be read ({err}).") from None
    except json.JSONDecodeError as err:
        raise EvalError(f"The JSON Schema file is not JSON (line {err.lineno}: {err.msg}).") from None
    except jsonschema.SchemaError as err:
        raise EvalError(f"The JSON Schema is not valid: {err.message}.") from None
    return schema


def baseline_run(run: Run, baseline: str) -> Run | None:
    """None for the base model, or the other run to compare with (finished, on the same locked test split)."""
    if baseline in ("", "base"):
        return None
    if not str(baseline).isdigit():
        raise EvalError(f'The baseline must be "base" or a run id, not {baseline!r}.')
    try:
        other = supervisor.get_run(int(baseline))
    except supervisor.RunError as err:
        raise EvalError(str(err)) from None
    if other.id == run.id:
        raise EvalError("A run cannot be its own baseline.")
    if other.kind != "train" or other.status != "succeeded":
        raise EvalError(f"Run {other.id} is not a succeeded training run, so it cannot be the baseline.")
    if other.config.get("split_id") != run.config.get("split_id"):
        raise EvalError(f"Run {other.id} was trained on another split, so the two runs have no common locked test "
                        "set; compare runs of the same split.")
    return other


def check_run(run_id: int) -> tuple[Run, Path]:
    run = supervisor.get_run(run_id)
    if run.kind != "train":
        raise EvalError(f"Job {run_id} is an evaluation, not a training run.")
    if run.status != "succeeded":
        raise EvalError(f"Run {run_id} is {run.status}; only a succeeded run can be evaluated.")
    final = supervisor.run_path(run) / "final"
    if not final.is_dir():
        raise EvalError(f"Run {run_id} has no saved model in {final}.")
    return run, final


def evaluate_run(options, progress: Progress | None = None) -> dict:
    """Evaluate a run (options: engine.evaluate.job.EvalOptions) against its baseline; saves and returns the report."""
    step = progress or (lambda fraction, label: None)
    run, final = check_run(options.run_id)
    other = baseline_run(run, options.baseline)
    schema = load_schema(options.json_schema) if options.json_schema else None
    convs, extras = split_examples(run, "test", options.limit)
    prompts = [generation.prompt_of(c) for c in convs]
    refs = [c[-1]["content"] for c in convs]
    train_sample = split_part(run, "train", len(convs))  # as many training examples, for the train-test gap
    base_model = run.config["base_model"]
    if other is None:
        models = (("base", base_model, None), ("finetuned", base_model, final))
    else:
        models = (("base", other.config["base_model"], supervisor.run_path(other) / "final"),
                  ("finetuned", base_model, final))
    probes = general_set(options.general)
    probe_prompts = [generation.prompt_of(c) for c in probes]
    bs, new_tokens = options.batch_size, options.max_new_tokens
    outputs, nll, train_nll, probe_answers, text_nll = {}, {}, {}, {}, {}
    for k, (name, model_id, adapter) in enumerate(models):
        step(0.05 + 0.45 * k, f"Loading the {name} model")
        model, tokenizer = generation.load(model_id, adapter, merge=True)

        def report(done: int, total: int, k=k, name=name) -> None:
            step(0.05 + 0.45 * k + 0.3 * done / total, f"{name}: {done}/{total} answers")

        outputs[name] = generation.generate(model, tokenizer, prompts, bs, new_tokens, progress=report,
                                            confidence=name == "finetuned")
        if name == "base" and other is None:  # the routing fallback: the base model with a few training examples
            step(0.3, "base: few-shot answers for the routing analysis")
            shots = split_part(run, "train", routing.K_SHOT)
            outputs["fallback"] = generation.generate(
                model, tokenizer, [routing.few_shot_prompt(shots, p) for p in prompts], bs, new_tokens)
        step(0.38 + 0.45 * k, f"{name}: perplexity of the reference answers (test and training examples)")
        nll[name] = generation.answer_nll(model, tokenizer, convs, bs)
        train_nll[name] = generation.answer_nll(model, tokenizer, train_sample, bs)
        step(0.43 + 0.45 * k, f"{name}: general-skills probes")
        probe_answers[name] = [a.text for a in generation.generate(model, tokenizer, probe_prompts, bs, 48)]
        text_nll[name] = generation.text_nll(model, tokenizer, forgetting.GENERAL_TEXT, bs)
        del model
    step(0.92, "Scoring")
    base_text = [a.text for a in outputs["base"]]
    tuned_text = [a.text for a in outputs["finetuned"]]
    task = options.task
    metrics = scoring.compare(base_text, tuned_text, refs, task)
    same_tokenizer = models[0][1] == models[1][1]
    if same_tokenizer:  # perplexities under different tokenizers are not comparable
        metrics["perplexity"] = scoring.compare_perplexity(nll["base"], nll["finetuned"])
    if schema is not None:
        metrics["schema_valid"] = scoring.paired_bootstrap(scoring.schema_metric(schema), base_text, tuned_text, refs)
    code = None
    if task == "code":
        code = code_report(base_text, tuned_text, extras, step, options.allow_weak_sandbox)
        metrics.update(code.pop("metrics"))
    metrics.update(scoring.compare_speed(outputs["base"], outputs["finetuned"]))
    forgetting_report = forgetting.summarize(probe_answers["base"], probe_answers["finetuned"],
                                             [c[-1]["content"] for c in probes], text_nll["base"],
                                             text_nll["finetuned"])
    report = {
        "run": run.id, "base_model": base_model, "baseline": "base" if other is None else f"run {other.id}",
        "baseline_model": models[0][1] if other is None else f"run {other.id} ({other.name})",
        "n_examples": len(convs), "task": task, "metrics": metrics, "forgetting": forgetting_report,
        "train_test_gap": gap_report(train_nll, nll),
        "generated_tokens_per_second": {n: sum(a.new_tokens for a in o) / max(sum(a.latency_s for a in o), 1e-9)
                                        for n, o in outputs.items()},
        "latency_s_per_example": {n: sum(a.latency_s for a in o) / len(o) for n, o in outputs.items()},
        "signatures": {name: scoring.sacrebleu_signature(name) for name in ("bleu", "chrf") if name in metrics},
        "bootstrap": {"resamples": scoring.N_RESAMPLES, "seed": scoring.SEED, "interval": "95% percentile"},
    }
    if not same_tokenizer:
        report["notes"] = ["Perplexity is not compared: the two models use different tokenizers."]
    if schema is not None:
        report["json_schema"] = str(options.json_schema)
    if code is not None:
        report["code"] = code
    if other is None:
        rouge = scoring.get_metric("rougeL")
        report["routing"] = routing.routing_curve(
            [a.confidence if a.confidence is not None else 0.0 for a in outputs["finetuned"]],
            list(rouge.stats(tuned_text, refs)[:, 0]),
            list(rouge.stats([a.text for a in outputs["fallback"]], refs)[:, 0]))
    save(eval_dir(run, options.baseline), convs, outputs, report)
    step(1.0, "Done")
    return report


def gap_report(train_nll: dict, test_nll: dict) -> dict:
    """Perplexity on training examples against unseen test examples, for each model. The base model never saw
    either, so its ratio is the control: a fine-tuned ratio far above it means memorization."""
    out = {}
    for name in ("base", "finetuned"):
        out[name] = scoring.perplexity_ratio(test_nll[name], train_nll[name])
    ratio, control = out["finetuned"]["ratio"], out["base"]["ratio"]
    out["warning"] = None
    if out["finetuned"]["ci_low"] > control * GAP_WARN:
        out["warning"] = (f"The fine-tuned model's perplexity is {ratio:.2f}x higher on unseen test examples than on "
                          f"its training examples (the base model: {control:.2f}x): it has memorized part of its "
                          "training data. Lower the epochs or learning rate, keep early stopping on, or add data.")
    return out


GAP_WARN = 1.25  # warn when the fine-tuned test/train perplexity ratio is surely 25% above the base model's


def code_report(base: list[str], tuned: list[str], extras: list[dict], step: Progress,
                allow_weak_sandbox: bool = False) -> dict:
    """Compile rate (paired over the answers a compiler can check) and, where examples carry "tests", the share of
    answers whose code passes them in the sandbox (not run at all when there is no real sandbox here, unless the
    weak mode is allowed)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from engine.evaluate import code_checks

    from engine.evaluate import sandbox

    step(0.93, "Compiling the code answers")
    cb = [code_checks.compiles(a) for a in base]
    cf = [code_checks.compiles(a) for a in tuned]
    both = [i for i in range(len(base)) if cb[i] is not None and cf[i] is not None]
    metrics, out = {}, {"languages_checked": code_checks.checkable_languages(), "compile_checked": len(both),
                        "isolation": sandbox.level()}
    mean = scoring.MEAN
    if both:
        metrics["compiles"] = scoring.bootstrap_stats(mean.with_name("compiles"),
                                                      np.array([[cb[i], 1.0] for i in both]),
                                                      np.array([[cf[i], 1.0] for i in both]))
    with_tests = [i for i, e in enumerate(extras) if isinstance(e.get("tests"), str) and e["tests"].strip()]
    out["with_tests"] = len(with_tests)
    if with_tests and not code_checks.tests_enabled(allow_weak_sandbox):
        out["tests_disabled"] = code_checks.DISABLED
    elif with_tests:
        step(0.95, f"Running the tests of {len(with_tests)} examples in the sandbox")
        jobs = [(a[i], extras[i]["tests"]) for a in (base, tuned) for i in with_tests]
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            results = list(pool.map(lambda job: code_checks.run_tests(*job, allow_weak=allow_weak_sandbox), jobs))
        n = len(with_tests)
        pb = np.array([[float(r["passed"]), 1.0] for r in results[:n]])
        pf = np.array([[float(r["passed"]), 1.0] for r in results[n:]])
        metrics["tests_pass"] = scoring.bootstrap_stats(mean.with_name("tests_pass"), pb, pf)
        out["test_failures"] = {"base": [r["reason"] for r in results[:n] if not r["passed"]][:20],
                                "finetuned": [r["reason"] for r in results[n:] if not r["passed"]][:20]}
    out["metrics"] = metrics
    return out


def report_path(report: dict) -> Path:
    return eval_dir(supervisor.get_run(report["run"]), report.get("baseline", "base").replace("run ", "")) / "report.json"


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
    part = folder / "report.json.part"
    part.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(part, folder / "report.json")
    if "routing" in report:
        (folder / "routing_rule.json").write_text(json.dumps(report["routing"]["rule"], indent=2) + "\n",
                                                  encoding="utf-8")


def render(report: dict) -> str:
    against = "its base model" if report.get("baseline", "base") == "base" else report["baseline_model"]
    lines = [f"Run {report['run']} against {against} on {report['n_examples']} locked test examples "
             "(fine-tuned - baseline, 95% bootstrap interval):"]
    for name, m in report["metrics"].items():
        lines.append(f"  {name:<17} base {m['base']:9.4f}  fine-tuned {m['finetuned']:9.4f}  diff {m['diff']:+9.4f} "
                     f"[{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]  {m['verdict']}")
    for name, sig in report.get("signatures", {}).items():
        lines.append(f"  {name} signature: {sig}")
    lines += [f"  note: {n}" for n in report.get("notes", [])]
    code = report.get("code") or {}
    if code.get("tests_disabled"):
        lines.append(f"  note: {code['tests_disabled']}")
    elif code.get("with_tests"):
        lines.append(f"  code tests ran in the sandbox at isolation level {code['isolation']}.")
    gap = report.get("train_test_gap")
    if gap:
        f, b = gap["finetuned"], gap["base"]
        lines.append(f"Train-test gap: fine-tuned perplexity test/train {f['ratio']:.2f}x [{f['ci_low']:.2f}, "
                     f"{f['ci_high']:.2f}] (baseline {b['ratio']:.2f}x)." + (f" {gap['warning']}" if gap["warning"]
                                                                               else ""))
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
        lines.append("Hybrid routing: " + routing_sentence(r))
    return "\n".join(lines)


def routing_sentence(r: dict) -> str:
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


def eval_dir(run: Run, baseline: str | int = "base") -> Path:
    """Where an evaluation's outputs and report live: eval/ against the base model, eval-vs-run-N/ against run N."""
    baseline = str(baseline)
    return supervisor.run_path(run) / ("eval" if baseline in ("", "base") else f"eval-vs-run-{int(baseline)}")


def load_report(run: Run, baseline: str | int = "base") -> dict | None:
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
    from rouge_score import rouge_scorer

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


def queue(options, request_key: str | None = None) -> Run:
    """Queue an evaluation job with the supervisor (one job per device, after any training run on it)."""
    from engine.evaluate.job import EvalOptions

    options = EvalOptions.model_validate(options.model_dump() if hasattr(options, "model_dump") else options)
    run, _ = check_run(options.run_id)
    baseline_run(run, options.baseline)
    if options.json_schema:
        load_schema(options.json_schema)
    if options.general:
        general_set(options.general)
    active = latest_job(run.id, options.baseline)
    if active is not None and active.status in supervisor.ACTIVE:
        return active  # a second click while it runs starts nothing
    if options.task == "chat" and run.project_id:
        from engine.store import projects

        options.task = projects.get_project(run.project_id).task_type or "chat"
    options.name = options.name or (f"eval of run {run.id}" + ("" if options.baseline == "base"
                                                              else f" vs run {options.baseline}"))
    return supervisor.launch(options, ["{python}", "-m", "engine.evaluate.job", "{run_dir}"], run.project_id,
                             request_key=request_key, kind="eval", target_run_id=run.id, device=run.device)


def latest_job(run_id: int, baseline: str | int = "base") -> Run | None:
    from sqlalchemy import select

    from engine.store import db

    with db.session() as s:
        jobs = list(s.scalars(select(Run).where(Run.kind == "eval", Run.target_run_id == run_id)
                              .order_by(Run.id.desc())))
    return next((j for j in jobs if str(j.config.get("baseline", "base")) == str(baseline)), None)


def job_state(job: Run | None) -> dict:
    """{"state": none|queued|running|succeeded|failed|cancelled, "progress", "label"} of an evaluation job."""
    from engine.evaluate.job import read_progress

    if job is None:
        return {"state": "none", "progress": 0.0, "label": ""}
    progress, label = read_progress(supervisor.run_path(job))
    if job.status == "queued":
        label = "waiting for the device (a training run or another evaluation is using it)"
    elif job.status in ("failed", "cancelled"):
        label = job.error_message or job.status
    return {"state": job.status, "progress": progress, "label": label, "job": job.id}
