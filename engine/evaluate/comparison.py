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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from engine.data import split
from engine.data.chat_template import record_tools
from engine.data.loading import load_records
from engine.data.preferences import feedback_as_pairs
from engine.data.quality import usable
from engine.errors import StudioError
from engine.evaluate import code_checks, forgetting, generation, results, routing, sandbox, scoring, tool_calls
from engine.evaluate.options import EvalOptions
from engine.evaluate.report_types import CodeReport, EvalReport, MetricComparison, TrainTestGap
from engine.jobs import supervisor
from engine.store import db
from engine.store.tables import Run, Split

Progress = Callable[[float, str], None]
_Model = tuple[str, str, Path | None]  # (role, base model id or folder, adapter or fine-tuned folder)


class EvalError(StudioError, ValueError):
    pass


def split_part(run: Run, part: str, limit: int | None = None) -> list[list[dict]]:
    return split_examples(run, part, limit)[0]


def split_examples(run: Run, part: str, limit: int | None = None) -> tuple[list[list[dict]], list[dict]]:
    """(conversations, the records' other fields, e.g. "tests") of one part of the run's split; feedback's answers
    labelled bad become the rejected side of a good answer to the same prompt (never a reference or an example)."""
    convs, extras, _ = _examples(run, part, limit)
    return convs, extras


def _examples(run: Run, part: str, limit: int | None) -> tuple[list[list[dict]], list[dict], int]:
    split_id = run.config.get("split_id")
    if split_id is None:
        raise EvalError(f"Run {run.id} was not trained on a split, so it has no locked test set to evaluate on.")
    with db.session() as s:
        made = s.get(Split, split_id)
    if made is None:
        raise EvalError(f"The split of run {run.id} no longer exists.")
    records, unmatched = feedback_as_pairs(usable(load_records(split.split_path(made, part)).records))
    if not records:
        raise EvalError(f"The {part} split of run {run.id} has no answer to compare with (empty, or only answers "
                        "labelled bad).")
    records = records[:limit] if limit else records
    return [[{k: v for k, v in m.items() if k in _KEPT} for m in r.messages or []] for r in records], \
        [dict(r.extra) for r in records], unmatched


_KEPT = ("role", "content", "tool_calls", "tool_call_id", "name")  # what the prompts and references are built from


def test_conversations(run: Run, limit: int | None = None) -> list[list[dict]]:
    return split_part(run, "test", limit)


def general_set(path: Path | str | None) -> list[list[dict]]:
    """The user's general-skills set (chat JSONL), or the built-in probe set."""
    if path is None:
        return forgetting.probe_set()
    records = usable(load_records(Path(path)).records)
    if not records:
        raise EvalError(f"The general set {path} has no usable examples.")
    return [[{"role": m["role"], "content": m["content"]} for m in r.messages or []] for r in records]


def load_schema(path: Path | str) -> dict:
    """A JSON Schema from a file, checked against its meta-schema; one sentence when it is not one."""
    import jsonschema  # only a structured-output evaluation needs it

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
    if not split.same_test_set(other.config.get("split_id"), run.config.get("split_id")):
        raise EvalError(f"Run {other.id} was trained on a split with another test set, so the two runs have no "
                        "common locked test set; compare runs of the same split (or of an augmented child's).")
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


@dataclass
class _Answers:
    """What both models produced: test answers (and the few-shot fallback's), the perplexity of reference answers on
    test and training examples, the general probes' answers and the general text's perplexity."""
    outputs: dict[str, list[generation.Answer]] = field(default_factory=dict)
    nll: dict[str, generation.Nll] = field(default_factory=dict)
    train_nll: dict[str, generation.Nll] = field(default_factory=dict)
    probe_answers: dict[str, list[str]] = field(default_factory=dict)
    text_nll: dict[str, generation.Nll] = field(default_factory=dict)
    rejected_nll: dict[str, generation.Nll] = field(default_factory=dict)  # preference pairs' rejected answers
    pair_index: list[int] = field(default_factory=list)  # the test example of each pair


