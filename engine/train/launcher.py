"""Launching a run the way the wizard and the CLI both do: build the config from a split with the recommended
settings, refuse what cannot work (with the reason), then hand it to the supervisor.

Refused before any process starts: a dataset version with blocking errors, evaluation data from a locked test split,
a base model that cannot be loaded (no folder, or a hub id that is not cached while offline), QLoRA without CUDA, too
little disk for the checkpoints, an invalid config.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path

from engine.data import preferences, split, versions
from engine.data.chat_template import ModelTemplate, TemplateError, record_tools
from engine.data.loading import load_records
from engine.data.quality import cached_report, report_for_version, usable
from engine.data.readers import InputError
from engine.data.template_limits import TemplateRefused
from engine.data.test_lock import project_of
from engine.data.versions import get_version
from engine.errors import StudioError
from engine.jobs import processes, supervisor
from engine.jobs.failures import DataError
from engine.store import projects, workspace
from engine.store.tables import Run
from engine.train import estimate, model_safety, preference_fit
from engine.train.base_models import local_folder, stage_lines
from engine.train.base_models import resolve as resolve_base
from engine.train.config import RunConfig
from engine.train.examples import Row, refusals
from engine.train.lengths import length_profile, profile_from_report
from engine.train.recommend import model_facts, recommend_hyperparameters, recommend_preference, recommend_technique


class LaunchRefused(StudioError, ValueError):
    """The run cannot start; the message says why (one sentence per problem)."""


def model_available(name_or_path: str) -> str | None:
    """None when the model can be loaded here, else why not. No network call: only the folder or the HF cache."""
    path = Path(name_or_path).expanduser()
    if path.exists() or name_or_path.startswith(("/", ".", "~")):
        if not (path / "config.json").is_file():
            return f"The base model folder {name_or_path} has no config.json."
        return next(iter(model_safety.problems(path)), None)
    from huggingface_hub import try_to_load_from_cache  # only a hub model id needs it

    cached = try_to_load_from_cache(name_or_path, "config.json")
    if isinstance(cached, str):
        return next(iter(model_safety.problems(Path(cached).parent)), None)
    if os.environ.get("HF_HUB_OFFLINE", "1") == "1":
        return (f"{name_or_path} is not a local folder and is not in the Hugging Face cache, and downloads are off "
                "(HF_HUB_OFFLINE=1); download it first or set HF_HUB_OFFLINE=0 on a machine with a network.")
    return None


def checkpoint_bytes(config: RunConfig) -> float:
    """Disk for the kept checkpoints and the final model: weights (full) or adapters, plus optimizer state."""
    facts = model_facts(config.base_model)
    trainable = facts.params if config.technique == "full" else max(facts.params * 0.01, 1e6)
    per_checkpoint = trainable * (2 + 8) + (facts.params * 2 if config.technique == "full" else 0)
    return per_checkpoint * (config.save_total_limit + 1)


def size_text(n_bytes: float) -> str:
    """Bytes for a sentence: MB under 1 GB (so a small need never reads "0.0 GB"), GB above."""
    if n_bytes < 1e9:
        return f"{max(n_bytes, 0) / 1e6:.0f} MB" if n_bytes >= 1e6 else f"{max(n_bytes, 0) / 1e6:.1f} MB"
    return f"{n_bytes / 1e9:.1f} GB"


def preflight(config: RunConfig, dataset_version_id: int | None = None) -> list[str]:
    """Every reason this run cannot start (empty when it can)."""
    problems = []
    if dataset_version_id is not None:
        version = versions.get_version(dataset_version_id)
        report = report_for_version(version)
        if report.blocking:
            codes = ", ".join(f.code for f in report.errors)
            problems.append(f"Dataset v{version.version} has blocking errors ({codes}); fix them on the Quality "
                            "page first.")

    project_id = project_of(dataset_version_id)
    loaded: dict[str, list] = {}
    for label, path, purpose in (("training", config.train_file, "training"),
                                 ("validation", config.eval_file, "early stopping and model selection"),
                                 ("mix-in", config.mix_file if config.mix_share > 0 else None, "training")):
        if path is None:
            continue
        if not Path(path).is_file():
            problems.append(f"The {label} file {path} does not exist.")
            continue
        try:
            loaded[label] = load_records(Path(path)).records
            split.refuse_locked(loaded[label], purpose, project_id)
        except split.LockedTestError as err:
            problems.append(f"The {label} data is refused: {err}")
        except InputError as err:
            problems.append(f"The {label} file cannot be read: {err}")
    if not problems:
        problems += _preference_problems(config, project_id, loaded)
    why = model_available(config.base_model)
    if why:
        problems.append(why)
    else:
        problems += template_problems(config.base_model, loaded)
    if config.technique == "qlora" and config.device != "cpu" and processes.cuda_count() == 0:
        problems.append("QLoRA needs a CUDA GPU (bitsandbytes 4-bit) and none is visible here; use LoRA.")
    if config.num_gpus > 1 and config.device != "cpu" and processes.cuda_count() < config.num_gpus:
        problems.append(f"The config asks for {config.num_gpus} GPUs; {processes.cuda_count()} are visible.")
    if config.num_gpus > 1 and config.distributed in ("zero2", "zero3") and importlib.util.find_spec(
            "deepspeed") is None:
        problems.append(f"{config.distributed} needs DeepSpeed: `.venv/bin/pip install deepspeed` on the GPU machine, "
                        "or choose ddp or fsdp.")
    free = shutil.disk_usage(workspace.current().root).free
    need = checkpoint_bytes(config) if not why else 0
    if need > free:
        problems.append(f"The disk has {size_text(free)} free; the checkpoints need about {size_text(need)}. "
                        "Free space or lower save_total_limit.")
    return problems


def _preference_problems(config: RunConfig, project_id: int | None, loaded: dict[str, list]) -> list[str]:
    """Why a preference run's data cannot train (no pairs or feedback, prompts of the locked test set), or why an
    SFT run must not train on it (answers labelled bad would be learned as good ones)."""
    if config.objective == "sft":
        bad = [r.location for label in ("training", "validation") for r in loaded.get(label, [])
               if preferences.label_of(r) is False]
        return [f"{len(bad)} records (first: {bad[0]}) are answers labelled bad (label false), which SFT would learn "
                "as good ones; train this data with --objective kto, or drop them."] if bad else []
    rows_of = preference_fit.OBJECTIVES[config.objective][0]
    problems = []
    for path, purpose in ((config.train_file, "training"), (config.eval_file, "early stopping and model selection")):
        try:
            if path:
                rows_of(path, purpose, project_id)
        except DataError as err:
            problems.append(str(err))
    return problems


def template_problems(base_model: str, loaded: dict[str, list]) -> list[str]:
    """Records the model's chat template cannot take (tool data without tool support, a refused rendering), named;
    checked here so that the launch is refused instead of a run failing after the model loads."""
    folder = local_folder(base_model)
    if folder is None or not (folder / "tokenizer.json").is_file():
        return []
    try:
        template = ModelTemplate.from_folder(folder)
    except TemplateRefused as err:
        return [str(err)]
    except (TemplateError, OSError, ValueError) as err:
        return [f"The model's tokenizer cannot be read ({err})."]
    problems = []
    for label, records in loaded.items():
        rows = [Row(r.location, r.turns, record_tools(r.extra)) for r in usable(records)]
        problems += refusals(template, rows, label)
    return problems


def trainer_command(config: RunConfig) -> list[str]:
    """The command that trains ({python} and {run_dir} filled in by the supervisor): the trainer module itself, or
    for more than one GPU engine.train.distributed, which writes the run's Accelerate config and execs
    `accelerate launch` with it."""
    if config.num_gpus > 1:
        return ["{python}", "-m", "engine.train.distributed", "{run_dir}"]
    return ["{python}", "-m", "engine.train", "{run_dir}"]


def launch(config: RunConfig, project_id: int | None = None, request_key: str | None = None,
           run_dir: Path | None = None, then_command: list[str] | None = None) -> Run:
    """Hand a training run to the supervisor (no checks: launch_checked is what the page and the CLI call)."""
    return supervisor.launch(config, trainer_command(config), project_id, request_key, run_dir=run_dir,
                             then_command=then_command)


def launch_checked(config: RunConfig, project_id: int | None = None, request_key: str | None = None,
                   run_dir: Path | None = None, then_command: list[str] | None = None) -> Run:
    problems = preflight(config, config.dataset_version_id)
    if problems:
        raise LaunchRefused(" ".join(problems))
    return launch(config, project_id, request_key, run_dir, then_command)


def example_length(base_model: str, split_row) -> tuple[float | None, str]:
    """(the long end of the training examples' token lengths, what counted them): the 99th percentile under the
    model's own tokenizer and template when they are on this machine, else the quality report's 95th percentile
    under the demo tokenizer."""
    profile = example_profile(base_model, split_row)
    return (profile["p99"], profile["source"]) if profile else (None, REPORT_SOURCE)


REPORT_SOURCE = "the demo tokenizer (this model's own is not on this machine; 95th percentile)"


def example_profile(base_model: str, split_row) -> dict | None:
    """The training examples' length profile (engine.train.lengths): under the model's own tokenizer when it is on
    this machine, else from the quality report."""
    measured = length_profile(base_model, split.split_path(split_row, "train"))
    if measured:
        return measured
    report = cached_report(get_version(split_row.dataset_version_id))
    return profile_from_report(report.stats.get("tokens_per_example", {}), REPORT_SOURCE) if report else None


def config_for_split(split_row, base_model: str, name: str = "run", **overrides) -> RunConfig:
    """A run config on a split's train and validation parts with the recommended settings (overrides win)."""
    version = get_version(split_row.dataset_version_id)
    values = {field: value for field, (value, _) in
              recommendations(base_model, split_row, overrides.get("technique"),
                              objective=overrides.get("objective")).items()}
    values.update(name=name, base_model=base_model, dataset_version_id=version.id, split_id=split_row.id,
                  train_file=str(split.split_path(split_row, "train")),
                  eval_file=str(split.split_path(split_row, "validation")) if split_row.counts["validation"]
                  else None)
    if not values["eval_file"]:
        values["early_stopping"] = False
    values.update(overrides)
    return RunConfig.build(**values)


# Settings the Train page's number inputs may hand over as floats (3.0) that the trainer wants as integers.
_INTEGER_SETTINGS = ("max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "lora_r",
                     "lora_alpha", "num_virtual_tokens", "warmup_steps", "eval_steps", "save_steps", "logging_steps",
                     "early_stopping_patience", "seed", "num_gpus")


def config_from_form(split_row, base_model: str, name: str, technique: str, values: dict) -> RunConfig:
    """The Train page's settings as a run config: integers where the trainer wants them, and early stopping only
    when the split has a validation part to stop on."""
    clean = {k: int(v) if k in _INTEGER_SETTINGS and v is not None else v for k, v in values.items()}
    clean["early_stopping"] = bool(clean.get("early_stopping")) and bool(split_row.counts["validation"])
    return config_for_split(split_row, base_model, name=name, technique=technique, **clean)


def request_key(project_id: int, draft: str, config: RunConfig) -> str:
    """The idempotency key of a launch: the same draft with the same settings is the same request, so a double click
    or a resubmitted form starts one run."""
    return hashlib.sha256(f"{project_id}:{draft}:{config.model_dump_json()}".encode()).hexdigest()[:32]


def recommendations(base_model: str, split_row, technique: str | None = None, gpu_gb: float = 0,
                    objective: str | None = None) -> dict[str, tuple]:
    """field -> (value, reason): every recommended setting for this model and split, the technique and objective too
    unless they are given. Aimed at a CPU (gpu_gb 0) on a machine without a GPU, the run is held to minutes (engine.train
    .estimate)."""
    facts = model_facts(base_model)
    technique = technique or recommend_technique(facts)[0]
    profile = example_profile(base_model, split_row)
    length, source = (profile["p99"], profile["source"]) if profile else (None, REPORT_SOURCE)
    rec = recommend_hyperparameters(facts, technique, split_row.counts["train"], length, gpu_gb, source)
    rec["technique"] = (technique, rec["technique"][1])
    kind, good, bad = data_kind(str(split.split_path(split_row, "train")))
    objective = objective or kind
    if objective != "sft":
        rec = recommend_preference(rec, objective, split_row.counts["train"], (good, bad), kind)
    if not gpu_gb and processes.cuda_count() == 0:
        rec = estimate.fit_to_budget(rec, technique, facts, split_row.counts["train"],
                                     split_row.counts["validation"], profile)
    return rec


@functools.lru_cache(maxsize=64)  # a split's files never change once written
def data_kind(train_file: str) -> tuple[str, int, int]:
    """(the objective a split's training data defaults to: sft, dpo for pairs, kto for feedback; the answers labelled
    good; those labelled bad), a pair counting one of each."""
    records = usable(load_records(Path(train_file)).records)
    pairs = len(preferences.pairs_of(records))
    labels = [preferences.label_of(r) for r in records]
    return preferences.objective_of(records), pairs + labels.count(True), pairs + labels.count(False)


def time_estimate(config: RunConfig, split_row=None) -> estimate.TimeEstimate:
    """How long this run will take on this machine (engine.train.estimate)."""
    facts = model_facts(config.base_model)
    profile = example_profile(config.base_model, split_row) if split_row is not None else \
        length_profile(config.base_model, config.train_file)
    n_train = split_row.counts["train"] if split_row is not None else _count_lines(config.train_file)
    n_val = split_row.counts["validation"] if split_row is not None else \
        (_count_lines(config.eval_file) if config.eval_file else 0)
    device = "cuda" if processes.cuda_count() > 0 else "cpu"
    return estimate.estimate(config.model_dump(), config.technique, facts, n_train, n_val, profile, device)


def split_of(config: RunConfig):
    """The split a config trains on, or None (a config written by hand)."""
    return split.get_split(config.split_id) if config.split_id else None


def _count_lines(path: str | None) -> int:
    try:
        with open(path or "", "rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 0


def resolve_config(file_values: dict | None, model: str | None, data: Path | None, project_name: str,
                   overrides: dict) -> tuple[RunConfig, int | None]:
    """The run config `studio train` runs: a whole config file (with the given fields over it), or the quick form
    (--model and --data, registered and split like the wizard) with the recommendations, then the file's fields,
    then the given ones. Validated as the Train page validates, with the same sentences."""
    if not (model and data):
        if model or data:
            raise LaunchRefused("The quick form needs both --model and --data.")
        if file_values is None:
            raise LaunchRefused("Give a run config (--config FILE), or both --model and --data for the quick form.")
        return RunConfig.build(**{**file_values, **overrides}), None
    resolved = resolve_base(model, progress=stage_lines(lambda line: print(line, file=sys.stderr, flush=True)))
    if resolved.note:
        print(resolved.note, file=sys.stderr, flush=True)
    project = projects.ensure_project(project_name)
    version = versions.import_file(project.id, data, data.name)
    made = next(iter(split.list_splits(version.id)), None) or split.create_split(version)
    given = {**(file_values or {}), **overrides}
    for bound in ("base_model", "train_file", "eval_file", "split_id", "dataset_version_id"):
        given.pop(bound, None)  # the quick form's data and model decide these
    technique = given.get("technique") or recommend_technique(model_facts(resolved.path))[0]
    name = given.pop("name", None) or f"{data.stem}-{technique}"
    if int(given.get("max_steps") or -1) > 0 and not {"eval_steps", "save_steps", "logging_steps"} & given.keys():
        given = {**spread_over(int(given["max_steps"])), **given}
    return config_for_split(made, resolved.path, name=name, **given), project.id


def spread_over(steps: int) -> dict[str, int]:
    """Evaluations, checkpoints and log lines for a run the user cut to `steps` steps, about ten of each as for a
    recommended run: the recommended ones were spread over another number of steps (a CPU budget's 10 steps would
    evaluate at every one of 40)."""
    every = max(1, steps // 10)
    return {"eval_steps": every, "save_steps": every, "logging_steps": max(1, min(10, every // 2))}
