"""The studio's hooks into a TRL trainer (SFT and preference runs alike): one metrics line per log and evaluation
event with throughput and ETA (and, for preference runs, the rewards of chosen and rejected answers, their margin and
accuracy), stop-and-save on SIGTERM, no save once the run folder is gone, a marker once a checkpoint is complete, and
the fault injection of the fault tests (STUDIO_FAULT)."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from engine import settings
from engine.jobs import heartbeat
from engine.jobs.checkpoints import COMPLETE_MARKER
from engine.jobs.event_log import MetricsWriter, perplexity
from engine.train.stop_flag import STOP

# Fault injection for the fault tests (tests/test_train.py) only: "ignore_sigterm", or "raise:<kind>:<step>" with
# kind gpu_oom, disk_full or crash. Unset in normal use.
FAULT = settings.current().fault
WORLD_SIZE = int(os.environ.get("WORLD_SIZE", "1"))
# What TRL's preference trainers log, as the studio's event fields (the same names with eval_ in evaluation events).
PREFERENCE_KEYS = {"rewards/chosen": "rewards_chosen", "rewards/rejected": "rewards_rejected",
                   "rewards/margins": "reward_margin", "rewards/accuracies": "reward_accuracy"}


def preference_fields(logs: dict, prefix: str = "") -> dict:
    """The preference metrics of one TRL log line (none in an SFT run's)."""
    return {prefix + ours: logs[prefix + theirs] for theirs, ours in PREFERENCE_KEYS.items() if prefix + theirs in logs}


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
                             eval_mean_token_accuracy=logs.get("eval_mean_token_accuracy"),
                             **preference_fields(logs, "eval_"))
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
                         mean_token_accuracy=logs.get("mean_token_accuracy"), **preference_fields(logs))

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
