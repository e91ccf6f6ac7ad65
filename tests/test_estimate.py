"""The time estimate shown before a launch, and the CPU-only recommendation it holds to minutes."""

from __future__ import annotations

import pytest

from engine.train import estimate, recommend


def facts(params: float, layers: int = 2, hidden: int = 64) -> recommend.ModelFacts:
    return recommend.ModelFacts("m", params, 2048, hidden, layers, None, None, "folder")


PROFILE = {"p99": 400.0, "percentiles": [40.0 + 18 * i for i in range(21)], "mean": 220.0, "source": "test"}


def test_the_estimate_counts_steps_tokens_and_evaluations_at_the_speed_this_machine_achieved(ws):
    # a finished run: 300,000 tokens in 3,000 examples of 100 tokens, in 10 s
    estimate.record_speed("cpu", facts(2e6), "full", tokens=300_000, seconds=10.0, examples=3000)
    speed, basis = estimate.machine_speed("cpu", 2.5e6)
    assert speed == pytest.approx(3 * (2 * 2e6 + 2 * 2 * 64 * 100) * 300_000 / 10)
    assert "achieved on this machine" in basis
    values = {"max_steps": -1, "num_train_epochs": 2.0, "per_device_train_batch_size": 4,
              "gradient_accumulation_steps": 1, "max_length": 256, "eval_steps": 10}
    model = facts(2.5e6)
    got = estimate.estimate(values, "full", model, n_train=100, n_val=10, profile=PROFILE, device="cpu")
    assert got.steps == 50 and got.evaluations == 5 and got.examples_per_step == 4
    cut = [min(p, 256) for p in PROFILE["percentiles"]]  # every example cut at max_length
    tokens = sum((a + b) / 2 for a, b in zip(cut, cut[1:])) / 20
    assert got.tokens_per_example == pytest.approx(tokens)
    forward = 2 * 2.5e6 + 2 * 2 * 64 * tokens  # weights, then attention over the example, per token
    work = 3 * forward * tokens * 4 * 50 + forward * tokens * 10 * 5
    assert got.seconds == pytest.approx(estimate.START_SECONDS["cpu"] + work / speed)
    assert got.sentence().startswith(f"About {got.duration()} on this machine's CPU: 50 steps of 4 examples")
    # a model far from any measured one falls back on the calibrated figure, and says so
    assert "calibrated for" in estimate.machine_speed("cpu", 7e9)[1]
    assert estimate.duration_text(42) == "40 s" and estimate.duration_text(600) == "10 min"
    unknown = estimate.estimate(values, "full", facts(0), n_train=100, n_val=10, profile=PROFILE, device="cpu")
    assert unknown.duration() == "unknown" and "size is unknown" in unknown.sentence()


def test_on_a_cpu_only_machine_the_recommended_run_ends_in_minutes_and_says_why(ws):
    smol = recommend.ModelFacts("smollm2-like", 135e6, 8192, 576, 30, "apache-2.0", True, "folder")
    rec = recommend.recommend_hyperparameters(smol, "lora", 3200, PROFILE["p99"])
    full = estimate.estimate({k: v for k, (v, _) in rec.items()}, "lora", smol, 3200, 400, PROFILE, "cpu")
    assert full.seconds > estimate.CPU_BUDGET_SECONDS  # 2 epochs of 3,200 long examples: far past ten minutes
    held = estimate.fit_to_budget(rec, "lora", smol, 3200, 400, PROFILE)
    steps, why = held["max_steps"]
    assert 10 <= steps < full.steps and "this machine has no GPU" in why and full.duration() in why
    capped = estimate.estimate({k: v for k, (v, _) in held.items()}, "lora", smol, 3200, 400, PROFILE, "cpu")
    assert capped.seconds <= estimate.CPU_BUDGET_SECONDS * 1.05 and capped.steps == steps
    assert capped.evaluations >= 1 and held["save_steps"][0] == held["eval_steps"][0]
    # a run that already fits keeps every epoch
    small = recommend.recommend_hyperparameters(smol, "lora", 40, 60)
    assert "max_steps" not in estimate.fit_to_budget(small, "lora", smol, 40, 5,
                                                     {**PROFILE, "percentiles": [60.0] * 21})


def test_the_demo_recommendation_follows_this_machines_measured_speed(ws, demo_model):
    """The launcher's recommendation (Train page, quick CLI form) for the demo: every epoch while it fits in minutes;
    on a machine measured fifty times slower, held to minutes with the reason; aimed at a GPU, untouched."""
    import shutil

    from engine.data import demo_project, split
    from engine.store import workspace
    from engine.train import launcher

    shutil.copytree(demo_model, workspace.current().demo_model)
    project = demo_project.ensure_demo(build_model=False)
    made = split.splits_of_project(project.id)[0]
    base = str(workspace.current().demo_model)
    assert "max_steps" not in launcher.recommendations(base, made)  # the demo trains every epoch in seconds
    tiny = recommend.model_facts(base)
    # a machine fifty times slower than the calibration: the demo's 480 steps would take about half an hour
    estimate.record_speed("cpu", tiny, "full", tokens=100_000, seconds=300.0, examples=800)
    held = launcher.recommendations(base, made)
    steps, why = held["max_steps"]
    assert "this machine has no GPU" in why
    config = launcher.config_for_split(made, base)
    assert config.max_steps == steps  # the launch takes the recommendation as it is shown
    timing = launcher.time_estimate(config, made)
    assert timing.seconds <= estimate.CPU_BUDGET_SECONDS * 1.05 and "achieved on this machine" in timing.basis
    assert "max_steps" not in launcher.recommendations(base, made, gpu_gb=24)  # aimed at a GPU: every epoch
