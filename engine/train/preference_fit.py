"""Preference training on a split: DPO (TRL's DPOTrainer) and ORPO (ORPOTrainer) on preference pairs, KTO
(KTOTrainer) on answers labelled good or bad. A pair is its prompt, its chosen answer (the last assistant turn) and its
rejected one (extra["rejected"]); a feedback record is its prompt, its answer and extra["label"]. Both go to TRL in
its conversational formats, so the model's own chat template renders every side. KTO also takes pairs, as a good and
a bad answer to one prompt. Records are refused, as SFT records are, when they copy a locked test record, and also
when their prompt is a locked test prompt (a pair teaches how to answer its prompt).

With LoRA or QLoRA the DPO and KTO reference model is implicit: the same base with the adapter switched off (no
second copy of the weights); a full fine-tune gets TRL's frozen copy. ORPO needs no reference."""

from __future__ import annotations

import random
from pathlib import Path

from engine.data import preferences, split
from engine.data.loading import load_records
from engine.data.quality import usable
from engine.data.readers import InputError
from engine.data.test_lock import locked_records, project_of
from engine.jobs.event_log import MetricsWriter
from engine.jobs.failures import DataError
from engine.train.arguments import dpo_args, kto_args, orpo_args
from engine.train.config import RunConfig


def _usable(path: str, purpose: str, project_id: int | None, wanted, what: str) -> list:
    """The records of a split file that `wanted` keeps, refused when they use the locked test set."""
    try:
        records = wanted(usable(load_records(Path(path)).records))
    except InputError as err:
        raise DataError(str(err)) from None
    if not records:
        raise DataError(f"The {purpose} data has no {what}; train it with the sft objective, or build preference "
                        "data (studio prefs build).")
    try:
        split.refuse_locked(records, purpose, project_id)
    except split.LockedTestError as err:
        raise DataError(str(err)) from None
    tested = {preferences.prompt_key(preferences.prompt_of(r)) for r in locked_records(project_id)}
    leaked = [r.location for r in records if preferences.prompt_key(preferences.prompt_of(r)) in tested]
    if leaked:
        raise DataError(f"{len(leaked)} records (first: {leaked[0]}) have the prompt of a locked test record and "
                        f"cannot be used for {purpose}; the test split may only be used for the final evaluation.")
    return records


def _prompt(rec) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in preferences.prompt_of(rec)]


def pair_rows(path: str, purpose: str, project_id: int | None) -> list[dict]:
    """TRL's conversational preference rows of a split file; DataError when it has no pairs or uses the test set."""
    pairs = _usable(path, purpose, project_id, preferences.pairs_of,
                    "preference pairs (a prompt with a chosen and a rejected answer)")
    return [{"prompt": _prompt(r), "chosen": [{"role": "assistant", "content": preferences.chosen_of(r)}],
             "rejected": [{"role": "assistant", "content": preferences.rejected_of(r)}]} for r in pairs]


def feedback_rows(path: str, purpose: str, project_id: int | None, seed: int = 0) -> list[dict]:
    """TRL's conversational unpaired rows (prompt, completion, label) of a split file's feedback records and pairs
    (a pair is a good and a bad answer), shuffled: KTO reads them in order."""
    records = _usable(path, purpose, project_id,
                      lambda rs: [r for r in rs if preferences.is_pair(r) or preferences.label_of(r) is not None],
                      "feedback (answers labelled good or bad) or preference pairs")
    rows = []
    for r in records:
        answers = [(preferences.chosen_of(r), True), (preferences.rejected_of(r), False)] if preferences.is_pair(r) \
            else [(preferences.chosen_of(r), preferences.label_of(r))]
        rows += [{"prompt": _prompt(r), "completion": [{"role": "assistant", "content": text}], "label": label}
                 for text, label in answers]
    random.Random(seed).shuffle(rows)
    return rows


# objective -> (rows of a split file, TRL arguments, TRL trainer's import path, uses a reference model)
OBJECTIVES = {"dpo": (pair_rows, dpo_args, ("trl", "DPOTrainer"), True),
              "orpo": (pair_rows, orpo_args, ("trl.experimental.orpo", "ORPOTrainer"), False),
              "kto": (feedback_rows, kto_args, ("trl", "KTOTrainer"), True)}


def preference_trainer(config: RunConfig, run_dir: Path, model, tokenizer, peft, where: tuple, callbacks: list,
                       writer: MetricsWriter):
    """(TRL's trainer for the run's preference objective over the split, whether there are validation rows)."""
    import importlib

    from datasets import Dataset  # the ML stack loads in seconds: only jobs that train import it

    rows_of, args_of, (module, name), referenced = OBJECTIVES[config.objective]
    trainer_class = getattr(importlib.import_module(module), name)
    device, precision, report_to = where
    project_id = project_of(config.dataset_version_id)
    extra = {"seed": config.seed} if rows_of is feedback_rows else {}
    train = rows_of(config.train_file, "training", project_id, **extra)
    validation = rows_of(config.eval_file, "early stopping and model selection", project_id, **extra) \
        if config.eval_file else None
    what = "preference pairs" if rows_of is pair_rows else \
        f"labelled answers ({sum(r['label'] for r in train)} good, {sum(not r['label'] for r in train)} bad)"
    reference = ("; reference: " + ("the base without the adapter" if peft is not None else "a frozen copy")) \
        if referenced else "; no reference model"
    writer.write("loss", message=f"{config.objective.upper()} on {len(train)} {what} (beta {config.beta:g})"
                                 f"{reference}", examples=len(train))
    print(f"{config.objective.upper()}: {len(train)} training rows, {len(validation or [])} validation rows",
          flush=True)
    args = args_of(config, run_dir, validation is not None, device, precision, report_to)
    kwargs = {"ref_model": None} if referenced else {}
    trainer = trainer_class(model=model, args=args, train_dataset=Dataset.from_list(train),
                            eval_dataset=Dataset.from_list(validation) if validation else None,
                            processing_class=tokenizer, peft_config=peft, callbacks=callbacks, **kwargs)
    return trainer, validation is not None
