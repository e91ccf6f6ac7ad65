"""Evaluation against the base model, end to end on the demo: a short run on the sample, then `studio eval`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from conftest import ROOT, STUDIO, app_as, eventually, run_studio

from engine.data import demo_project, split, versions
from engine.evaluate import comparison, queue, results
from engine.jobs import supervisor
from engine.store import workspace
from engine.train import launcher

pytestmark = pytest.mark.xdist_group("evaluate")  # one worker trains the module's run once


@pytest.fixture(scope="module")
def trained(module_ws, demo_model):
    shutil.copytree(demo_model, workspace.current().demo_model)
    project = demo_project.ensure_demo(build_model=False)
    made = split.list_splits(versions.list_versions(project.id)[0].id)[0]
    # every setting as recommended: what a user who presses Launch gets
    config = launcher.config_for_split(made, str(workspace.current().demo_model), name="eval-test")
    assert config.technique == "full" and config.max_steps == -1 and config.early_stopping
    run = supervisor.wait(launcher.launch(config, project.id).id, timeout=300)
    assert run.status == "succeeded"
    return run


def test_finetuned_beats_base_on_rouge_l_with_an_interval_above_zero(trained, module_ws):
    proc = run_studio("eval", trained.id, "--json", env_home=module_ws.root, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["n_examples"] == 60
    rouge = report["metrics"]["rougeL"]
    assert rouge["finetuned"] > rouge["base"] and rouge["ci_low"] > 0 and rouge["verdict"] == "better"
    ppl = report["metrics"]["perplexity"]
    assert ppl["finetuned"] < ppl["base"] and ppl["ci_high"] < 0 and ppl["verdict"] == "better"
    assert set(report["metrics"]) >= {"bleu", "chrf", "rougeL", "length", "perplexity"}
    for m in report["metrics"].values():
        assert set(m) == {"base", "finetuned", "diff", "ci_low", "ci_high", "verdict"}
    f = report["forgetting"]
    assert f["probes"] >= 100
    for key in ("probe_chrf", "general_text_perplexity"):
        assert f[key]["ci_low"] <= f[key]["retention"] <= f[key]["ci_high"]
    for key in ("probe_chrf", "general_text_perplexity"):  # the verdict in words follows the interval
        m = f[key]
        assert m["verdict"] == ("forgetting" if m["ci_high"] < 0.9 else "possible_forgetting" if m["retention"] < 0.9
                                else "retained")
    assert (f["verdict"] == "retained") == (f["warning"] is None)
    r = report["routing"]
    assert [p["threshold"] for p in r["points"]][0] == 0.0 and r["points"][-1]["fallback_rate"] == 1.0
    rates = [p["fallback_rate"] for p in r["points"]]
    assert rates == sorted(rates) and r["recommended"] in r["points"]
    rule = json.loads((supervisor.run_path(trained) / "eval" / "routing_rule.json").read_text())
    assert rule["threshold"] == r["recommended"]["threshold"]
    for name in ("latency_s", "tokens_per_second"):  # speed, with intervals too
        m = report["metrics"][name]
        assert m["ci_low"] <= m["diff"] <= m["ci_high"] and m["base"] > 0 and m["finetuned"] > 0
    gap = report["train_test_gap"]
    for name in ("base", "finetuned"):
        g = gap[name]
        assert g["ci_low"] <= g["ratio"] <= g["ci_high"]
        assert g["ratio"] == pytest.approx(g["test_perplexity"] / g["train_perplexity"])
    assert gap["finetuned"]["test_perplexity"] == pytest.approx(report["metrics"]["perplexity"]["finetuned"])
    listed = json.loads(run_studio("runs", "--json", env_home=module_ws.root).stdout)
    job = next(r for r in listed if r["kind"] == "eval")  # it went through the supervisor's queue
    assert job["status"] == "succeeded" and job["step"] == 100
    rows = [json.loads(line) for line in (supervisor.run_path(trained) / "eval" / "outputs.jsonl").read_text().splitlines()]
    assert 0 < rows[0]["finetuned"]["confidence"] <= 1
    assert len(rows) == 60 and {"prompt", "reference", "base", "finetuned"} <= set(rows[0])
    assert rows[0]["finetuned"]["latency_s"] > 0


def test_perplexity_matches_a_direct_computation(trained):
    import math

    import torch

    from engine.evaluate import generation, scoring

    conv = comparison.test_conversations(trained, limit=3)
    model, tok = generation.load(trained.config["base_model"])
    nll, counts = generation.answer_nll(model, tok, conv)
    total_nll, total_tokens = 0.0, 0
    for c in conv:  # one conversation at a time, no padding: the assistant tokens' log-probabilities
        enc = tok.apply_chat_template(c, return_assistant_tokens_mask=True, return_dict=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(input_ids=enc["input_ids"]).logits[0, :-1]
        logp = torch.log_softmax(logits.float(), -1).gather(-1, enc["input_ids"][0, 1:, None]).squeeze(-1)
        mask = torch.as_tensor(enc["assistant_masks"])[0, 1:].bool() if torch.as_tensor(
            enc["assistant_masks"]).dim() == 2 else torch.as_tensor(enc["assistant_masks"])[1:].bool()
        total_nll += float(-(logp[mask]).sum())
        total_tokens += int(mask.sum())
    assert sum(counts) == total_tokens
    assert scoring.perplexity(nll, counts) == pytest.approx(math.exp(total_nll / total_tokens), rel=1e-4)


def test_only_succeeded_runs_with_a_split_are_evaluated(module_ws):
    from engine.evaluate.options import EvalOptions

    with pytest.raises(supervisor.RunError):
        queue.queue(EvalOptions(run_id=99))
    proc = run_studio("eval", "99", env_home=module_ws.root)
    assert proc.returncode != 0 and proc.stderr.strip() == "studio: There is no run 99."


def _wait_job(job_id: int, timeout: float = 240):
    job = supervisor.wait(job_id, timeout=timeout)
    assert job.status not in supervisor.ACTIVE
    return job


def test_evaluate_page_runs_the_evaluation_in_the_background(trained, module_ws):

    at = app_as("analyst", timeout=90).run()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    at.selectbox(key="evaluate_run").set_value(trained.id).run()  # the newest run is selected first
    before = {j.id for j in supervisor.list_runs(trained.project_id, kind="eval")}
    # "Evaluate again" when another test of this module already wrote a report
    next(b for b in at.button if b.label in ("Run the evaluation", "Evaluate again")).click().run()
    assert not at.exception
    job = queue.latest_job(trained.id)
    assert job.id not in before  # the click queued it
    assert _wait_job(job.id).status == "succeeded"
    assert queue.job_state(supervisor.get_run(job.id))["state"] == "succeeded"
    at.run()
    assert not at.exception
    metrics_table = at.dataframe[0].value
    assert set(metrics_table["metric"]) >= {"rougeL", "perplexity"}
    rouge_row = metrics_table[metrics_table["metric"] == "rougeL"].iloc[0]
    assert "better" in rouge_row["verdict"] and rouge_row["difference"] > 0  # the interval is above zero
    examples = at.dataframe[1].value
    assert list(examples["change"]) == sorted(examples["change"])  # largest regression first
    assert len(at.get("plotly_chart")) == 2  # the changes, and the routing curve
    assert any("Train-test gap" in h.value for h in at.subheader)


def test_forgetting_summary_warns_only_below_ninety_percent():
    from engine.evaluate import forgetting

    probes = forgetting.probe_set()
    refs = [c[-1]["content"] for c in probes]
    same = forgetting.summarize(refs, refs, refs, ([10.0] * 8, [20] * 8), ([10.0] * 8, [20] * 8), n_resamples=200)
    assert same["probe_chrf"]["retention"] == pytest.approx(1.0) and same["warning"] is None
    assert same["verdict"] == "retained"
    worse = forgetting.summarize(refs, ["I do not know."] * len(refs), refs, ([10.0] * 8, [20] * 8),
                                 ([10.0] * 8, [20] * 8), n_resamples=200)
    assert worse["probe_chrf"]["retention"] < 0.5 and "forgetting" in worse["warning"] and worse["remedies"]
    text = forgetting.summarize(refs, refs, refs, ([10.0] * 8, [20] * 8), ([20.0] * 8, [20] * 8), n_resamples=200)
    assert text["general_text_perplexity"]["retention"] < 0.9 and text["warning"] and text["verdict"] == "forgetting"
    # a point under 90% whose interval still reaches it: "possible forgetting, collect more probes", no remedies
    noisy_base = ([10.0, 30.0, 12.0, 28.0, 11.0, 29.0, 10.5, 30.5], [20] * 8)
    noisy_tuned = ([10.0, 40.0, 10.0, 38.0, 11.0, 35.0, 10.0, 33.0], [20] * 8)
    maybe = forgetting.summarize(refs, refs, refs, noisy_base, noisy_tuned, n_resamples=400)
    t = maybe["general_text_perplexity"]
    assert t["retention"] < 0.9 <= t["ci_high"], t
    assert maybe["verdict"] == "possible_forgetting" and maybe["warning"].startswith("Possible forgetting")
    assert "collect more probes" in maybe["warning"] and maybe["remedies"] == []


def test_routing_curve_recommends_the_best_threshold():
    from engine.evaluate import routing

    confidence = [0.95, 0.9, 0.5, 0.3, 0.85, 0.2] * 10
    tuned = [0.9, 0.8, 0.1, 0.0, 0.7, 0.1] * 10       # low-confidence answers are the bad ones
    fallback = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5] * 10
    curve = routing.routing_curve(confidence, tuned, fallback)
    best = curve["recommended"]
    assert best["threshold"] in (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85)  # routes exactly the three weak answers
    assert best["fallback_rate"] == 0.5
    assert best["quality"] == pytest.approx((0.9 + 0.8 + 0.7 + 1.5) / 6)
    assert curve["rule"]["fallback_when"] == f"confidence < {best['threshold']}"
    assert curve["gain"]["ci_low"] > 0 and curve["recommendation"].startswith("fall back below confidence")


def test_routing_recommends_no_fallback_unless_surely_better():
    from engine.evaluate import routing

    # on six examples the best threshold looks better, but the interval of its gain reaches zero
    few = routing.routing_curve([0.95, 0.9, 0.5, 0.8, 0.85, 0.9], [0.9, 0.8, 0.1, 0.7, 0.7, 0.8], [0.5] * 6)
    assert few["gain"]["ci_low"] <= 0 < few["gain"]["diff"]
    assert few["recommended"]["threshold"] == 0 and few["recommendation"] == "no fallback"
    assert few["rule"]["fallback_when"] == "never"
    assert results.routing_sentence(few).startswith("no fallback: routing low-confidence answers")
    # a fallback that is worse everywhere is never recommended either
    worse = routing.routing_curve([0.1, 0.2, 0.3] * 20, [0.6, 0.7, 0.8] * 20, [0.1, 0.1, 0.1] * 20)
    assert worse["recommendation"] == "no fallback"


def test_the_time_left_counts_down_between_progress_events():
    from engine.evaluate.progress import time_left

    # 25% done after 60 s: 180 s left at that event; 30 s later, 150 s; it never sits still
    assert time_left(0, 60, 0.25, 60) == 180 and time_left(0, 60, 0.25, 90) == 150
    assert time_left(0, 60, 0.25, 230) == 10
    assert time_left(0, 60, 0.25, 250) == pytest.approx(250 * 3)  # past the estimate: estimated again, not 0
    assert time_left(0, 60, 0.25, 300) > time_left(0, 60, 0.25, 250)


def test_an_evaluation_can_be_cancelled_and_the_previous_report_stays(trained, module_ws):
    from engine.evaluate.options import EvalOptions

    before = results.load_report(trained)
    job = queue.queue(EvalOptions(run_id=trained.id, max_new_tokens=64))
    eventually(lambda: supervisor.reconcile() or supervisor.get_run(job.id).status != "queued", 60, 0.2)
    supervisor.cancel(job.id)
    job = _wait_job(job.id, timeout=30)
    assert job.status == "cancelled"
    assert queue.job_state(job)["state"] == "cancelled"
    assert results.load_report(trained) == before


@pytest.fixture(scope="module")
def second(trained):
    """A second, shorter LoRA run on the same split (recommended LoRA settings): a baseline that is not the base
    model, and an adapter to merge."""
    config = launcher.config_for_split(
        split.list_splits(versions.list_versions(trained.project_id)[0].id)[0],
        trained.config["base_model"], name="eval-short", technique="lora", max_steps=20, wandb_mode="disabled")
    run = supervisor.wait(launcher.launch(config, trained.project_id).id, timeout=300)
    assert run.status == "succeeded"
    return run


def test_evaluations_queue_one_per_device_and_compare_with_another_run(trained, second, module_ws):
    from engine.evaluate.options import EvalOptions

    first = queue.queue(EvalOptions(run_id=trained.id, limit=6, max_new_tokens=16))
    other = queue.queue(EvalOptions(run_id=trained.id, baseline=str(second.id), limit=6, max_new_tokens=16))
    assert other.id != first.id and other.device == first.device
    assert supervisor.get_run(first.id).status == "running" and supervisor.get_run(other.id).status == "queued"
    assert queue.job_state(supervisor.get_run(other.id))["label"].startswith("waiting for the device")
    # a second click while it is active returns the same job
    assert queue.queue(EvalOptions(run_id=trained.id, baseline=str(second.id), limit=6)).id == other.id
    first, other = _wait_job(first.id), _wait_job(other.id)
    assert first.status == other.status == "succeeded"
    assert other.started_at >= first.finished_at  # one job per device: the second started after the first ended
    report = results.load_report(trained, second.id)
    assert report["baseline"] == f"run {second.id}" and report["n_examples"] == 6
    assert "routing" not in report and "perplexity" in report["metrics"]  # same base model: comparable
    assert results.evaluated_baselines(supervisor.get_run(trained.id))[-1] == str(second.id)
    rows = results.per_example(trained, second.id)
    assert len(rows) == 6


def test_the_cli_evaluates_several_runs_one_after_another(trained, second, module_ws):
    proc = run_studio("eval", trained.id, second.id, "--limit", "2", "--max-new-tokens", "8", "--json",
                      env_home=module_ws.root, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    assert [r["run"] for r in reports] == [trained.id, second.id] and all(r["n_examples"] == 2 for r in reports)
    jobs = [j for j in supervisor.list_runs(trained.project_id, kind="eval") if j.config.get("limit") == 2]
    first, later = sorted(jobs, key=lambda j: j.id)[-2:]
    assert later.started_at >= first.finished_at


def test_a_baseline_must_share_the_split_and_be_another_finished_run(trained, module_ws):
    from engine.evaluate.options import EvalOptions

    with pytest.raises(comparison.EvalError, match="own baseline"):
        queue.queue(EvalOptions(run_id=trained.id, baseline=str(trained.id)))
    with pytest.raises(comparison.EvalError, match='"base" or a run id'):
        queue.queue(EvalOptions(run_id=trained.id, baseline="yesterday"))
    with pytest.raises(comparison.EvalError, match="no run 999"):
        queue.queue(EvalOptions(run_id=trained.id, baseline="999"))


def test_a_json_schema_is_checked_before_the_job_is_queued(trained, module_ws, tmp_path):
    from engine.evaluate.options import EvalOptions

    bad = tmp_path / "schema.json"
    bad.write_text('{"type": "objekt"}')
    with pytest.raises(comparison.EvalError, match="JSON Schema is not valid"):
        queue.queue(EvalOptions(run_id=trained.id, json_schema=str(bad)))
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": ')
    proc = run_studio("eval", trained.id, "--schema", broken, env_home=module_ws.root)
    assert proc.returncode != 0 and "line 1" in proc.stderr and "Traceback" not in proc.stderr


def test_playground_streams_both_answers_and_they_match_greedy_generation(trained, module_ws):
    from engine.evaluate import generation, playground

    question = "How do I reset my password?"
    system = playground.default_system(trained)
    assert system  # the sample's conversations carry a system prompt
    events = list(playground.stream(trained.id, question, system, max_new_tokens=40))
    sides = [side for side, _, stats in events if not stats]
    assert sides == sorted(sides, key=playground.SIDES.index)  # the base answer first, then the fine-tuned one
    assert sides.count("base") > 1 and sides.count("finetuned") > 1  # streamed piece by piece, not at the end
    finals = {side: (text, stats) for side, text, stats in events if stats}
    assert set(finals) == {"base", "finetuned"} and all(s["new_tokens"] > 0 for _, s in finals.values())
    prompt = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    for side, adapter in (("base", None), ("finetuned", supervisor.run_path(trained) / "final")):
        model, tok = generation.load(trained.config["base_model"], adapter)
        expected = generation.generate(model, tok, [prompt], max_new_tokens=40)[0].text
        assert finals[side][0].strip() == expected
    with pytest.raises(playground.PlaygroundError, match="prompt"):
        next(playground.stream(trained.id, "   "))


def test_playground_page_shows_both_answers_as_text(trained, module_ws):

    at = app_as("analyst", timeout=120).run()
    at.switch_page("pages/playground.py").run()
    assert not at.exception
    at.text_area(key="playground_prompt").input("<script>alert(1)</script> What are your opening hours?")
    at.button[0].click().run()
    assert not at.exception and not at.error
    texts = [t.value for t in at.main.text]  # the base answer, then the fine-tuned one
    assert len(texts) == 2 and all(texts)
    assert any("tokens/s" in c.value for c in at.caption)


def test_evaluate_page_sends_an_uploaded_general_set_and_schema_to_the_job(trained, second, module_ws):
    general = "".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
                      + "\n" for q, a in (("What is 2 + 2?", "4"), ("Capital of France?", "Paris"),
                                          ("Opposite of hot?", "Cold")))
    schema = json.dumps({"type": "object", "required": ["answer"]})
    at = app_as("analyst", timeout=90).run()
    at.switch_page("pages/evaluate.py").run()
    at.selectbox(key="evaluate_run").set_value(trained.id).run()  # the newest run is selected first
    at.file_uploader(key="evaluate_general").set_value(("general.jsonl", general.encode(), "application/jsonl"))
    at.file_uploader(key="evaluate_schema").set_value(("schema.json", schema.encode(), "application/json"))
    at.number_input(key="evaluate_limit").set_value(4)
    at.multiselect(key="evaluate_also").set_value([second.id])  # and a second run, queued after the first
    at.run()
    next(b for b in at.button if b.label in ("Run the evaluation", "Evaluate again")).click().run()
    assert not at.exception and not at.error
    job = queue.latest_job(trained.id)
    uploads = module_ws.uploads.resolve()
    assert job.config["limit"] == 4
    assert str(uploads) in job.config["general"] and str(uploads) in job.config["json_schema"]
    assert _wait_job(job.id).status == "succeeded"
    report = results.load_report(trained)
    assert report["n_examples"] == 4 and report["forgetting"]["probes"] == 3
    other = queue.latest_job(second.id)
    assert other.config["limit"] == 4 and _wait_job(other.id).status == "succeeded"
    assert results.load_report(second)["forgetting"]["probes"] == 3
    assert report["metrics"]["schema_valid"]["base"] == 0.0  # no answer of the demo model is a JSON object


def test_job_progress_reads_the_fraction_and_estimates_the_time_left(tmp_path):
    from engine.evaluate.progress import read_progress

    assert read_progress(tmp_path) == (0.0, "starting")
    (tmp_path / "metrics.jsonl").write_text(
        json.dumps({"event": "start", "time": 100.0}) + "\n"
        + json.dumps({"event": "progress", "time": 130.0, "step": 25, "fraction": 0.25, "label": "base: 8/32"})
        + "\n")
    fraction, label = read_progress(tmp_path, now=130.0)
    assert fraction == 0.25 and label == "base: 8/32 · about 1 min 30 s left"  # 30 s for a quarter: 90 s to go
    assert read_progress(tmp_path, now=160.0)[1] == "base: 8/32 · about 1 min 00 s left"  # counting down


def test_a_merged_lora_answers_like_the_adapter(second):
    from engine.evaluate import generation

    final = supervisor.run_path(second) / "final"
    prompts = [generation.prompt_of(c) for c in comparison.test_conversations(second, limit=6)]
    merged, tok = generation.load(second.config["base_model"], final, merge=True)
    adapter, _ = generation.load(second.config["base_model"], final)
    assert not hasattr(merged, "peft_config") and hasattr(adapter, "peft_config")  # the LoRA is folded in
    assert [a.text for a in generation.generate(merged, tok, prompts, max_new_tokens=24)] == \
        [a.text for a in generation.generate(adapter, tok, prompts, max_new_tokens=24)]


def test_a_short_cli_run_with_recommended_settings_beats_its_base(demo_model, ws, tmp_path):
    """`studio train --max-steps 120` on generated learnable data (400 support conversations), every other setting
    as recommended, then `studio eval`: ROUGE-L better with an interval above zero, and the answers are answers
    (they end at the end-of-turn token and never repeat the system prompt)."""
    from engine.demo import sample

    data = tmp_path / "support.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sample.generate(400, seed=5)))
    proc = run_studio("train", "--model", demo_model, "--data", data, "--max-steps", "120", env_home=ws.root,
                      timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = supervisor.list_runs()[0]
    assert run.status == "succeeded" and run.config["technique"] == "full"  # recommended for a 0.2M model
    proc = run_studio("eval", run.id, "--json", env_home=ws.root, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rouge = json.loads(proc.stdout)["metrics"]["rougeL"]
    assert rouge["ci_low"] > 0 and rouge["verdict"] == "better", rouge
    rows = [json.loads(line) for line in (results.eval_dir(run) / "outputs.jsonl").read_text().splitlines()]
    system = rows[0]["prompt"][0]["content"]
    answers = [r["finetuned"] for r in rows]
    assert not any(system in a["answer"] for a in answers)
    assert sum(a["new_tokens"] < 128 for a in answers) >= 0.9 * len(answers)  # they stop at <|im_end|>


def test_studio_chat_answers_from_the_command_line(trained, module_ws):
    """`studio chat RUN`: the playground from the command line (its stream is checked against greedy generation
    above): one JSON object per prompt read from standard input, blank lines skipped, both sides answered."""
    from engine.evaluate import playground

    proc = subprocess.run([*STUDIO, "chat", str(trained.id), "--max-new-tokens", "8", "--json"], cwd=ROOT,
                          input="\nHow do I reset my password?\n\n", capture_output=True, text=True, timeout=300,
                          env={**os.environ, "STUDIO_HOME": str(module_ws.root)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [a["prompt"] for a in answers] == ["How do I reset my password?"]
    assert all(answers[0][side]["new_tokens"] > 0 and answers[0][side]["text"] for side in playground.SIDES)
    missing = run_studio("chat", "999", "--prompt", "hi", env_home=module_ws.root)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and len(missing.stderr.splitlines()) == 1
