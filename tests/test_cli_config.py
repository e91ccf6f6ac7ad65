"""The CLI is the config: every run config field has a flag (walked from the model), `--config FILE` and `--set`
override the recommendations in that order, `--print-config` shows what would run, and a bad value is the Train
page's own sentence. Settings: `studio config show` prints every STUDIO_* value with its source, and the README's
table is the settings class's."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from unittest import mock

import pytest
import yaml
from conftest import ROOT, run_studio

from engine import settings
from engine.cli import entry
from engine.train.config import RunConfig

# A non-default, valid value for every field, given alone over a whole config (a field added to RunConfig without a
# value here fails the walk: the CLI must reach it).
VALUES = {
    "name": "walked", "base_model": "/models/other", "dataset_version_id": 7, "split_id": 9,
    "train_file": "/data/train.jsonl", "eval_file": "/data/validation.jsonl", "mix_file": "/data/mix.jsonl",
    "mix_share": 0.2, "technique": "prefix_tuning", "lora_r": 24, "lora_alpha": 48, "lora_dropout": 0.1,
    "target_modules": ["q_proj", "k_proj", "v_proj"], "num_virtual_tokens": 30, "learning_rate": 0.001,
    "num_train_epochs": 2.0, "max_steps": 77, "per_device_train_batch_size": 3, "gradient_accumulation_steps": 5,
    "max_length": 640, "warmup_steps": 11, "lr_scheduler_type": "constant", "weight_decay": 0.01, "seed": 7,
    "assistant_only_loss": False, "batching": "padding", "eval_steps": 25, "logging_steps": 3, "save_steps": 75,
    "save_total_limit": 4, "early_stopping": False, "early_stopping_patience": 6,
    "early_stopping_metric": "eval_loss", "precision": "fp32", "device": "cpu", "num_gpus": 2,
    "distributed": "fsdp", "wandb_project": "walked-project", "wandb_mode": "disabled", "objective": "kto", "beta": 0.3,
    "desirable_weight": 1.5, "undesirable_weight": 2.5,
    "parent_version": "support-v1.0.0",
}

# What a field needs beside it to be coherent (the config's own rules), given with --set.
PARTNERS = {"mix_share": {"mix_file": "/data/mix.jsonl"}, "eval_steps": {"save_steps": 75},
            "save_steps": {"eval_steps": 25}}


def _flag_args(field: str, value) -> list[str]:
    from engine.cli.train_flags import flag_of

    if field == "base_model":  # the quick form's --model; over a config file it is a --set
        return ["--set", f"base_model={value}"]
    if isinstance(value, bool):
        return [("--" if value else "--no-") + field.replace("_", "-")]
    if isinstance(value, list):
        return [flag_of(field), ",".join(value)]
    return [flag_of(field), str(value)]


def _cli(argv: list[str]) -> int:
    """`studio ARGV` in this process, leaving the process as it was: the CLI points TMPDIR and the library caches at
    the workspace (for its own process), which must not reach the tests that run after this one here."""
    saved = tempfile.tempdir
    with mock.patch.dict(os.environ):
        try:
            return entry.main(argv)
        finally:
            tempfile.tempdir = saved


def _printed(capsys, argv: list[str]) -> dict:
    code = _cli(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return yaml.safe_load(out.out)


@pytest.fixture
def whole_config(ws, demo_model, tmp_path, capsys) -> Path:
    """The quick form's resolved config (recommendations applied) saved as YAML: the base the walk edits."""
    from engine.demo import sample

    data = tmp_path / "support.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sample.generate(600, seed=3)[300:460]))
    resolved = _printed(capsys, ["train", "--model", str(demo_model), "--data", str(data), "--print-config"])
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(resolved))
    return path


