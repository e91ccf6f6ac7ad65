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

import errno
import importlib.util
import os
import signal
import sys
import time
from pathlib import Path

from engine import settings
from engine.data.chat_template import DEFAULT_TEMPLATE, ModelTemplate
from engine.jobs import heartbeat, runner
from engine.jobs.checkpoints import COMPLETE_MARKER, complete_checkpoints
from engine.jobs.event_log import MetricsWriter, perplexity
from engine.jobs.failures import DataError, ModelLoadError, RunConfigError
from engine.store import workspace
from engine.train import base_models, model_safety
from engine.train.config import RunConfig
from engine.train.estimate import record_speed
from engine.train.examples import describe_loss, encode_rows, refusals, training_rows, validation_rows
from engine.train.recommend import model_facts
from engine.train.stop_flag import STOP, request_stop

# Fault injection for the fault tests (tests/test_train.py) only: "ignore_sigterm", or "raise:<kind>:<step>" with
# kind gpu_oom, disk_full or crash. Unset in normal use.
FAULT = settings.current().fault
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
    if FAULT == "ignore_sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    workspace.apply_library_env(workspace.current())
    events_dir = run_dir if RANK == 0 else run_dir / f"rank-{RANK}"
    events_dir.mkdir(exist_ok=True)

    def body(writer: MetricsWriter) -> dict:
        config = RunConfig.load(run_dir / "config.json")
        outcome = fit(config, run_dir, writer, resume)
        if outcome["outcome"] == "succeeded" and RANK == 0 and not resume:  # the next estimates use this speed
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


def importlib_spec(name: str) -> bool:

    return importlib.util.find_spec(name) is not None


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
    from trl import SFTTrainer  # the ML stack loads in seconds: only jobs that train or generate import it

    device, precision = resolve_device(config)
    batching = resolve_batching(config, device)
    model, tokenizer = load_model(config, device, precision, batching)
    train_set, eval_set = tokenized_examples(config, tokenizer, writer)
    report_to = start_wandb(config, run_dir, writer) if RANK == 0 else "none"
    args = sft_args(config, run_dir, eval_set is not None, device, precision, batching, report_to)
    callbacks = [studio_callback(writer)]
    if eval_set is not None and config.early_stopping:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                         processing_class=tokenizer, peft_config=peft_config(config), callbacks=callbacks)
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
        early = next((c for c in callbacks if isinstance(c, EarlyStoppingCallback)), None)
        stopped_early = bool(early and early.early_stopping_patience_counter >= config.early_stopping_patience)
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


def peak_memory(device: str) -> dict:
    """The process's peak resident memory (MB) and, on CUDA, the peak GPU memory PyTorch allocated (MB)."""
    import resource

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device == "cuda":
        import torch  # the ML stack loads in seconds: only jobs that train or generate import it

        out["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def sft_args(config: RunConfig, run_dir: Path, validated: bool, device: str, precision: str, batching: str,
             report_to: list[str] | str):
    """The TRL training arguments for this run (checkpoints in <run>/checkpoints, evaluation and early stopping only
    with a validation set)."""
    from trl import SFTConfig  # the ML stack loads in seconds: only jobs that train or generate import it

    return SFTConfig(
        output_dir=str(run_dir / "checkpoints"), run_name=config.name, seed=config.seed,
        learning_rate=config.learning_rate, num_train_epochs=config.num_train_epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, warmup_steps=config.warmup_steps,
        lr_scheduler_type=config.lr_scheduler_type, weight_decay=config.weight_decay,
        # the answer-only mask comes with the tokenized examples (engine.train.examples), for any chat template
        max_length=config.max_length, assistant_only_loss=False,
        packing=batching == "packing", padding_free=batching == "packing" and importlib_spec("flash_attn"),
        train_sampling_strategy="group_by_length" if batching == "length_grouping" else "random",
        logging_steps=config.logging_steps, logging_first_step=True,
        eval_strategy="steps" if validated else "no", eval_steps=config.eval_steps,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        load_best_model_at_end=validated and config.early_stopping, metric_for_best_model="eval_loss",
        greater_is_better=False, report_to=report_to, use_cpu=device == "cpu",
        bf16=precision == "bf16", fp16=precision == "fp16", gradient_checkpointing=False,
        disable_tqdm=True, dataloader_num_workers=0,
        # Liger's fused kernels (RMSNorm, SwiGLU, RoPE, the loss without full logits) on CUDA when installed.
        use_liger_kernel=device == "cuda" and importlib_spec("liger_kernel"),
    )


