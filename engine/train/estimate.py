"""How long a run will take on this machine, said before it starts (the Train page, `studio train --dry-run`), and a
CPU-only machine's recommendation held to a run that ends in minutes.

The arithmetic: a forward pass costs about 2 x parameters + 2 x layers x hidden x length FLOPs per token (the
weights, then attention over the example); training costs three forward passes when every weight learns and two
with LoRA, prompt or prefix tuning (the frozen weights need no gradient of their own); evaluation one. A preference
objective scores two sequences per example, and DPO and KTO add a reference forward pass on each (PREFERENCE_WORK). Tokens come
from the examples' length profile (each example cut at max_length). The machine's speed is what its own finished runs achieved (every succeeded run records its
effective FLOP/s here, per device, with the model's size: small models use a CPU far less well than large ones); before
the first run, a figure calibrated on the project's 2-core machines, per core. Start-up (imports, loading the model)
comes on top. No torch here: the page and the CLI answer at once.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from engine.store import workspace

# Effective training FLOP/s per CPU core (padding and the trainer's own overhead included), measured on the
# project's 2-core machines with the recommended settings (bench/time_estimate.py): the tiny demo model (0.15M
# parameters) and SmolLM2-135M-Instruct (LoRA).
CPU_FLOPS_PER_CORE = ((0.15e6, 8.5e9), (135e6, 38e9))
GPU_FLOPS = 60e12  # an uncalibrated guess for one modern GPU until a run finished on it
START_SECONDS = {"cpu": 12.0, "cuda": 45.0}  # process start, imports, model and data loading
# What a preference objective does per example, next to SFT's one sequence: (sequences: DPO and ORPO score the chosen
# and the rejected answer, KTO its answer and a mismatched one for the KL term; whether a reference model scores each
# sequence once more, without gradients).
PREFERENCE_WORK = {"dpo": (2, True), "orpo": (2, False), "kto": (2, True)}
CPU_BUDGET_SECONDS = 600.0  # a CPU-only machine's default run ends within about ten minutes


@dataclass
class TimeEstimate:
    seconds: float
    steps: int
    examples_per_step: int
    tokens_per_example: float
    evaluations: int
    device: str
    flops_per_second: float
    basis: str  # where the speed comes from

    def duration(self) -> str:
        return duration_text(self.seconds) if self.known else "unknown"

    @property
    def known(self) -> bool:
        return not math.isnan(self.seconds)

    def sentence(self) -> str:
        if not self.known:
            return "The model's size is unknown (not a local folder, not in the catalog), so its time is too."
        where = "this machine's CPU" if self.device == "cpu" else "this machine's GPU"
        evals = f", {self.evaluations} evaluation{'s' if self.evaluations > 1 else ''}" if self.evaluations else ""
        return (f"About {self.duration()} on {where}: {self.steps:,} steps of {self.examples_per_step} examples "
                f"(~{self.tokens_per_example:.0f} tokens each){evals}, at {self.flops_per_second / 1e9:,.1f} GFLOP/s "
                f"{self.basis}. An estimate: expect up to half as much again.")


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{max(5, round(seconds / 5) * 5):.0f} s"
    if seconds < 5400:
        return f"{round(seconds / 60):.0f} min"
    return f"{seconds / 3600:.1f} h"


def flops_per_token(facts, technique: str, length: float, training: bool = True) -> float:
    """facts: engine.train.recommend.ModelFacts (params, layers, hidden); length: the example's tokens."""
    forward = 2 * facts.params + 2 * facts.layers * facts.hidden * length
    return forward * ((3.0 if technique == "full" else 2.0) if training else 1.0)


def tokens_per_example(profile: dict | None, max_length: int) -> float:
    """The mean example length once cut at max_length (trapezoids over the profile's percentiles)."""
    if not profile:
        return float(max_length) / 2  # nothing measured: assume examples fill half the window
    cut = [min(float(p), max_length) for p in profile["percentiles"]]
    return sum((a + b) / 2 for a, b in zip(cut, cut[1:])) / (len(cut) - 1)


def planned_steps(values: dict, n_train: int) -> int:
    if int(values.get("max_steps") or -1) > 0:
        return int(values["max_steps"])
    per_step = _examples_per_step(values)
    return max(1, math.ceil(math.ceil(n_train / per_step) * float(values.get("num_train_epochs") or 1)))


def _examples_per_step(values: dict) -> int:
    return (int(values.get("per_device_train_batch_size") or 8) * int(values.get("gradient_accumulation_steps") or 1)
            * int(values.get("num_gpus") or 1))


def _speed_file() -> Path:
    return workspace.current().cache / "training_speed.json"


def record_speed(device: str, facts, technique: str, tokens: float | None, seconds: float | None,
                 examples: int) -> None:
    """A succeeded run's effective FLOP/s on this machine (tokens: the non-padding tokens it trained on, in
    `examples` examples, over `seconds` of training), for the next estimates (the trainer calls this)."""
    params = facts.params
    if not tokens or not seconds or seconds <= 0 or params <= 0 or examples <= 0:
        return
    path = _speed_file()
    try:
        known = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    except (OSError, ValueError):
        known = []
    entry = {"device": device, "params": params, "cores": os.cpu_count(),
             "flops_per_second": flops_per_token(facts, technique, tokens / examples) * tokens / seconds}
    known = [k for k in known if not (k.get("device") == device and k.get("params") == params)] + [entry]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known[-50:]), encoding="utf-8")
        tmp.replace(path)  # readers never see half a file
    except OSError:
        pass  # a full disk costs the next estimate its calibration, never the run its success


