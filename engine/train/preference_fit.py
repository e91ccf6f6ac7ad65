"""Preference training (DPO, TRL's DPOTrainer) on a split of preference pairs: each record's prompt, its chosen
answer (the last assistant turn) and its rejected one (extra["rejected"]), in TRL's conversational preference format,
so the model's own chat template renders both sides. Pairs are refused, as SFT records are, when they copy a locked
test record, and also when their prompt is a locked test prompt (a pair teaches how to answer its prompt).

With LoRA or QLoRA the reference model is implicit: the same base with the adapter switched off (no second copy of
the weights); a full fine-tune gets TRL's frozen copy."""

from __future__ import annotations

from pathlib import Path

from engine.data import preferences, split
from engine.data.loading import load_records
from engine.data.quality import usable
from engine.data.readers import InputError
from engine.data.test_lock import locked_records, project_of
from engine.jobs.event_log import MetricsWriter
from engine.jobs.failures import DataError
from engine.train.arguments import dpo_args
from engine.train.config import RunConfig


def pair_rows(path: str, purpose: str, project_id: int | None) -> list[dict]:
    """TRL's conversational preference rows of a split file; DataError when it has no pairs or uses the test set."""
    try:
        records = usable(load_records(Path(path)).records)
    except InputError as err:
        raise DataError(str(err)) from None
    pairs = preferences.pairs_of(records)
    if not pairs:
        raise DataError(f"The {purpose} data has no preference pairs (a prompt with a chosen and a rejected "
                        "answer); train it with the sft objective, or build preference data (studio prefs build).")
    try:
        split.refuse_locked(pairs, purpose, project_id)
    except split.LockedTestError as err:
        raise DataError(str(err)) from None
    tested = {preferences.prompt_key(preferences.prompt_of(r)) for r in locked_records(project_id)}
    leaked = [r.location for r in pairs if preferences.prompt_key(preferences.prompt_of(r)) in tested]
    if leaked:
        raise DataError(f"{len(leaked)} pairs (first: {leaked[0]}) have the prompt of a locked test record and "
                        f"cannot be used for {purpose}; the test split may only be used for the final evaluation.")
    return [{"prompt": [{"role": m["role"], "content": m["content"]} for m in preferences.prompt_of(r)],
             "chosen": [{"role": "assistant", "content": preferences.chosen_of(r)}],
             "rejected": [{"role": "assistant", "content": preferences.rejected_of(r)}]} for r in pairs]


def dpo_trainer(config: RunConfig, run_dir: Path, model, tokenizer, peft, where: tuple, callbacks: list,
                writer: MetricsWriter):
    """(TRL's DPOTrainer over the split's pairs, whether there are validation pairs)."""
    from datasets import Dataset  # the ML stack loads in seconds: only jobs that train import it
    from trl import DPOTrainer  # (same)

    device, precision, report_to = where
    project_id = project_of(config.dataset_version_id)
    train = pair_rows(config.train_file, "training", project_id)
    validation = pair_rows(config.eval_file, "early stopping and model selection", project_id) \
        if config.eval_file else None
    writer.write("loss", message=f"DPO on {len(train)} preference pairs (beta {config.beta:g}); reference: "
                                 f"{'the base without the adapter' if peft is not None else 'a frozen copy'}",
                 examples=len(train))
    print(f"DPO: {len(train)} training pairs, {len(validation or [])} validation pairs", flush=True)
    args = dpo_args(config, run_dir, validation is not None, device, precision, report_to)
    trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=Dataset.from_list(train),
                         eval_dataset=Dataset.from_list(validation) if validation else None,
                         processing_class=tokenizer, peft_config=peft, callbacks=callbacks)
    return trainer, validation is not None
