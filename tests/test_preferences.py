"""Preference data: a pairwise campaign's votes and uploaded preference files become one preference dataset version
with provenance; the checks flag planted identical, opposite, length-biased and over-long pairs."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest
from conftest import app_as, evaluated_run, reviewers, run_studio, user_of

from engine.data import quality, versions
from engine.data.loading import load_records
from engine.data.quality import CheckOptions
from engine.review import campaigns, preferences

# What the three reviewers vote for each item (by the item's number modulo 4).
PLAN = {0: ("finetuned",) * 3, 1: ("finetuned", "finetuned", "base"), 2: ("tie",) * 3, 3: ("base",) * 3}


def _vote_as_planned(campaign_id: int, revs) -> None:
    for k, reviewer in enumerate(revs):
        for entry in campaigns.queue(reviewer, campaign_id):
            view = campaigns.task(reviewer, entry.assignment_id)
            number = int(re.match(r"Question (\d+)", view["prompt"][-1]["content"]).group(1))
            wanted = PLAN[number % 4][k]
            tuned_is_a = view["answers"]["A"].startswith("fine-tuned")
            side = "tie" if wanted == "tie" else "A" if (wanted == "finetuned") == tuned_is_a else "B"
            campaigns.submit(reviewer, entry.assignment_id, vote=side)


def test_majority_is_kept_only_when_it_is_clear():
    assert preferences.decide(Counter(finetuned=3)) == ("finetuned", None)
    assert preferences.decide(Counter(base=3, finetuned=1)) == ("base", None)
    assert preferences.decide(Counter(finetuned=2, base=1)) == (None, "contested")
    assert preferences.decide(Counter(tie=2, finetuned=0)) == (None, "ties")
    assert preferences.decide(Counter(both_bad=2, tie=1)) == (None, "both_bad")
    assert preferences.decide(Counter(finetuned=1, tie=2)) == ("finetuned", None)


def _file_pairs(path) -> None:
    """Planted: one identical pair, one prompt preferred both ways, and a dozen pairs where the longer answer wins."""
    rows = [{"prompt": "Say hi.", "chosen": "Hello!", "rejected": "hello! "},
            {"prompt": "Pick one.", "chosen": "Red.", "rejected": "Blue."},
            {"prompt": "pick ONE.", "chosen": "Blue.", "rejected": "Red."}]
    rows += [{"prompt": f"Explain step {i}.", "chosen": f"Step {i} means this, and then that, in detail.",
              "rejected": f"Step {i}."} for i in range(12)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_a_pairwise_campaign_and_a_file_become_one_checked_preference_dataset(ws, tmp_path):
    run_id = evaluated_run(ws, 8)
    admin, revs = user_of("admin"), reviewers(3)
    campaign = campaigns.create_campaign(admin, run_id, "pairwise", [r.id for r in revs], sample_size=8, overlap=3)
    _vote_as_planned(campaign.id, revs)
    upload = tmp_path / "pairs.jsonl"
    _file_pairs(upload)
    proc = run_studio("prefs", "build", "--from", f"campaign:{campaign.id}", "--from", upload, "--project",
                      "Reviews", "--json", env_home=ws.root)
    assert proc.returncode == 0, proc.stderr
    built = json.loads(proc.stdout)
    assert built["pairs"] == 4 + 15 and built["by_source"] == {f"campaign:{campaign.id}": 4, "pairs.jsonl": 15}
    assert built["dropped"] == {"contested": 2, "ties": 2}
    version = versions.get_version(built["version_id"])
    assert version.shape == "preference"
    records = load_records(versions.path_of(version)).records
    from_votes = [r for r in records if r.extra["provenance"]["source"] == "campaign"]
    assert {r.extra["provenance"]["chosen_model"] for r in from_votes} == {"finetuned", "base"}
    for r in from_votes:  # the chosen side is the one the reviewers voted for, and the provenance says how
        votes = r.extra["provenance"]["votes"]
        assert max(votes, key=votes.get) == r.extra["provenance"]["chosen_model"]
        assert r.turns[-1]["content"].startswith("fine-tuned" if votes.get("finetuned") else "base")
    line = next(r for r in records if r.extra["provenance"].get("line") == 2)
    assert line.turns[-1]["content"] == "Red." and line.extra["rejected"] == "Blue."
    report = quality.report_for_version(version, CheckOptions(max_length=64))
    found = {f.code: f for f in report.findings}
    assert found["pref_identical"].count == 1
    assert found["pref_opposite"].count == 2 and len(found["pref_opposite"].pairs) == 1
    assert "longer one in" in found["pref_length_bias"].message
    assert "pref_empty_side" not in found and "pref_prompt_too_long" not in found
    short = quality.check_file(versions.path_of(version), CheckOptions(max_length=8))
    assert any(f.code == "pref_prompt_too_long" for f in short.findings)  # the campaign's long prompts


def test_openai_preference_files_are_read_with_their_tools(tmp_path):
    path = tmp_path / "openai_dpo.jsonl"
    row = {"input": {"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [{"type": "function"}]},
           "preferred_output": [{"role": "assistant", "content": "Sunny, 21 C."}],
           "non_preferred_output": [{"role": "assistant", "content": "I cannot know."}]}
    path.write_text(json.dumps(row) + "\n")
    rec = load_records(path).records[0]
    assert load_records(path).shape == "openai_preference"
    assert rec.turns[-1] == {"role": "assistant", "content": "Sunny, 21 C."}
    assert rec.extra["rejected"] == "I cannot know." and rec.extra["tools"] == [{"type": "function"}]


def test_unusable_sources_get_one_sentence(ws):
    proc = run_studio("prefs", "build", "--from", "campaign:999", env_home=ws.root)
    assert proc.returncode != 0 and "There is no campaign 999" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_studio("prefs", "build", "--from", "nowhere.jsonl", env_home=ws.root)
    assert "Cannot read the source 'nowhere.jsonl'" in proc.stderr
    with pytest.raises(preferences.PreferenceError, match="Choose at least one source"):
        preferences.build(user_of("admin"), 1, [])


@pytest.fixture
def preference_split(ws, demo_model, tmp_path):
    from engine.data import split
    from engine.demo import sample
    from engine.store import projects

    project = projects.create_project("Preferences")
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sample.preference_pairs(60)), encoding="utf-8")
    version = versions.import_file(project.id, data, "pairs.jsonl")
    return project, version, split.create_split(version, (0.8, 0.1, 0.1)), demo_model


def test_a_dpo_run_trains_with_the_defaults_and_its_evaluation_scores_the_held_out_pairs(preference_split):
    """Preference data defaults to DPO with its recommended beta and step; the run logs the rewards TRL computes,
    `studio eval` compares base and tuned on the locked test pairs with an interval, and reviewers get a blind
    pairwise campaign of the two models' answers."""
    from engine.data import split
    from engine.jobs import supervisor
    from engine.jobs.event_log import curves, read_events
    from engine.store import db
    from engine.store.tables import CampaignItem
    from engine.train import launcher

    project, version, made, model = preference_split
    rec = launcher.recommendations(str(model), made)
    assert rec["objective"][0] == "dpo" and rec["beta"][0] == 0.2 and "48 records is little data" in rec["beta"][1]
    assert rec["learning_rate"][1].startswith("a tenth of the SFT step")  # every weight learns (the tiny model)
    lora, sft = (launcher.recommendations(str(model), made, "lora", objective=o) for o in ("dpo", "sft"))
    assert lora["learning_rate"][0] == pytest.approx(sft["learning_rate"][0] / 2)  # an adapter: half (measured)
    assert lora["learning_rate"][1].startswith("half the SFT step")
    config = launcher.config_for_split(made, str(model), name="dpo")
    assert launcher.preflight(config, version.id) == []
    run = supervisor.wait(launcher.launch(config, project.id).id, timeout=600)
    assert run.status == "succeeded", run.error_message
    c = curves(read_events(supervisor.run_path(run)))
    assert {"rewards_chosen", "rewards_rejected", "reward_margin", "reward_accuracy"} <= set(c["log"][-1])
    assert "eval_reward_accuracy" in c["eval"][-1]
    # Short answers: the preference accuracy scores likelihoods, not generations (which the eval tests cover)
    proc = run_studio("eval", run.id, "--json", "--max-new-tokens", "8", env_home=Path(os.environ["STUDIO_HOME"]),
                      timeout=600)
    assert proc.returncode == 0, proc.stderr
    accuracy = json.loads(proc.stdout)["metrics"]["preference_accuracy"]
    assert 0 <= accuracy["base"] <= 1 and 0 <= accuracy["finetuned"] <= 1
    assert accuracy["ci_low"] <= accuracy["diff"] <= accuracy["ci_high"] and accuracy["verdict"]
    # the blind pairwise review of base vs tuned answers to the held-out prompts
    names = ",".join(u.name for u in reviewers(2))
    proc = run_studio("review", "create", str(run.id), "--kind", "pairwise", "--reviewers", names,
                      env_home=Path(os.environ["STUDIO_HOME"]))
    assert proc.returncode == 0, proc.stderr
    campaign = campaigns.list_campaigns(project.id)[-1]
    with db.session() as s:
        items = s.query(CampaignItem).filter_by(campaign_id=campaign.id).all()
    assert campaign.kind == "pairwise" and len(items) == len(split.split_path(made, "test").read_text().splitlines())
    assert all(set(i.answers) == {"base", "finetuned"} for i in items)


