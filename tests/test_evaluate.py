"""Evaluation against the base model, end to end on the demo: a short run on the sample, then `studio eval`."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import run_studio
from engine import datasets, demo, evaluate, launcher, runs, split, workspace

pytestmark = pytest.mark.xdist_group("evaluate")  # one worker trains the module's run once


@pytest.fixture(scope="module")
def trained(module_ws, demo_model):
    shutil.copytree(demo_model, workspace.current().demo_model)
    project = demo.ensure_demo(build_model=False)
    made = split.list_splits(datasets.list_versions(project.id)[0].id)[0]
    config = launcher.config_for_split(
        made, str(workspace.current().demo_model), name="eval-test", max_steps=300, learning_rate=3e-3,
        lora_r=32, lora_alpha=64, target_modules=["all-linear"], eval_steps=100, save_steps=100,
        early_stopping=False, wandb_mode="disabled")
    run = runs.wait(runs.launch(config, project.id).id, timeout=300)
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
    assert (f["warning"] is None) == (min(f["probe_chrf"]["retention"], f["general_text_perplexity"]["retention"])
                                      >= 0.9)
    r = report["routing"]
    assert [p["threshold"] for p in r["points"]][0] == 0.0 and r["points"][-1]["fallback_rate"] == 1.0
    rates = [p["fallback_rate"] for p in r["points"]]
    assert rates == sorted(rates) and r["recommended"] in r["points"]
    rule = json.loads((runs.run_path(trained) / "eval" / "routing_rule.json").read_text())
    assert rule["threshold"] == r["recommended"]["threshold"]
    rows = [json.loads(line) for line in (runs.run_path(trained) / "eval" / "outputs.jsonl").read_text().splitlines()]
    assert 0 < rows[0]["finetuned"]["confidence"] <= 1
    assert len(rows) == 60 and {"prompt", "reference", "base", "finetuned"} <= set(rows[0])
    assert rows[0]["finetuned"]["latency_s"] > 0


def test_perplexity_matches_a_direct_computation(trained):
    import math

    import torch

    from engine import generation, scoring

    conv = evaluate.test_conversations(trained, limit=3)
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
    with pytest.raises(runs.RunError):
        evaluate.evaluate_run(99)


def test_evaluate_page_runs_the_evaluation_in_the_background(trained, module_ws):
    import time

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("../app.py", default_timeout=90).run()
    at.switch_page("app_pages/evaluate.py").run()
    assert not at.exception
    # "Evaluate again" when the CLI test of this module already wrote a report
    next(b for b in at.button if b.label in ("Run the evaluation", "Evaluate again")).click().run()
    assert not at.exception
    deadline = time.monotonic() + 240
    while evaluate.background_state(runs.get_run(trained.id))["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(1)
    assert evaluate.background_state(runs.get_run(trained.id))["state"] == "done"
    at.run()
    assert not at.exception
    metrics_table = at.dataframe[0].value
    assert set(metrics_table["metric"]) >= {"rougeL", "perplexity"}
    rouge_row = metrics_table[metrics_table["metric"] == "rougeL"].iloc[0]
    assert "better" in rouge_row["verdict"] and rouge_row["difference"] > 0  # the interval is above zero
    examples = at.dataframe[1].value
    assert list(examples["change"]) == sorted(examples["change"])  # largest regression first
    assert len(at.get("plotly_chart")) == 2  # the changes, and the routing curve


def test_forgetting_summary_warns_only_below_ninety_percent():
    from engine import forgetting

    probes = forgetting.probe_set()
    refs = [c[-1]["content"] for c in probes]
    same = forgetting.summarize(refs, refs, refs, ([10.0] * 8, [20] * 8), ([10.0] * 8, [20] * 8), n_resamples=200)
    assert same["probe_chrf"]["retention"] == pytest.approx(1.0) and same["warning"] is None
    worse = forgetting.summarize(refs, ["I do not know."] * len(refs), refs, ([10.0] * 8, [20] * 8),
                                 ([10.0] * 8, [20] * 8), n_resamples=200)
    assert worse["probe_chrf"]["retention"] < 0.5 and "forgetting" in worse["warning"] and worse["remedies"]
    text = forgetting.summarize(refs, refs, refs, ([10.0] * 8, [20] * 8), ([20.0] * 8, [20] * 8), n_resamples=200)
    assert text["general_text_perplexity"]["retention"] < 0.9 and text["warning"]


def test_routing_curve_recommends_the_best_threshold():
    from engine import routing

    confidence = [0.95, 0.9, 0.5, 0.3, 0.85, 0.2]
    tuned = [0.9, 0.8, 0.1, 0.0, 0.7, 0.1]       # low-confidence answers are the bad ones
    fallback = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    curve = routing.routing_curve(confidence, tuned, fallback)
    best = curve["recommended"]
    assert best["threshold"] in (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85)  # routes exactly the three weak answers
    assert best["fallback_rate"] == 0.5
    assert best["quality"] == pytest.approx((0.9 + 0.8 + 0.7 + 1.5) / 6)
    assert curve["rule"]["fallback_when"] == f"confidence < {best['threshold']}"


def test_a_background_evaluation_can_be_cancelled(trained, module_ws):
    import time

    run = runs.get_run(trained.id)
    evaluate.start_background(trained.id)
    assert evaluate.background_state(run)["state"] == "running"
    evaluate.cancel_background(run)
    deadline = time.monotonic() + 15
    while evaluate.background_state(run)["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert evaluate.background_state(run)["state"] == "cancelled"
