"""Preference data: a pairwise campaign's votes and uploaded preference files become one preference dataset version
with provenance; the checks flag planted identical, opposite, length-biased and over-long pairs."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from conftest import run_studio, user_of
from test_review import evaluated_run, reviewers

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
    with pytest.raises(preferences.PreferenceError, match="at least one source"):
        preferences.build(user_of("admin"), 1, [])
