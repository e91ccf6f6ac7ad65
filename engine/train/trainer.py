"""The trainer: builds the model, the PEFT config and TRL's SFTTrainer from <run>/config.json, and trains.

    python -m engine.train RUN_DIR [--resume]                                (engine/train/__main__.py)
    accelerate launch --config_file RUN_DIR/accelerate.yaml -m engine.train RUN_DIR   (several processes:
                                                                          engine/train/distributed.py starts it)

With several processes, the first (rank 0) writes the run's metrics, W&B and the final files; each other rank writes
its own events to <run>/rank-N/metrics.jsonl; a stop (SIGTERM, or the run folder deleted) seen by any rank stops
them all at the same step.

It reads only the run folder's config.json. It appends one flushed JSON line per log and eval event to
<run>/metrics.jsonl and a final event with the outcome, logs the same to W&B (offline unless a key is configured; a
W&B failure is noted, never fatal), saves resumable checkpoints, and on SIGTERM stops at the next step, saves, writes
its final event and exits 0. Heavy imports happen inside `fit`, after the SIGTERM handler is installed.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from engine import settings
from engine.data.chat_template import DEFAULT_TEMPLATE, ModelTemplate
from engine.jobs import heartbeat, runner
from engine.jobs.checkpoints import complete_checkpoints
from engine.jobs.event_log import MetricsWriter
from engine.jobs.failures import DataError, ModelLoadError, RunConfigError
from engine.store import workspace
from engine.train import base_models, model_safety, preference_fit
from engine.train.arguments import importlib_spec, sft_args
from engine.train.callback import FAULT, studio_callback
from engine.train.config import RunConfig
from engine.train.estimate import record_speed
from engine.train.examples import describe_loss, encode_rows, refusals, training_rows, validation_rows
from engine.train.recommend import model_facts
from engine.train.stop_flag import STOP, request_stop

RANK = int(os.environ.get("RANK", "0"))  # set for each process by accelerate launch (torchrun); 0 when alone
WORLD_SIZE = int(os.environ.get("WORLD_SIZE", "1"))
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, request_stop)
    if not argv:
        print("usage: python -m engine.train RUN_DIR [--resume]", file=sys.stderr)
        return 2
    run_dir = Path(argv[0]).resolve()
    resume = "--resume" in argv[1:]
    if FAULT == "ignore_sigterm":  # the fault tests' (engine.train.callback)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    workspace.apply_library_env(workspace.current())
    events_dir = run_dir if RANK == 0 else run_dir / f"rank-{RANK}"
    events_dir.mkdir(exist_ok=True)

    def body(writer: MetricsWriter) -> dict:
        config = RunConfig.load(run_dir / "config.json")
        outcome = fit(config, run_dir, writer, resume)
        if outcome["outcome"] == "succeeded" and RANK == 0 and not resume and config.objective == "sft":
            # the next estimates use this speed (of SFT steps: a preference step does two forward passes per example)
            record_speed(outcome["device"], model_facts(config.base_model), config.technique, outcome["num_tokens"],
                         (outcome["train_runtime"] or 0) - outcome["eval_runtime"], outcome["step"]
                         * config.per_device_train_batch_size * config.gradient_accumulation_steps * WORLD_SIZE)
        return outcome

    return runner.run(run_dir, "train", body, resume=resume, events_dir=events_dir,
                      start={"rank": RANK, "world_size": WORLD_SIZE})


def resolve_device(config: RunConfig) -> tuple[str, str]:
    """(device, precision) for this machine."""
    import torch  # the ML stack loads in seconds: only jobs that train or generate import it

    cuda = torch.cuda.is_available()
    device = "cuda" if config.device == "auto" and cuda else ("cpu" if config.device == "auto" else config.device)
    if device == "cuda" and not cuda:
        raise RunConfigError("the config asks for CUDA but no GPU is visible.")
    if config.technique == "qlora" and device != "cuda":
        raise RunConfigError("QLoRA needs a CUDA GPU (bitsandbytes 4-bit); use LoRA on this machine.")
    precision = config.precision
    if precision == "auto":
        precision = "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if device == "cpu" and precision == "fp16":
        raise RunConfigError("fp16 training needs a GPU; use fp32 or bf16 on the CPU.")
    return device, precision


def peft_config(config: RunConfig):
    from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType  # heavy: loaded on first use

    if config.technique in ("lora", "qlora"):
        targets = "all-linear" if config.target_modules == ["all-linear"] else config.target_modules
        return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=targets, task_type=TaskType.CAUSAL_LM)
    if config.technique == "prompt_tuning":
        return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=config.num_virtual_tokens)
    if config.technique == "prefix_tuning":
        return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=config.num_virtual_tokens)
    return None


def resolve_batching(config: RunConfig, device: str) -> str:
    """Packing is exact and fast with flash attention (CUDA); elsewhere length grouping wastes less."""
    if config.batching != "auto":
        return config.batching
    return "packing" if device == "cuda" and importlib_spec("flash_attn") else "length_grouping"


def load_model(config: RunConfig, device: str, precision: str, batching: str = "padding"):
    import torch  # the ML stack loads in seconds: only jobs that train or generate import it
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: loaded on first use

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    kwargs = {"dtype": dtype}
    if batching == "packing" and device == "cuda" and importlib_spec("flash_attn"):
        kwargs["attn_implementation"] = "flash_attention_2"
    if config.technique == "qlora":
        from transformers import BitsAndBytesConfig  # heavy: loaded on first use

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=dtype,
                                                           bnb_4bit_use_double_quant=True)
    model_safety.check(base_models.local_folder(config.base_model))  # before anything from the folder is read
    try:
        tokenizer = AutoTokenizer.from_pretrained(config.base_model, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(config.base_model, **kwargs, **model_safety.LOAD_KWARGS)
    except OSError as err:
        raise ModelLoadError(f"{config.base_model}: {str(err).splitlines()[0][:200]}") from None
    if config.technique == "qlora":
        from peft import prepare_model_for_kbit_training  # heavy: loaded on first use

        model = prepare_model_for_kbit_training(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:  # a base model: the documented default, saved with the trained model
        tokenizer.chat_template = DEFAULT_TEMPLATE
    return model, tokenizer


def tokenized_examples(config: RunConfig, tokenizer, writer: MetricsWriter):
    """(train dataset, eval dataset or None): the split's records under the model's own chat template with the
    answer-only loss mask; records the template cannot take are refused by name before any step runs."""
    template = ModelTemplate.from_transformers(tokenizer)
    train_rows, eval_rows = training_rows(config), validation_rows(config)
    problems = refusals(template, train_rows, "training") + (refusals(template, eval_rows, "validation")
                                                             if eval_rows else [])
    if problems:
        raise DataError(" ".join(problems))
    train_set = encode_rows(template, train_rows, config.assistant_only_loss)
    if not train_set.input_ids:
        raise DataError("No training record has an assistant turn that carries loss (every one has weight 0).")
    eval_set = encode_rows(template, eval_rows, config.assistant_only_loss) if eval_rows else None
    loss = describe_loss(template, train_set, train_rows, config.assistant_only_loss)
    writer.write("loss", **loss)
    print(f"Loss: {loss['message']} ({loss['examples']} training examples)", flush=True)  # (the run's train.log)
    return train_set.dataset(), eval_set.dataset() if eval_set and eval_set.input_ids else None


def fit(config: RunConfig, run_dir: Path, writer: MetricsWriter, resume: bool) -> dict:
    from transformers import EarlyStoppingCallback  # heavy: loaded on first use

    device, precision = resolve_device(config)
    batching = resolve_batching(config, device) if config.objective == "sft" else "padding"
    model, tokenizer = load_model(config, device, precision, batching)
    report_to = start_wandb(config, run_dir, writer) if RANK == 0 else "none"
    callbacks = [studio_callback(writer)]
    if config.objective != "sft":
        trainer, validated = preference_fit.preference_trainer(config, run_dir, model, tokenizer, peft_config(config),
                                                               (device, precision, report_to), callbacks, writer)
    else:
        trainer, validated = _sft_trainer(config, run_dir, model, tokenizer, (device, precision, batching, report_to),
                                          callbacks, writer)
    early = EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience)
    if validated and config.early_stopping:
        trainer.add_callback(early)
    checkpoint = None
    if resume:
        done = complete_checkpoints(run_dir)
        checkpoint = str(done[-1]) if done else None
        writer.write("resume", checkpoint=Path(checkpoint).name if checkpoint else None)
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
        while heartbeat.GONE.is_set():  # the heartbeat ends the process in a moment; save nothing meanwhile
            time.sleep(0.05)
        state = trainer.state
        cancelled = STOP.is_set()
        if not cancelled:
            trainer.save_model(str(run_dir / "final"))  # every rank takes part (sharded weights are gathered)
            if RANK == 0:
                tokenizer.save_pretrained(str(run_dir / "final"))
        stopped_early = validated and config.early_stopping and \
            early.early_stopping_patience_counter >= config.early_stopping_patience
        best = state.best_model_checkpoint
        summary: dict = next((h for h in reversed(state.log_history) if "train_runtime" in h), {})
        tokens = next((h["num_tokens"] for h in reversed(state.log_history) if "num_tokens" in h), None)
        return {"outcome": "cancelled" if cancelled else "succeeded", "step": state.global_step,
                "train_runtime": summary.get("train_runtime"), "num_tokens": tokens,
                "eval_runtime": sum(h.get("eval_runtime", 0.0) for h in state.log_history),
                "max_steps": state.max_steps, "stopped_early": stopped_early,
                "best_step": int(best.rsplit("-", 1)[-1]) if best else None, "best_eval_loss": state.best_metric,
                "device": device, "precision": precision, "batching": batching, **peak_memory(device)}
    finally:
        finish_wandb()


def _sft_trainer(config: RunConfig, run_dir: Path, model, tokenizer, where: tuple, callbacks: list,
                 writer: MetricsWriter):
    """(TRL's SFTTrainer over the split's tokenized examples, whether there is a validation set)."""
    from trl import SFTTrainer  # the ML stack loads in seconds: only jobs that train or generate import it

    device, precision, batching, report_to = where
    train_set, eval_set = tokenized_examples(config, tokenizer, writer)
    args = sft_args(config, run_dir, eval_set is not None, device, precision, batching, report_to)
    return SFTTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                      processing_class=tokenizer, peft_config=peft_config(config), callbacks=callbacks), \
        eval_set is not None


def peak_memory(device: str) -> dict:
    """The process's peak resident memory (MB) and, on CUDA, the peak GPU memory PyTorch allocated (MB)."""
    import resource

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device == "cuda":
        import torch  # the ML stack loads in seconds: only jobs that train or generate import it

        out["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


_wandb_run = None


def start_wandb(config: RunConfig, run_dir: Path, writer: MetricsWriter) -> list[str] | str:
    """Start W&B for the Trainer to log to; online falls back to offline, offline to off. Never fatal."""
    global _wandb_run
    if config.wandb_mode == "disabled":
        return "none"
    os.environ.setdefault("WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL", "1")
    os.environ["WANDB_DIR"] = str(run_dir)
    os.environ["WANDB_SILENT"] = "true"
    try:
        import wandb  # the ML stack loads in seconds: only jobs that train or generate import it
    except ImportError:  # a machine without W&B installed still trains
        writer.write("note", message="W&B is not installed here; logging to W&B is off.")
        return "none"

    modes: list = ["online", "offline"] if config.wandb_mode == "online" else ["offline"]
    for mode in modes:
        try:
            _wandb_run = wandb.init(project=config.wandb_project, name=config.name, dir=str(run_dir), mode=mode,
                                    config=config.model_dump(), reinit="finish_previous",
                                    settings=wandb.Settings(init_timeout=settings.current().wandb_init_timeout,
                                                            x_disable_stats=True))
            writer.write("wandb", mode=mode, run_id=_wandb_run.id, url=getattr(_wandb_run, "url", None),
                         dir=str(Path(_wandb_run.dir).parent))
            return ["wandb"]
        except Exception as err:  # noqa: BLE001 - W&B must never fail a run
            writer.write("note", message=f"W&B {mode} failed ({type(err).__name__}: {str(err)[:200]}); "
                                         f"{'trying offline' if mode == 'online' else 'logging to W&B is off'}.")
    return "none"


def finish_wandb() -> None:
    global _wandb_run
    if _wandb_run is not None:
        try:
            _wandb_run.finish()
        except Exception:  # noqa: BLE001 - the run's own outcome stands
            pass
        _wandb_run = None