def test_a_dpo_run_is_refused_without_pairs_or_with_test_prompts(preference_split, ws, tmp_path):
    from engine.data import split
    from engine.train import launcher

    project, version, made, model = preference_split
    test_prompt = load_records(split.split_path(made, "test")).records[0]
    leaked = tmp_path / "leaked.jsonl"
    rows = [json.loads(line) for line in split.split_path(made, "train").read_text().splitlines()]
    rows[3]["messages"] = [*test_prompt.turns[:-1], {"role": "assistant", "content": "Another answer."}]
    leaked.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = launcher.config_for_split(made, str(model), name="leaky", train_file=str(leaked))
    assert any("have the prompt of a locked test record" in p for p in launcher.preflight(config, version.id))
    chats = tmp_path / "chats.jsonl"
    chats.write_text("".join(json.dumps({"messages": r["messages"]}) + "\n" for r in rows), encoding="utf-8")
    config = launcher.config_for_split(made, str(model), name="no pairs", train_file=str(chats), objective="dpo")
    assert any("has no preference pairs" in p for p in launcher.preflight(config, version.id))


def test_the_over_optimisation_alarm_needs_a_growing_margin_and_a_falling_validation_accuracy():
    from engine.jobs.event_log import preference_alarm

    def run(accuracies, margins):
        events = [{"event": "eval", "step": 10 * (i + 1), "eval_reward_accuracy": a} for i, a in enumerate(accuracies)]
        events += [{"event": "log", "step": 5 + 10 * i, "reward_margin": m} for i, m in enumerate(margins)]
        return preference_alarm(events)

    assert "over-optimising" in run([0.7, 0.8, 0.6, 0.55], [0.1, 0.4, 0.9, 1.5])
    assert run([0.7, 0.8, 0.6, 0.55], [1.5, 0.9, 0.4, 0.1]) is None  # the margin is not growing
    assert run([0.7, 0.8, 0.78, 0.8], [0.1, 0.4, 0.9, 1.5]) is None  # validation accuracy holds


def test_the_review_page_builds_the_preference_dataset(ws):
    run_id = evaluated_run(ws, 4)
    admin, revs = user_of("admin"), reviewers(1)
    campaign = campaigns.create_campaign(admin, run_id, "pairwise", [r.id for r in revs], sample_size=4, overlap=1)
    for entry in campaigns.queue(revs[0], campaign.id):
        campaigns.submit(revs[0], entry.assignment_id, vote="tie" if entry.position == 1 else "A")
    at = app_as("analyst").run()
    at.switch_page("pages/review.py").run()
    at.multiselect(key="review_prefs_campaigns").select(campaign.id)
    at.button[[b.label for b in at.button].index("Build the preference dataset")].click().run()
    assert not at.exception
    assert any("3 preference pairs" in s.value and "dropped: 1 ties" in s.value for s in at.success), (
        [s.value for s in at.success], [e.value for e in at.error])
