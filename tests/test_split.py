"""Leakage-free splits, the locked test split, and contamination of a user-supplied test file."""

from __future__ import annotations

import json

import pytest
from conftest import chat, run_studio, write_jsonl

from engine.data import split, versions
from engine.data.checks.duplicates import record_hash
from engine.data.loading import load_records
from engine.store import projects


def rows_with_families(n_families=40, copies=4):
    """Families of near-duplicates (same conversation, one word changed) that must never be split apart."""
    rows = []
    for f in range(n_families):
        for c in range(copies):
            r = chat(f)
            if c:
                r["messages"][-1]["content"] += f" Regards {c}."
            rows.append(r)
    return rows


def test_near_duplicate_families_stay_on_one_side(ws, tmp_path):
    recs = load_records(write_jsonl(tmp_path / "d.jsonl", rows_with_families())).records
    result = split.split_records(recs, (0.8, 0.1, 0.1), seed=3)
    side = {}
    for name, part in result.parts.items():
        for r in part:
            side.setdefault(r.messages[1]["content"], set()).add(name)
    assert all(len(s) == 1 for s in side.values())
    assert result.overlap == {"exact": 0, "near": 0, "validation_exact": 0, "validation_near": 0}
    assert result.kept_in_test == 0
    assert sum(result.counts.values()) == 160
    assert 8 <= result.counts["test"] <= 24 and result.counts["train"] >= 110


def test_records_that_are_all_near_copies_of_each_other_get_no_empty_test_split(ws, tmp_path):
    """A templated file whose records differ only in a number is one leakage group: it went to train whole, and the
    split reported an empty test part as "locked". Refused with the reason; the CLI says it in one sentence."""
    rows = [{"prompt": f"Please summarize the support ticket about the delayed refund for order {i}.",
             "completion": f"The customer wants a refund for order {i}."} for i in range(40)]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    with pytest.raises(split.SplitError, match="No test set can be held out without leakage: 40 of the 40"):
        split.split_records(load_records(path).records)
    done = run_studio("split", str(path), "--out", str(tmp_path / "parts"), env_home=ws.root)
    assert done.returncode != 0 and "No test set can be held out" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "parts" / "test.jsonl").exists()


def test_split_is_deterministic_per_seed(ws, tmp_path):
    recs = load_records(write_jsonl(tmp_path / "d.jsonl", [chat(i) for i in range(100)])).records
    a = split.split_records(recs, seed=1)
    b = split.split_records(recs, seed=1)
    c = split.split_records(recs, seed=2)
    assert [r.location for r in a.parts["test"]] == [r.location for r in b.parts["test"]]
    assert [r.location for r in a.parts["test"]] != [r.location for r in c.parts["test"]]
    assert a.counts == {"train": 80, "validation": 10, "test": 10}


def test_bad_ratios(ws):
    with pytest.raises(split.SplitError):
        split.parse_ratios("0.8,0.3,0.1")
    with pytest.raises(split.SplitError):
        split.parse_ratios("a,b,c")


def test_locked_test_split_is_refused_for_training(ws, tmp_path):
    project = projects.create_project("p")
    version = versions.import_file(project.id, write_jsonl(tmp_path / "d.jsonl", [chat(i) for i in range(50)]), "d")
    made = split.create_split(version, (0.8, 0.1, 0.1), seed=0)
    test_recs = load_records(split.split_path(made, "test")).records
    train_recs = load_records(split.split_path(made, "train")).records
    assert made.locked and len(test_recs) == made.counts["test"] == 5
    assert versions.sha256_file(split.split_path(made, "test")) == made.test_sha256
    split.refuse_locked(train_recs)  # train is fine
    # One test example copied into new "training" data, from anywhere, is caught.
    sneaky = write_jsonl(tmp_path / "sneaky.jsonl", [chat(100), json.loads(split.split_path(made, "test")
                                                                          .read_text().splitlines()[2])])
    with pytest.raises(split.LockedTestError, match="locked test split"):
        split.refuse_locked(load_records(sneaky).records, "early stopping")
    assert {record_hash(r) for r in test_recs}.isdisjoint({record_hash(r) for r in train_recs})


def test_contamination_of_a_separate_test_file(ws, tmp_path):
    train = load_records(write_jsonl(tmp_path / "t.jsonl", [chat(i) for i in range(30)])).records
    near = chat(4)
    near["messages"][-1]["content"] += " Cheers."
    shared = chat(200, answer="Unrelated words first. " + train[6].messages[-1]["content"])
    test = load_records(write_jsonl(tmp_path / "test.jsonl", [chat(100), chat(2), near, shared])).records
    result = split.contamination(train, test)
    assert result["exact"] == [2] and result["near"] == [2, 3] and 4 in result["ngram13"]
    assert not result["clean"] and 1 not in result["ngram13"]