def test_every_run_config_field_is_reachable_from_the_cli(whole_config, capsys):
    assert set(VALUES) == set(RunConfig.model_fields), "give every run config field a value in VALUES"
    base = yaml.safe_load(whole_config.read_text())
    for field, value in VALUES.items():
        only_choice = field == "early_stopping_metric"  # one choice today: the flag is still walked
        assert base[field] != value or only_choice, f"{field}: pick a value that differs from the resolved config"
        partners = PARTNERS.get(field, {})
        printed = _printed(capsys, ["train", "--config", str(whole_config), *_flag_args(field, value),
                                    *[a for k, v in partners.items() for a in ("--set", f"{k}={v}")],
                                    "--print-config"])
        assert printed[field] == value, field
        unchanged = set(base) - {field, *partners}
        assert {k: printed[k] for k in unchanged} == {k: base[k] for k in unchanged}, field


def test_the_quick_form_prints_the_recommendations_and_the_user_s_settings_win(whole_config, demo_model, tmp_path,
                                                                                capsys):
    from engine.data import split, versions
    from engine.store import projects
    from engine.train import launcher

    made = split.list_splits(versions.list_versions(projects.find_project("default").id)[0].id)[0]
    recommended = {k: v for k, (v, _) in launcher.recommendations(str(demo_model), made).items()}
    base = yaml.safe_load(whole_config.read_text())
    assert {k: base[k] for k in recommended} == {k: json.loads(json.dumps(v)) for k, v in recommended.items()}
    prefs = tmp_path / "prefs.yaml"
    prefs.write_text("lora_r: 4\nlearning_rate: 0.0005\nseed: 3\n")
    data = tmp_path / "support.jsonl"
    printed = _printed(capsys, ["train", "--model", str(demo_model), "--data", str(data), "--config", str(prefs),
                                "--set", "seed=5", "--technique", "lora", "--lora-r", "12", "--print-config"])
    # the file over the recommendations, --set over the file, a flag over --set
    assert (printed["lora_r"], printed["learning_rate"], printed["seed"]) == (12, 0.0005, 5)
    assert printed["technique"] == "lora" and printed["train_file"] == base["train_file"]
    # a step cap of the user's own: evaluations and checkpoints spread over it, about ten of each
    capped = _printed(capsys, ["train", "--model", str(demo_model), "--data", str(data), "--max-steps", "40",
                               "--print-config"])
    assert (capped["max_steps"], capped["eval_steps"], capped["save_steps"], capped["logging_steps"]) == (40, 4, 4, 2)