def evaluate_run(options: EvalOptions, progress: Progress | None = None) -> EvalReport:
    """Evaluate a run against its baseline; saves and returns the report."""
    step = progress or (lambda fraction, label: None)
    run, final = check_run(options.run_id)
    other = baseline_run(run, options.baseline)
    schema = load_schema(options.json_schema) if options.json_schema else None
    convs, extras, unmatched = _examples(run, "test", options.limit)
    probes = general_set(options.general)
    base_model = run.config["base_model"]
    models: tuple[_Model, _Model]  # (role, base model, adapter or fine-tuned folder)
    if other is None:
        models = (("base", base_model, None), ("finetuned", base_model, final))
    else:
        models = (("base", other.config["base_model"], supervisor.run_path(other) / "final"),
                  ("finetuned", base_model, final))
    tools = [record_tools(e) for e in extras]
    answers = _answer(run, models, convs, tools, probes, options, step, fallback=other is None,
                      pairs=rejected_conversations(convs, extras))
    step(0.92, "Scoring")
    refs = [tool_calls.reference_text(c[-1]) for c in convs]
    base_text = [a.text for a in answers.outputs["base"]]
    tuned_text = [a.text for a in answers.outputs["finetuned"]]
    metrics = scoring.compare(base_text, tuned_text, refs, options.task)
    metrics.update(tool_call_accuracy(convs, base_text, tuned_text))
    metrics.update(preference_accuracy(answers))
    same_tokenizer = models[0][1] == models[1][1]
    if same_tokenizer:  # perplexities under different tokenizers are not comparable
        metrics["perplexity"] = scoring.compare_perplexity(answers.nll["base"], answers.nll["finetuned"])
    if schema is not None:
        metrics["schema_valid"] = scoring.paired_bootstrap(scoring.schema_metric(schema), base_text, tuned_text, refs)
    code = None
    if options.task == "code":
        code_metrics, code = code_report(base_text, tuned_text, extras, step, options.allow_weak_sandbox)
        metrics.update(code_metrics)
    metrics.update(scoring.compare_speed(answers.outputs["base"], answers.outputs["finetuned"]))
    report = _report(run, other, models, options, len(convs), metrics, answers, probes)
    notes = [] if same_tokenizer else ["Perplexity is not compared: the two models use different tokenizers."]
    if unmatched:
        notes.append(f"{unmatched} answers labelled bad have no answer labelled good to the same prompt in the test "
                     "split, so no pair scores them.")
    if notes:
        report["notes"] = notes
    if schema is not None:
        report["json_schema"] = str(options.json_schema)
    if code is not None:
        report["code"] = code
    if other is None:
        rouge = scoring.get_metric("rougeL")
        report["routing"] = routing.routing_curve(
            [a.confidence if a.confidence is not None else 0.0 for a in answers.outputs["finetuned"]],
            list(rouge.stats(tuned_text, refs)[:, 0]),
            list(rouge.stats([a.text for a in answers.outputs["fallback"]], refs)[:, 0]))
    results.save(results.eval_dir(run, options.baseline), convs, answers.outputs, report)
    step(1.0, "Done")
    return report


def tool_call_accuracy(convs: list[list[dict]], base: list[str], tuned: list[str]) -> dict[str, MetricComparison]:
    """The share of test examples whose reference answer is a tool call that each model calls right (function name
    and arguments equal as JSON), paired over those examples; absent when no reference is a tool call."""
    import numpy as np  # the scientific stack costs a second to import: only when statistics are computed

    found = [(i, tool_calls.reference_call(c[-1])) for i, c in enumerate(convs)]
    refs = [(i, r) for i, r in found if r is not None]
    if not refs:
        return {}
    sb = np.array([[tool_calls.call_matches(base[i], r), 1.0] for i, r in refs])
    sf = np.array([[tool_calls.call_matches(tuned[i], r), 1.0] for i, r in refs])
    return {"tool_call_accuracy": scoring.bootstrap_stats(scoring.MEAN.with_name("tool_call_accuracy"), sb, sf)}