def machine_speed(device: str, params: float) -> tuple[float, str]:
    """(effective FLOP/s, where the figure comes from) for a model of this size on this machine."""
    try:
        known = json.loads(_speed_file().read_text(encoding="utf-8")) if _speed_file().is_file() else []
    except (OSError, ValueError):
        known = []
    mine = [k for k in known if k.get("device") == device and k.get("params", 0) > 0]
    if mine and params > 0:
        near = min(mine, key=lambda k: abs(math.log(k["params"] / params)))
        if abs(math.log(near["params"] / params)) < math.log(4):  # a model within 4x the size: comparable
            return near["flops_per_second"], (f"as a run of a {near['params'] / 1e6:,.1f}M-parameter model achieved "
                                              "on this machine")
    if device == "cuda":
        return GPU_FLOPS, "(a typical GPU figure, not yet measured on this one)"
    return _cpu_default(params) * (os.cpu_count() or 1), f"(calibrated for {os.cpu_count()} CPU cores)"


def _cpu_default(params: float) -> float:
    """Per-core FLOP/s for a model of this size: log-linear between the calibration points, flat beyond them."""
    (p0, f0), (p1, f1) = CPU_FLOPS_PER_CORE
    if params <= p0:
        return f0
    if params >= p1:
        return f1
    share = math.log(params / p0) / math.log(p1 / p0)
    return math.exp(math.log(f0) + share * math.log(f1 / f0))


def estimate(values: dict, technique: str, facts, n_train: int, n_val: int, profile: dict | None,
             device: str) -> TimeEstimate:
    """The run's time on this machine for these settings (values as on the Train page: RunConfig fields; facts:
    engine.train.recommend.ModelFacts)."""
    params = facts.params
    max_length = int(values.get("max_length") or 1024)
    tokens = tokens_per_example(profile, max_length)
    steps = planned_steps(values, n_train)
    per_step = _examples_per_step(values)
    speed, basis = machine_speed(device, params)
    evaluations = steps // int(values.get("eval_steps") or steps) if n_val else 0
    if params <= 0:
        return TimeEstimate(seconds=math.nan, steps=steps, examples_per_step=per_step, tokens_per_example=tokens,
                            evaluations=evaluations, device=device, flops_per_second=speed, basis=basis)
    sequences, reference = PREFERENCE_WORK.get(str(values.get("objective") or "sft"), (1, False))
    forward = flops_per_token(facts, technique, tokens, training=False)
    train_flops = (flops_per_token(facts, technique, tokens) + reference * forward) * tokens * per_step * steps * \
        sequences
    eval_flops = forward * (1 + reference) * tokens * n_val * evaluations * sequences
    seconds = START_SECONDS[device] + (train_flops + eval_flops) / speed
    return TimeEstimate(seconds=seconds, steps=steps, examples_per_step=per_step, tokens_per_example=tokens,
                        evaluations=evaluations, device=device, flops_per_second=speed, basis=basis)


def fit_to_budget(rec: dict, technique: str, facts, n_train: int, n_val: int, profile: dict | None,
                  budget: float = CPU_BUDGET_SECONDS) -> dict:
    """On a CPU-only machine: when the recommended epochs would run past the budget, recommend max_steps that end
    within it (with the reason), and evaluations and checkpoints spread over those steps: about ten, fewer when one
    pass over the validation data is itself long (evaluation takes at most a third of the budget). rec: field ->
    (value, reason), as recommend.recommend_hyperparameters gives it."""
    values = {k: v for k, (v, _) in rec.items()}
    full = estimate(values, technique, facts, n_train, n_val, profile, "cpu")
    if not full.known or full.seconds <= budget:
        return rec
    tokens = full.tokens_per_example
    one_eval = flops_per_token(facts, technique, tokens, training=False) * tokens * n_val / full.flops_per_second
    evaluations = max(1, min(10, int(budget / 3 / one_eval))) if one_eval > 0 else 10

    def seconds(steps: int) -> float:
        every = max(1, steps // evaluations)
        return estimate({**values, "max_steps": steps, "eval_steps": every}, technique, facts, n_train, n_val,
                        profile, "cpu").seconds

    low, high = 1, full.steps  # the most steps that fit: seconds() grows with steps
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if seconds(mid) <= budget else (low, mid - 1)
    steps = max(10, low)
    if steps >= full.steps:
        return rec
    rec["max_steps"] = (steps, f"this machine has no GPU: the recommended {values['num_train_epochs']:g} epochs "
                               f"({full.steps:,} steps) would take about {full.duration()} here, so the run stops "
                               f"after {steps:,} steps (about {duration_text(seconds(steps))}); set -1 to train every "
                               "epoch, or train on a GPU")
    every = max(1, steps // evaluations)
    rec["eval_steps"] = (every, f"{steps // every} evaluations in the run" + (
        "" if evaluations == 10 else ": one pass over the validation data is long on this machine"))
    rec["save_steps"] = (every, "a checkpoint at every evaluation (early stopping restores the best one)")
    rec["logging_steps"] = (max(1, min(10, every // 2)), "several points between evaluations")
    return rec
