"""The TRL training arguments of a run: what every objective shares (checkpoints in <run>/checkpoints, evaluation and
early stopping only with a validation set, W&B, precision) and what SFT, DPO, ORPO and KTO add."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from engine.train.config import RunConfig


def importlib_spec(name: str) -> bool:
    """Is an optional package installed (flash-attn, Liger, bitsandbytes)?"""
    return importlib.util.find_spec(name) is not None


def common_args(config: RunConfig, run_dir: Path, validated: bool, device: str, precision: str,
                report_to: list[str] | str) -> dict[str, Any]:
    return dict(
        output_dir=str(run_dir / "checkpoints"), run_name=config.name, seed=config.seed,
        learning_rate=config.learning_rate, num_train_epochs=config.num_train_epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, warmup_steps=config.warmup_steps,
        lr_scheduler_type=config.lr_scheduler_type, weight_decay=config.weight_decay,
        logging_steps=config.logging_steps, logging_first_step=True,
        eval_strategy="steps" if validated else "no", eval_steps=config.eval_steps,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        # DPO's eval_loss is its loss on the validation pairs: it rises when the reward margins stop holding on
        # pairs the model has not seen (over-optimisation), so both objectives stop early on it.
        load_best_model_at_end=validated and config.early_stopping, metric_for_best_model="eval_loss",
        greater_is_better=False, report_to=report_to, use_cpu=device == "cpu",
        bf16=precision == "bf16", fp16=precision == "fp16", gradient_checkpointing=False,
        disable_tqdm=True, dataloader_num_workers=0,
        # Liger's fused kernels (RMSNorm, SwiGLU, RoPE, the loss without full logits) on CUDA when installed.
        use_liger_kernel=device == "cuda" and importlib_spec("liger_kernel"),
    )


def sft_args(config: RunConfig, run_dir: Path, validated: bool, device: str, precision: str, batching: str,
             report_to: list[str] | str):
    from trl import SFTConfig  # the ML stack loads in seconds: only jobs that train or generate import it

    return SFTConfig(
        **common_args(config, run_dir, validated, device, precision, report_to),
        # the answer-only mask comes with the tokenized examples (engine.train.examples), for any chat template
        max_length=config.max_length, assistant_only_loss=False,
        packing=batching == "packing", padding_free=batching == "packing" and importlib_spec("flash_attn"),
        train_sampling_strategy="group_by_length" if batching == "length_grouping" else "random",
    )


def dpo_args(config: RunConfig, run_dir: Path, validated: bool, device: str, precision: str,
             report_to: list[str] | str):
    from trl import DPOConfig  # the ML stack loads in seconds: only jobs that train or generate import it

    # The reference model is implicit with an adapter (LoRA, QLoRA): the base with the adapter switched off, so no
    # second copy of the weights is loaded; a full fine-tune gets TRL's own frozen copy.
    return DPOConfig(**common_args(config, run_dir, validated, device, precision, report_to),
                     beta=config.beta, max_length=config.max_length, truncation_mode="keep_start")


def orpo_args(config: RunConfig, run_dir: Path, validated: bool, device: str, precision: str,
              report_to: list[str] | str):
    # ORPO is in TRL's experimental namespace (the version is pinned, so its API is the one tested)
    from trl.experimental.orpo import ORPOConfig  # the ML stack loads in seconds: only training jobs import it

    return ORPOConfig(**common_args(config, run_dir, validated, device, precision, report_to),
                      beta=config.beta, max_length=config.max_length)


def kto_args(config: RunConfig, run_dir: Path, validated: bool, device: str, precision: str,
             report_to: list[str] | str):
    from trl import KTOConfig  # the ML stack loads in seconds: only training jobs import it

    # KTO pairs each answer with its batch neighbours' for the KL estimate, so TRL reads the data in order
    # (train_sampling_strategy "sequential"); the rows come shuffled with the run's seed instead.
    return KTOConfig(**common_args(config, run_dir, validated, device, precision, report_to),
                     beta=config.beta, desirable_weight=config.desirable_weight,
                     undesirable_weight=config.undesirable_weight, max_length=config.max_length)