@pytest.mark.parametrize(("argv", "sentence"), [
    (["--lora-r", "0"], "The run config is invalid: lora_r: Input should be greater than or equal to 1."),
    (["--set", "lora_rank=8"], "--set lora_rank: the run config has no such field; `studio train --help` lists "
                               "them."),
    (["--set", "early_stopping=true", "--set", "eval_steps=7"], "The run config is invalid: with early stopping, "
                                                                "save_steps must be a multiple of eval_steps."),
])
def test_a_bad_setting_is_the_train_page_s_sentence(whole_config, capsys, argv, sentence):
    code = _cli(["train", "--config", str(whole_config), *argv, "--print-config"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"studio: {sentence}"), err
    if sentence.startswith("The run config is invalid"):  # the page's validation: the same sentence
        values = {**yaml.safe_load(whole_config.read_text())}
        with pytest.raises(ValueError) as page:
            RunConfig.build(**{**values, **_as_values(argv)})
        assert err.strip() == f"studio: {page.value}"


def _as_values(argv: list[str]) -> dict:
    out = {}
    for flag, value in zip(argv[::2], argv[1::2]):
        key, _, raw = (value.partition("=") if flag == "--set" else (flag[2:].replace("-", "_"), "", value))
        out[key] = yaml.safe_load(raw)
    return out


def test_config_show_prints_every_setting_with_its_source(ws, monkeypatch):
    monkeypatch.setenv("STUDIO_CANCEL_GRACE", "7.5")
    proc = run_studio("config", "show", "--json", env_home=ws.root, STUDIO_CANCEL_GRACE="7.5",
                      STUDIO_TEACHER_KEY="sk-should-never-print")
    assert proc.returncode == 0, proc.stderr
    shown = {row["variable"]: row for row in json.loads(proc.stdout)}
    assert set(shown) == {settings.variable(f) for f in settings.Settings.model_fields}
    assert shown["STUDIO_CANCEL_GRACE"]["value"] == 7.5 and shown["STUDIO_CANCEL_GRACE"]["source"] == "environment"
    assert shown["STUDIO_SESSION_HOURS"]["value"] == 12.0 and shown["STUDIO_SESSION_HOURS"]["source"] == "default"
    assert shown["STUDIO_HOME"]["value"] == str(ws.root)
    assert "sk-should-never-print" not in proc.stdout and shown["STUDIO_TEACHER_KEY"]["value"] == "********"
    bad = run_studio("config", "show", env_home=ws.root, STUDIO_JOB_BACKEND="slurm")
    assert bad.returncode == 2 and bad.stderr.strip() == ("studio: STUDIO_JOB_BACKEND='slurm' cannot be used: input "
                                                          "should be 'local' or 'ray'.")


def test_the_readme_configuration_table_is_the_settings_class():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings.markdown_table() in readme, "run `studio config show --markdown` and paste it into the README"


def test_projects_are_created_and_switched_from_the_cli_and_commands_follow_the_current_one(ws, tmp_path):
    from conftest import chat, write_jsonl

    from engine.data import versions
    from engine.store import projects

    made = run_studio("project", "create", "Acme  support", "--task", "chat", env_home=ws.root)
    assert made.returncode == 0 and "it is the current project" in made.stdout
    data = write_jsonl(tmp_path / "chats.jsonl", [chat(i) for i in range(40)])
    assert run_studio("split", data, "--out", tmp_path / "parts", env_home=ws.root).returncode == 0
    acme = projects.find_project("Acme support")
    assert len(versions.list_versions(acme.id)) == 1  # registered in the current project, not in "default"
    listed = json.loads(run_studio("project", "list", "--json", env_home=ws.root).stdout)
    assert [(p["name"], p["current"]) for p in listed] == [("Acme support", True)]
    refused = run_studio("project", "use", "Nope", env_home=ws.root)
    assert refused.returncode == 2 and refused.stderr.strip() == "studio: There is no project named 'Nope'."
    assert projects.current_name() == "Acme support"  # a refused switch changes nothing


def test_quality_fixes_are_listed_and_applied_from_the_cli(ws, tmp_path):
    from conftest import chat, write_jsonl

    from engine.data import versions
    from engine.store import projects

    rows = [chat(i) for i in range(30)] + [chat(3), chat(3), chat(7)]  # three exact duplicates
    data = write_jsonl(tmp_path / "dupes.jsonl", rows)
    assert run_studio("split", data, "--out", tmp_path / "parts", env_home=ws.root).returncode == 0
    version = versions.list_versions(projects.find_project("default").id)[0]
    offered = json.loads(run_studio("fix", str(version.id), "--json", env_home=ws.root).stdout)
    assert {"fix": "drop_exact_duplicates", "label": next(o["label"] for o in offered
                                                          if o["fix"] == "drop_exact_duplicates"),
            "finding": "exact_duplicate", "records": 3} in offered
    applied = run_studio("fix", str(version.id), "drop_exact_duplicates", "--json", env_home=ws.root)
    assert applied.returncode == 0, applied.stderr
    child = versions.get_version(json.loads(applied.stdout)["version"])
    assert (child.records, child.removed, child.parent_id) == (30, 3, version.id)
    unknown = run_studio("fix", str(version.id), "redact_pii", env_home=ws.root)
    assert unknown.returncode == 2 and "offers no fix 'redact_pii'" in unknown.stderr
