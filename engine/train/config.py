"""The run configuration: one typed object per run, saved as config.json in the run folder.

The trainer subprocess reads only that file. Unknown keys are rejected and every problem is reported at once. Field
descriptions are the help texts of the Train page's widgets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.errors import StudioError

TECHNIQUES = ("lora", "qlora", "full", "prompt_tuning", "prefix_tuning")


class ConfigError(StudioError, ValueError):
    """The configuration is invalid; the message lists every problem."""


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str = Field("run", max_length=120, description="A name for the run, shown in the run list.")
    base_model: str = Field(..., description="A local model folder or a Hugging Face hub id (must be cached).")
    dataset_version_id: int | None = Field(None, description="The dataset version the split was made from.")
    split_id: int | None = Field(None, description="The split whose train part trains and whose validation part "
                                                   "evaluates. Its test part is locked and never used here.")
    train_file: str = Field(..., description="Training data (OpenAI chat JSONL), resolved from the split.")
    eval_file: str | None = Field(None, description="Validation data for evaluation and early stopping.")
    mix_file: str | None = Field(None, description="General-purpose examples mixed in to limit forgetting.")
    mix_share: float = Field(0.0, ge=0.0, le=0.5, description="Share of the training set taken from the mix-in "
                                                              "examples (0 to 0.5).")

    objective: Literal["sft", "dpo", "orpo", "kto"] = Field(
        "sft", description="sft learns the answers; dpo learns to prefer each pair's chosen answer over its rejected "
                           "one (TRL's DPOTrainer); orpo does both at once without a reference model (ORPOTrainer); "
                           "kto learns from answers labelled good or bad, unpaired (KTOTrainer). Preference pairs "
                           "default to dpo, unpaired feedback to kto.")
    parent_version: str | None = Field(
        None, max_length=120, description="A registered model version (NAME-vX.Y.Z) whose weights this run starts "
                                          "from, merged (preference training usually starts from the SFT version); "
                                          "the result registers as that model's next minor version.")
    beta: float = Field(0.1, gt=0, le=10, description="DPO and KTO: how far the tuned model may move from the "
                                                      "reference (lower lets it move further); ORPO: the weight of "
                                                      "its preference term. 0.1 is the usual start.")
    desirable_weight: float = Field(1.0, gt=0, le=100, description="KTO: the loss weight of answers labelled good.")
    undesirable_weight: float = Field(1.0, gt=0, le=100, description="KTO: the loss weight of answers labelled bad "
                                                                     "(weigh the rarer label up).")
    technique: Literal["lora", "qlora", "full", "prompt_tuning", "prefix_tuning"] = Field(
        "lora", description="LoRA trains small adapter matrices (the default); QLoRA does so on a 4-bit base "
                            "(CUDA only); full updates every weight; prompt and prefix tuning learn virtual tokens.")
    lora_r: int = Field(8, ge=1, le=512, description="LoRA rank: adapter capacity. 8 is a good start; 16-64 for "
                                                     "harder tasks.")
    lora_alpha: int = Field(16, ge=1, le=1024, description="LoRA scaling; usually twice the rank.")
    lora_dropout: float = Field(0.05, ge=0.0, le=0.5, description="Dropout on the adapter inputs.")
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"],
                                      description="Layers that get adapters: q_proj,v_proj to start; all-linear "
                                                  "for more capacity.")
    num_virtual_tokens: int = Field(20, ge=1, le=512, description="Virtual tokens for prompt/prefix tuning.")

    learning_rate: float = Field(2e-4, gt=0, le=1.0, description="Step size of the optimizer.")
    num_train_epochs: float = Field(3.0, gt=0, le=100, description="Passes over the training data (1-3 usually).")
    max_steps: int = Field(-1, ge=-1, description="Stop after this many optimizer steps (-1: use the epochs).")
    per_device_train_batch_size: int = Field(8, ge=1, le=1024, description="Examples per step on each device.")
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024, description="Steps whose gradients are summed "
                                                                           "before an update.")
    max_length: int = Field(1024, ge=16, le=131072, description="Tokens per example (or packed sequence); longer "
                                                                "examples are cut.")
    warmup_steps: int = Field(0, ge=0, description="Steps of linear learning-rate warm-up.")
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "cosine", description="How the learning rate falls during training.")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="L2 penalty on the weights.")
    seed: int = Field(42, ge=0, description="Random seed (data order, adapter initialization).")
    assistant_only_loss: bool = Field(True, description="Learn only from the assistant's tokens, not from the "
                                                        "prompts.")
    batching: Literal["auto", "packing", "length_grouping", "padding"] = Field(
        "auto", description="How examples share a batch. auto: packing (no padding) on CUDA with flash attention, "
                            "length grouping elsewhere (similar lengths together, little padding; packing is slow "
                            "without flash attention); padding: TRL's default, each batch padded to its longest.")

    eval_steps: int = Field(50, ge=1, description="Evaluate on the validation data every N steps.")
    logging_steps: int = Field(10, ge=1, description="Log training metrics every N steps.")
    save_steps: int = Field(50, ge=1, description="Save a resumable checkpoint every N steps.")
    save_total_limit: int = Field(3, ge=1, le=100, description="Checkpoints kept on disk.")
    early_stopping: bool = Field(True, description="Stop when validation loss has not improved for `patience` "
                                                   "evaluations, and keep the best checkpoint.")
    early_stopping_patience: int = Field(3, ge=1, le=100, description="Evaluations without improvement before "
                                                                      "stopping.")
    early_stopping_metric: Literal["eval_loss"] = Field("eval_loss", description="Metric watched for early stopping.")

    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="auto: bf16 on GPUs that "
                                                                                  "support it, fp32 on CPU.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train.")
    num_gpus: int = Field(1, ge=1, le=64, description="GPUs for one run (more than one launches through "
                                                      "accelerate; with device cpu, the number of CPU processes).")
    distributed: Literal["ddp", "zero2", "zero3", "fsdp"] = Field(
        "ddp", description="With more than one GPU: ddp copies the model to every GPU (fastest when it fits); "
                           "zero2 (DeepSpeed) shards gradients and optimizer state; zero3 (DeepSpeed) and fsdp "
                           "(PyTorch FSDP2) also shard the weights, for models too large for one GPU.")

    wandb_project: str = Field("finetune-studio", max_length=128, description="W&B project name.")
    wandb_mode: Literal["offline", "online", "disabled"] = Field("offline", description="offline writes the W&B "
                                                                                       "run to disk (sync later); "
                                                                                       "online needs a key.")

    @model_validator(mode="after")
    def _coherent(self) -> RunConfig:
        problems = []
        if self.early_stopping and not self.eval_file:
            problems.append("early stopping needs validation data (eval_file)")
        if self.early_stopping and self.save_steps % self.eval_steps:
            problems.append("with early stopping, save_steps must be a multiple of eval_steps")
        if self.mix_share > 0 and not self.mix_file:
            problems.append("mix_share is set but there is no mix_file")
        if not self.target_modules:
            problems.append("target_modules is empty")
        if self.num_gpus > 1 and self.device == "cpu" and self.distributed != "ddp":
            problems.append(f"{self.distributed} shards over GPUs; several CPU processes train with ddp")
        if self.distributed != "ddp" and self.technique == "qlora":
            problems.append("QLoRA trains on one GPU or with ddp; 4-bit weights do not shard")
        if self.objective != "sft" and self.technique in ("prompt_tuning", "prefix_tuning"):
            problems.append(f"{self.objective.upper()} trains LoRA, QLoRA or full weights, not virtual tokens")
        if self.objective == "kto" and self.per_device_train_batch_size < 2:
            problems.append("KTO estimates its KL term from the other answers in a batch: per_device_train_batch_size "
                            "must be at least 2")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def save(self, path: Path) -> None:
        path = Path(path)
        tmp = path.with_suffix(".part")
        tmp.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        try:
            return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"Cannot read the run config {path} ({err}).") from None
        except ValidationError as err:
            raise ConfigError(describe(err)) from None

    @classmethod
    def build(cls, **values) -> RunConfig:
        try:
            return cls(**values)
        except ValidationError as err:
            raise ConfigError(describe(err)) from None


def describe(err: ValidationError) -> str:
    """Every problem of a validation error in one sentence."""
    parts = []
    for e in err.errors():
        where = ".".join(str(x) for x in e["loc"]) or "config"
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where != "config" else msg)
    return "The run config is invalid: " + "; ".join(parts) + "."
