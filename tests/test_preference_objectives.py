"""ORPO and KTO next to DPO: unpaired feedback (KTO's shape: prompt, completion, a true/false label) is read with its
labels and checked; feedback defaults to KTO with loss weights that balance its labels, SFT refuses answers labelled
bad, and pairs train with ORPO through TRL's trainer with the settings recommended for it. The Train page offers
every objective and starting from a registered version, and its KTO run succeeds (tests/test_preferences.py: DPO)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import app_as, shown, user_of

from engine.data import quality, versions
from engine.data.loading import load_records
from engine.data.quality import CheckOptions


def _feedback(n: int = 60, bad_every: int = 3) -> list[dict]:
    """KTO's unpaired shape from the demo pairs: each prompt once, with its own answer (good) or, for every
    `bad_every`-th prompt, another conversation's answer (bad); two good answers for each bad one."""
    from engine.demo import sample

    rows = []
    for i, pair in enumerate(sample.preference_pairs(n)):
        good = i % bad_every != 0
        rows.append({"prompt": pair["prompt"], "completion": pair["chosen"] if good else pair["rejected"],
                     "label": good})
    return rows


def _write(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_feedback_is_read_with_its_labels_and_checked(tmp_path):
    data = tmp_path / "feedback.jsonl"
    rows = _feedback(30)
    rows[4]["label"] = "yes"  # not a boolean: not KTO's shape
    _write(data, rows)
    loaded = load_records(data)
    assert loaded.shape == "feedback"
    labels = [r.extra.get("label") for r in loaded.records]
    assert labels[:4] == [False, True, True, False] and labels[4] is None
    assert loaded.records[1].turns[-1] == {"role": "assistant", "content": rows[1]["completion"]}
    assert any("Line 5 is in the prompt / completion shape but the file is Unpaired feedback" in text
               for r in loaded.records for _, text in r.problems)
    assert "feedback_one_sided" not in {f.code for f in quality.check_file(data, CheckOptions()).findings}

    _write(data, [{**r, "label": True} for r in rows])
    one_sided = next(f for f in quality.check_file(data, CheckOptions()).findings if f.code == "feedback_one_sided")
    assert one_sided.count == 30 and "add answers labelled bad" in one_sided.message
    # a column of categories called "label" is a mapped column, not feedback
    _write(data, [{"prompt": f"Review {i}", "completion": "positive", "label": "positive"} for i in range(12)])
    assert load_records(data).shape == "prompt_completion"


@pytest.fixture
def feedback_split(ws, demo_model, tmp_path):
    from engine.data import split
    from engine.store import projects

    project = projects.create_project("Feedback")
    data = tmp_path / "feedback.jsonl"
    _write(data, _feedback(80))
    version = versions.import_file(project.id, data, "feedback.jsonl")
    return project, version, split.create_split(version, (0.8, 0.1, 0.1)), demo_model


def test_held_out_feedback_is_scored_as_pairs_and_bad_answers_are_never_references(ws, tmp_path):
    """A KTO run's test split: each answer labelled bad becomes the rejected side of a good answer to the same prompt
    (so `studio eval` reports preference_accuracy on held-out feedback), a bad answer without a good one is counted,
    and no answer labelled bad is a reference the generations are scored against."""
    from engine.data import split
    from engine.demo import sample
    from engine.evaluate import comparison
    from engine.store import projects
    from engine.store.tables import Run

    pairs = sample.preference_pairs(40)
    rows = [row for p in pairs[:30] for row in ({"prompt": p["prompt"], "completion": p["chosen"], "label": True},
                                                 {"prompt": p["prompt"], "completion": p["rejected"], "label": False})]
    rows += [{"prompt": p["prompt"], "completion": p["rejected"], "label": False} for p in pairs[30:]]  # bad only
    data = tmp_path / "feedback.jsonl"
    _write(data, rows)
    project = projects.create_project("Held-out feedback")
    made = split.create_split(versions.import_file(project.id, data, "feedback.jsonl"), (0.5, 0.1, 0.4))
    def said(turns: list[dict]) -> tuple[str, str]:  # (the prompt, the answer)
        return json.dumps(turns[:-1]), turns[-1]["content"]

    test_records = load_records(split.split_path(made, "test")).records
    bad = {said(r.turns) for r in test_records if r.extra["label"] is False}
    good = [said(r.turns) for r in test_records if r.extra["label"] is True]
    run = Run(id=0, config={"split_id": made.id})
    convs, extras, unmatched = comparison._examples(run, "test", None)
    assert sorted(said(c) for c in convs) == sorted(good) and good  # one example per good answer, no bad one
    by_answer = {p["chosen"]: p["rejected"] for p in pairs}
    assert all(e["rejected"] == by_answer[c[-1]["content"]] for c, e in zip(convs, extras, strict=True))
    assert unmatched == len(bad) - len(convs) > 0
    assert len(comparison.rejected_conversations(convs, extras)) == len(convs)  # all scored as pairs
    train_bad = {said(r.turns) for r in load_records(split.split_path(made, "train")).records
                 if r.extra["label"] is False}
    assert train_bad and not train_bad & {said(c) for c in comparison.split_part(run, "train")}  # nor examples


def test_feedback_defaults_to_kto_with_balancing_weights_and_sft_refuses_its_bad_answers(feedback_split):
    from engine.data import split
    from engine.errors import StudioError
    from engine.train import launcher
    from engine.train.config import RunConfig
    from engine.train.estimate import START_SECONDS

    project, version, made, model = feedback_split
    good, bad = launcher.data_kind(str(split.split_path(made, "train")))[1:]
    assert good > bad > 0
    rec = launcher.recommendations(str(model), made)
    assert rec["objective"][0] == "kto" and "labelled good or bad" in rec["objective"][1]
    assert rec["desirable_weight"][0] == 1.0
    weight = rec["undesirable_weight"][0]
    assert 1 <= good / (bad * weight) <= 4 / 3 and "within KTO's recommended 1 to 4/3" in rec["undesirable_weight"][1]
    assert rec["learning_rate"][0] == pytest.approx(launcher.recommendations(str(model), made,
                                                                             objective="sft")["learning_rate"][0] / 10)
    config = launcher.config_for_split(made, str(model), name="kto")
    assert (config.objective, config.undesirable_weight) == ("kto", weight)
    assert launcher.preflight(config, version.id) == []
    sft = launcher.config_for_split(made, str(model), name="sft", objective="sft")
    assert any("labelled bad (label false), which SFT would learn" in p for p in launcher.preflight(sft, version.id))
    dpo = launcher.config_for_split(made, str(model), name="dpo", objective="dpo")
    assert any("has no preference pairs" in p for p in launcher.preflight(dpo, version.id))
    # a KTO step scores two sequences (the answer and a mismatched one for KL), each once more for the reference
    sft_time = launcher.time_estimate(config.model_copy(update={"objective": "sft"}), made)
    kto_time = launcher.time_estimate(config, made)
    start = START_SECONDS["cpu"]
    assert kto_time.steps == sft_time.steps and kto_time.seconds - start > 2 * (sft_time.seconds - start)
    with pytest.raises(StudioError, match="per_device_train_batch_size must be at least 2"):
        RunConfig.build(**{**config.model_dump(), "per_device_train_batch_size": 1})


def test_an_orpo_run_trains_on_pairs_with_the_sft_step_and_no_reference(ws, demo_model, tmp_path):
    from engine.data import split
    from engine.demo import sample
    from engine.jobs import supervisor
    from engine.jobs.event_log import curves, read_events
    from engine.store import projects
    from engine.train import launcher

    project = projects.create_project("ORPO")
    data = tmp_path / "pairs.jsonl"
    _write(data, sample.preference_pairs(60))
    version = versions.import_file(project.id, data, "pairs.jsonl")
    made = split.create_split(version, (0.8, 0.1, 0.1))
    rec = launcher.recommendations(str(demo_model), made, objective="orpo")
    sft = launcher.recommendations(str(demo_model), made, objective="sft")
    assert rec["objective"] == ("orpo", "as chosen (the data holds preference pairs (a chosen and a rejected answer): "
                                        "DPO learns from both, the default)")
    assert rec["learning_rate"][0] == sft["learning_rate"][0] and rec["beta"][0] == 0.1
    config = launcher.config_for_split(made, str(demo_model), name="orpo", objective="orpo")
    run = supervisor.wait(launcher.launch(config, project.id).id, timeout=600)
    assert run.status == "succeeded", run.error_message
    events = read_events(supervisor.run_path(run))
    assert any("ORPO on 48 preference pairs" in e.get("message", "") and "no reference model" in e["message"]
               for e in events if e["event"] == "loss")
    c = curves(events)
    assert {"rewards_chosen", "rewards_rejected", "reward_margin", "reward_accuracy"} <= set(c["log"][-1])
    assert "eval_reward_accuracy" in c["eval"][-1]
    assert (supervisor.run_path(run) / "final" / "adapter_config.json").is_file() or \
        (supervisor.run_path(run) / "final" / "config.json").is_file()


def _registered_version(project_id: int, made, model) -> str:
    """A registered version as a finished full fine-tune leaves it (its weights: a copy of the demo model)."""
    from engine.models import lifecycle
    from engine.store import db, workspace
    from engine.store.tables import Run
    from engine.train import launcher

    config = launcher.config_for_split(made, str(model), name="sft", objective="sft", technique="full")
    shutil.copytree(model, workspace.current().root / "runs" / "sft" / "final")
    with db.session() as s:
        run = Run(project_id=project_id, name="sft", status="succeeded", run_dir="runs/sft",
                  config=config.model_dump(mode="json"), request_key="sft", device="cpu", resume=False, attempts=1,
                  step=4, max_steps=4)
        s.add(run)
        s.flush()
        run_id = run.id
    return lifecycle.register(user_of("analyst"), run_id).label


def test_the_train_page_offers_every_objective_and_a_registered_starting_point(feedback_split):
    """Feedback on the Train page: KTO is preselected with its weights and reasons; starting from a registered version
    trains on its weights and records it; the run logs KTO's rewards and succeeds."""
    from engine.jobs import supervisor
    from engine.jobs.event_log import curves, read_events
    from engine.models import lifecycle
    from engine.store import workspace

    project, version, made, model = feedback_split
    shutil.copytree(model, workspace.current().demo_model)  # the page's default model
    parent = _registered_version(project.id, made, model)
    at = app_as("analyst", timeout=120).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    objective = at.selectbox(key=f"train_objective_{made.id}")
    assert objective.value == "kto" and objective.options == [
        "SFT: learn the answers", "DPO: prefer the chosen answer of each pair",
        "ORPO: learn the chosen answers and prefer them, no reference model",
        "KTO: learn from answers labelled good or bad (the data's default)"]
    assert {n.label for n in at.number_input} >= {"beta", "desirable weight", "undesirable weight"}
    assert any("within KTO's recommended 1 to 4/3" in shown(c.value) for c in at.caption)
    at.selectbox(key="train_parent").set_value(parent).run()
    assert not at.exception, at.exception
    assert any(shown(c.value).startswith(f"Trains on {parent}'s weights") for c in at.caption)
    for label, value in (("max steps", 6), ("eval steps", 3), ("save steps", 3), ("logging steps", 1)):
        next(n for n in at.number_input if n.label == label).set_value(value)
    next(b for b in at.button if b.label == "Launch").click().run()
    assert not at.exception, at.exception
    assert any("Run" in s.value for s in at.success), [e.value for e in at.error]
    run = supervisor.list_runs(project.id)[0]
    assert run.config["objective"] == "kto" and run.config["parent_version"] == parent
    assert run.config["base_model"] == lifecycle.starting_weights(parent)
    run = supervisor.wait(run.id, timeout=600)
    assert run.status == "succeeded", run.error_message
    c = curves(read_events(supervisor.run_path(run)))
    assert {"rewards_chosen", "rewards_rejected", "reward_margin"} <= set(c["log"][-1])
    assert "reward_accuracy" not in c["log"][-1]  # KTO has no pairs to be right about: its charts go without
    at.switch_page("pages/runs.py").run()
    assert not at.exception, at.exception
    titles = [json.dumps(json.loads(chart.proto.spec)["layout"].get("title")) for chart in at.get("plotly_chart")]
    assert any('"Rewards"' in t for t in titles) and any("Reward margin and accuracy" in t for t in titles), titles