def rejected_conversations(convs: list[list[dict]], extras: list[dict]) -> list[tuple[int, list[dict]]]:
    """(index, the conversation with its rejected answer in place of the chosen one) for each preference pair."""
    return [(i, [*c[:-1], {"role": "assistant", "content": e["rejected"]}]) for i, (c, e) in enumerate(zip(convs, extras))
            if isinstance(e.get("rejected"), str) and e["rejected"].strip() and c and c[-1]["role"] == "assistant"]


def preference_accuracy(answers: _Answers) -> dict[str, MetricComparison]:
    """The share of held-out preference pairs where each model gives the chosen answer a higher log-likelihood than
    the rejected one (summed over the answer's tokens, as DPO scores them), paired over the pairs with the bootstrap
    interval every metric gets; absent when the test split holds no pairs."""
    import numpy as np  # the scientific stack costs a second to import: only when statistics are computed

    if not answers.rejected_nll:
        return {}
    scores = {}
    for name in ("base", "finetuned"):
        chosen, rejected = answers.nll[name][0], answers.rejected_nll[name]
        scores[name] = np.array([[float(chosen[i] < nll), 1.0] for i, nll in zip(answers.pair_index,
                                                                                 rejected[0], strict=True)])
    return {"preference_accuracy": scoring.bootstrap_stats(scoring.MEAN.with_name("preference_accuracy"),
                                                           scores["base"], scores["finetuned"])}


def _answer(run: Run, models: tuple[_Model, _Model], convs, tools, probes, options: EvalOptions, step: Progress,
            fallback: bool, pairs: list[tuple[int, list[dict]]] | None = None) -> _Answers:
    """Load each model in turn (one in memory at a time) and collect everything the report needs from it."""
    prompts = [generation.prompt_of(c) for c in convs]
    probe_prompts = [generation.prompt_of(c) for c in probes]
    train_sample = split_part(run, "train", len(convs))  # as many training examples, for the train-test gap
    bs, new_tokens = options.batch_size, options.max_new_tokens
    got = _Answers()
    for k, (name, model_id, adapter) in enumerate(models):
        step(0.05 + 0.45 * k, f"Loading the {name} model")
        model, tokenizer = generation.load(model_id, adapter, merge=True)

        def report(done: int, total: int, k=k, name=name) -> None:
            step(0.05 + 0.45 * k + 0.3 * done / total, f"{name}: {done}/{total} answers")

        got.outputs[name] = generation.generate(model, tokenizer, prompts, bs, new_tokens, progress=report,
                                                confidence=name == "finetuned", tools=tools)
        if name == "base" and fallback:  # the routing fallback: the base model with a few training examples
            step(0.3, "base: few-shot answers for the routing analysis")
            shots = split_part(run, "train", routing.K_SHOT)
            got.outputs["fallback"] = generation.generate(
                model, tokenizer, [routing.few_shot_prompt(shots, p) for p in prompts], bs, new_tokens)
        step(0.38 + 0.45 * k, f"{name}: perplexity of the reference answers (test and training examples)")
        got.nll[name] = generation.answer_nll(model, tokenizer, convs, bs, tools)
        got.train_nll[name] = generation.answer_nll(model, tokenizer, train_sample, bs)
        step(0.43 + 0.45 * k, f"{name}: general-skills probes")
        got.probe_answers[name] = [a.text for a in generation.generate(model, tokenizer, probe_prompts, bs, 48)]
        got.text_nll[name] = generation.text_nll(model, tokenizer, forgetting.GENERAL_TEXT, bs)
        if pairs:
            step(0.44 + 0.45 * k, f"{name}: likelihood of the rejected answers of {len(pairs)} preference pairs")
            got.pair_index = [i for i, _ in pairs]
            got.rejected_nll[name] = generation.answer_nll(model, tokenizer, [c for _, c in pairs], bs,
                                                           [tools[i] for i, _ in pairs])
        del model
    return got