def studio_callback(writer: MetricsWriter):
    """Metrics lines with throughput and ETA; stop-and-save on SIGTERM; a marker once a checkpoint is complete."""
    from transformers import TrainerCallback  # heavy: loaded on first use

    class StudioCallback(TrainerCallback):
        def __init__(self):
            self.last = None   # (time, num_tokens) at the previous log event
            self.start = None  # (time, step) when training (or the resumed part) began

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = (time.time(), state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            now = time.time()
            base = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), "max_steps": state.max_steps}
            if "eval_loss" in logs:
                writer.write("eval", **base, eval_loss=logs["eval_loss"], eval_perplexity=perplexity(logs["eval_loss"]),
                             eval_mean_token_accuracy=logs.get("eval_mean_token_accuracy"))
                return
            if "loss" not in logs:
                return  # the end-of-training summary
            tokens = logs.get("num_tokens")
            tps = None
            if self.last is not None and tokens is not None and now > self.last[0]:
                tps = (tokens - self.last[1]) / (now - self.last[0])
            if tokens is not None:
                self.last = (now, tokens)
            eta = None
            if self.start and state.max_steps and state.global_step > self.start[1]:
                per_step = (now - self.start[0]) / (state.global_step - self.start[1])
                eta = per_step * (state.max_steps - state.global_step)
            writer.write("log", **base, loss=logs.get("loss"), perplexity=perplexity(logs.get("loss")),
                         learning_rate=logs.get("learning_rate"), grad_norm=logs.get("grad_norm"),
                         num_tokens=tokens, tokens_per_second=tps, eta_seconds=eta,
                         mean_token_accuracy=logs.get("mean_token_accuracy"))

        def on_step_end(self, args, state, control, **kwargs):
            if FAULT.startswith("raise:"):
                _inject(FAULT, state.global_step)
            gone, stop = _stop_flags(args.device)
            if gone:  # the run folder was deleted: save nothing (it would recreate the path)
                control.should_save = False
                control.should_training_stop = True
                return control
            if stop:
                control.should_training_stop = True
                control.should_save = True
            return control

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                (folder / COMPLETE_MARKER).write_text(str(state.global_step))

    return StudioCallback()


def _stop_flags(device) -> tuple[bool, bool]:
    """(the run folder is gone, a stop was asked for), as seen by any rank: every rank must stop at the same step,
    or the others wait forever for it."""
    gone, stop = heartbeat.folder_gone(), STOP.is_set()
    if WORLD_SIZE > 1:
        gone, stop = _any_rank([gone, stop], device)
    return gone, stop


def _any_rank(flags: list[bool], device) -> list[bool]:
    """Each flag set on any rank (an all-reduce of a few integers per step)."""
    import torch  # the ML stack loads in seconds: only jobs that train or generate import it
    import torch.distributed as dist  # (same)

    if not (dist.is_available() and dist.is_initialized()):
        return flags
    values = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(v) for v in values.tolist()]


def _inject(fault: str, step: int) -> None:
    _, kind, at = fault.split(":")
    if step < int(at):
        return
    if kind == "gpu_oom":
        import torch  # the ML stack loads in seconds: only jobs that train or generate import it

        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
    if kind == "disk_full":

        raise OSError(errno.ENOSPC, "No space left on device (injected)")
    raise RuntimeError("injected failure")


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