def test_cli_split_writes_parts_and_locks(ws, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", rows_with_families(30, 3))
    out = tmp_path / "out"
    proc = run_studio("split", data, "--out", out, "--seed", "7", "--json", env_home=ws.root)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["overlap"]["exact"] == 0 and result["overlap"]["near"] == 0 and result["locked"]
    for part in ("train", "validation", "test"):
        assert len((out / f"{part}.jsonl").read_text().splitlines()) == result["counts"][part]
    manifest = json.loads((out / "split.json").read_text())
    assert manifest["seed"] == 7 and manifest["locked"] == ["test"]
    # the split is in the workspace database too, with its test locked
    assert [s.id for s in split.splits_of_project(projects.list_projects()[0].id)] == [result["split"]]

    in_train = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    contaminated = write_jsonl(tmp_path / "mine.jsonl", [in_train, chat(999)])
    proc = run_studio("split", data, "--out", tmp_path / "o2", "--test", contaminated, env_home=ws.root)
    assert proc.returncode == 1 and "Contaminated" in proc.stdout


def _keys(path) -> set[str]:
    from engine.data.test_lock import content_key

    return {content_key(r) for r in load_records(path).records}


def test_the_locked_test_set_survives_a_system_prompt_fix_and_a_one_character_edit(ws, tmp_path, demo_model):
    """split -> set one system prompt -> split the new version -> launch: every old test record stays on the test
    side (or the launch is refused); never is an old test record in the run's training file. Same after a
    one-character edit of a test record, uploaded as a new file."""
    from engine.data import fixes
    from engine.data.quality import report_for_version
    from engine.train import launcher

    project = projects.create_project("lock")
    rows = [chat(i, system=None if i % 3 else "Old prompt.") for i in range(60)]
    version = versions.import_file(project.id, write_jsonl(tmp_path / "d.jsonl", rows), "d.jsonl")
    first = split.create_split(version)
    old_test = _keys(split.split_path(first, "test"))
    assert first.overlap["kept_in_test"] == 0 and len(old_test) == 6

    fixed = fixes.apply_fix(version, report_for_version(version), "set_system_prompt", prompt="You are the bot.")
    assert fixed.parent_id == version.id
    second = split.create_split(fixed)  # default ratios and seed, as the page's one click
    assert old_test <= _keys(split.split_path(second, "test"))
    assert second.overlap["kept_in_test"] == 6
    run_config = launcher.config_for_split(second, str(demo_model), name="after-fix")
    assert launcher.preflight(run_config, fixed.id) == []
    assert old_test.isdisjoint(_keys(run_config.train_file)) and old_test.isdisjoint(_keys(run_config.eval_file))

    # the old records, with the new system prompt, smuggled into a training file: refused at launch
    smuggled = write_jsonl(tmp_path / "smuggled.jsonl", [json.loads(line) for line in
                                                          split.split_path(second, "test").read_text().splitlines()]
                           + [chat(100 + i) for i in range(20)])
    problems = launcher.preflight(run_config.model_copy(update={"train_file": str(smuggled)}), fixed.id)
    assert len(problems) == 1 and "copies or near copies of a locked test split" in problems[0]

    # a one-character edit of every old test record, uploaded as a new file of the project
    edited = []
    for line in split.split_path(first, "test").read_text().splitlines():
        rec = json.loads(line)
        rec["messages"][-1]["content"] = rec["messages"][-1]["content"].replace("are", "ar", 1)
        edited.append(rec)
    upload = write_jsonl(tmp_path / "edited.jsonl", edited + [chat(200 + i) for i in range(40)])
    third = split.create_split(versions.import_file(project.id, upload, "edited.jsonl"))
    assert third.overlap["kept_in_test"] == 6
    edited_keys = _keys(write_jsonl(tmp_path / "e.jsonl", edited))
    assert edited_keys <= _keys(split.split_path(third, "test"))
    with pytest.raises(split.LockedTestError, match="near copies"):
        split.refuse_locked(load_records(write_jsonl(tmp_path / "t.jsonl", edited[:1] + [chat(300)])).records,
                            "training", project.id)


def test_a_mix_in_file_holding_test_records_is_refused_at_launch(ws, tmp_path, demo_model):
    from engine.train import launcher

    project = projects.create_project("mix")
    version = versions.import_file(project.id, write_jsonl(tmp_path / "d.jsonl", [chat(i) for i in range(40)]), "d")
    made = split.create_split(version)
    general = write_jsonl(tmp_path / "general.jsonl", [json.loads(line) for line in
                                                       split.split_path(made, "test").read_text().splitlines()])
    config = launcher.config_for_split(made, str(demo_model), mix_file=str(general), mix_share=0.2)
    problems = launcher.preflight(config, version.id)
    assert len(problems) == 1 and problems[0].startswith("The mix-in data is refused:")