def _report(run: Run, other: Run | None, models: tuple[_Model, _Model], options: EvalOptions, n: int, metrics: dict,
            answers: _Answers, probes) -> EvalReport:
    outputs = answers.outputs
    return {
        "run": run.id, "base_model": run.config["base_model"],
        "baseline": "base" if other is None else f"run {other.id}",
        "baseline_model": models[0][1] if other is None else f"run {other.id} ({other.name})",
        "n_examples": n, "task": options.task, "metrics": metrics,
        "forgetting": forgetting.summarize(answers.probe_answers["base"], answers.probe_answers["finetuned"],
                                           [c[-1]["content"] for c in probes], answers.text_nll["base"],
                                           answers.text_nll["finetuned"]),
        "train_test_gap": gap_report(answers.train_nll, answers.nll),
        "generated_tokens_per_second": {k: sum(a.new_tokens for a in o) / max(sum(a.latency_s for a in o), 1e-9)
                                        for k, o in outputs.items()},
        "latency_s_per_example": {k: sum(a.latency_s for a in o) / len(o) for k, o in outputs.items()},
        "signatures": {k: scoring.sacrebleu_signature(k) for k in ("bleu", "chrf") if k in metrics},
        "bootstrap": {"resamples": scoring.N_RESAMPLES, "seed": scoring.SEED, "interval": "95% percentile"},
    }


def gap_report(train_nll: dict[str, generation.Nll], test_nll: dict[str, generation.Nll]) -> TrainTestGap:
    """Perplexity on training examples against unseen test examples, for each model. The base model never saw
    either, so its ratio is the control: a fine-tuned ratio far above it means memorization."""
    base = scoring.perplexity_ratio(test_nll["base"], train_nll["base"])
    tuned = scoring.perplexity_ratio(test_nll["finetuned"], train_nll["finetuned"])
    ratio, control = tuned["ratio"], base["ratio"]
    warning = None
    if tuned["ci_low"] > control * GAP_WARN:
        warning = (f"The fine-tuned model's perplexity is {ratio:.2f}x higher on unseen test examples than on "
                   f"its training examples (the base model: {control:.2f}x): it has memorized part of its "
                   "training data. Lower the epochs or learning rate, keep early stopping on, or add data.")
    return {"base": base, "finetuned": tuned, "warning": warning}


GAP_WARN = 1.25  # warn when the fine-tuned test/train perplexity ratio is surely 25% above the base model's


def code_report(base: list[str], tuned: list[str], extras: list[dict], step: Progress,
                allow_weak_sandbox: bool = False) -> tuple[dict[str, MetricComparison], CodeReport]:
    """Compile rate (paired over the answers a compiler can check) and, where examples carry "tests", the share of
    answers whose code passes them in the sandbox (not run at all when there is no real sandbox here, unless the
    weak mode is allowed)."""

    import numpy as np  # the scientific stack costs a second to import: only when statistics are computed

    step(0.93, "Compiling the code answers")
    cb = [code_checks.compiles(a) for a in base]
    cf = [code_checks.compiles(a) for a in tuned]
    both = [i for i in range(len(base)) if cb[i] is not None and cf[i] is not None]
    metrics: dict[str, MetricComparison] = {}
    out: CodeReport = {"languages_checked": code_checks.checkable_languages(), "compile_checked": len(both),
                       "isolation": sandbox.level(), "with_tests": 0}
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
            outcomes = list(pool.map(lambda job: code_checks.run_tests(job[0], job[1], allow_weak=allow_weak_sandbox),
                                     jobs))
        n = len(with_tests)
        pb = np.array([[float(r["passed"]), 1.0] for r in outcomes[:n]])
        pf = np.array([[float(r["passed"]), 1.0] for r in outcomes[n:]])
        metrics["tests_pass"] = scoring.bootstrap_stats(mean.with_name("tests_pass"), pb, pf)
        out["test_failures"] = {"base": [r["reason"] for r in outcomes[:n] if not r["passed"]][:20],
                                "finetuned": [r["reason"] for r in outcomes[n:] if not r["passed"]][:20]}
    return metrics, out
