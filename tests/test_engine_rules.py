"""Rules that used to live in the pages and now live in the engine, where the CLI and the pages share them."""

import json

import pytest

from engine.data import split, versions
from engine.demo import sample
from engine.evaluate import forgetting, results
from engine.review import stats
from engine.store import projects
from engine.store.tables import Run
from engine.train import launcher, summary


def _run(run_id: int, split_id) -> Run:
    return Run(id=run_id, name=f"r{run_id}", config={"split_id": split_id}, status="succeeded", kind="train")


def test_a_run_is_compared_only_with_runs_of_the_same_split():
    run = _run(1, 7)
    others = [_run(1, 7), _run(2, 7), _run(3, 8), _run(4, None)]
    assert [r.id for r in results.comparable_runs(run, others)] == [2]
    assert results.comparable_runs(_run(5, None), [_run(6, None)]) == []  # no split: nothing shares its test set


def test_the_best_run_is_chosen_on_validation_loss_never_on_test():
    def made(run_id, losses):
        curves = {"eval": [{"step": i, "eval_loss": v} for i, v in enumerate(losses)], "log": []}
        return summary.RunSummary(run=_run(run_id, 1), curves=curves, progress=1, eta_seconds=None, alarm=None,
                                  best_step=None, stopped_early=False, wandb_url=None, wandb_sync=None)

    best, loss = summary.best_run([made(1, [2.0, 1.5]), made(2, [1.9, 1.2, 1.4]), made(3, [])])
    assert best.run.id == 2 and loss == 1.2
    assert summary.best_run([made(3, [])]) is None


def test_the_retention_threshold_is_one_named_constant():
    assert forgetting.RETENTION_WARNING == 0.9 and "under 90%" in forgetting.RETAINED


def test_per_criterion_win_rates_carry_their_wilson_interval():
    votes = ["finetuned"] * 14 + ["base"] * 4 + ["tie"] * 6
    rows = [{"vote": v, "vote_accuracy": v, "base_words": 1, "finetuned_words": 1, "reviewer": "r"} for v in votes]
    entry = stats.pairwise_results(rows)["per_criterion"]["accuracy"]
    low, high = stats.wilson(14 + 6 / 2, 24)
    assert (entry["ci_low"], entry["ci_high"]) == pytest.approx((low, high))
    assert entry["ci_low"] < entry["win_rate"] < entry["ci_high"]


@pytest.fixture
def a_split(ws, demo_model, tmp_path):
    project = projects.create_project("Rules")
    data = tmp_path / "support.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in sample.generate(120, seed=5)) + "\n")
    return project, split.create_split(versions.import_file(project.id, data, "support.jsonl"), (0.8, 0.0, 0.2)), \
        demo_model


def test_the_train_form_becomes_a_config_with_integers_and_honest_early_stopping(a_split):
    project, made, model = a_split
    assert made.counts["validation"] == 0
    config = launcher.config_from_form(made, str(model), "form run", "lora",
                                       {"early_stopping": True, "lora_r": 16.0, "max_steps": 30.0, "seed": 3.0})
    assert config.early_stopping is False  # no validation part: nothing to stop on
    assert (config.lora_r, config.max_steps, config.seed) == (16, 30, 3)
    assert all(isinstance(v, int) for v in (config.lora_r, config.max_steps, config.seed))


def test_a_launch_request_is_the_same_for_the_same_draft_and_settings(a_split):
    project, made, model = a_split
    config = launcher.config_from_form(made, str(model), "a", "lora", {})
    other = launcher.config_from_form(made, str(model), "a", "lora", {"lora_r": 4})
    key = launcher.request_key(project.id, "draft-1", config)
    assert key == launcher.request_key(project.id, "draft-1", config)
    assert key != launcher.request_key(project.id, "draft-2", config)
    assert key != launcher.request_key(project.id, "draft-1", other)


def test_jobs_import_the_studio_from_the_folder_that_holds_the_engine_package(ws):
    """A job's PYTHONPATH starts at the folder holding `engine` (the checkout, or site-packages), never at engine/
    itself, whose modules would shadow the standard library's: engine/numbers.py once broke every job's
    `import decimal` that way."""
    import os

    from conftest import ROOT

    from engine.jobs import supervisor

    first = supervisor._job_env()["PYTHONPATH"].split(os.pathsep)[0]
    assert first == str(ROOT) and (ROOT / "engine" / "__init__.py").is_file()
