"""Benchmark: the time estimate shown before a launch (engine.train.estimate) against the run's real duration, on a
fresh workspace (no measured speed yet: the calibrated figure) and again after one run (the measured speed).

Runs: the tiny demo model with every recommended setting (the demo's default run), and SmolLM2-135M-Instruct
(LoRA, recommended settings, capped at --smol-steps steps so the bench stays short). Figures: estimated and real
seconds from launch to the end (start-up included), and their ratio.

    .venv/bin/python bench/time_estimate.py [--smol-steps 30] [--no-smol]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed_run(project, made, base: str, label: str, **overrides) -> dict:
    from engine.jobs import supervisor
    from engine.train import launcher

    config = launcher.config_for_split(made, base, name=label, **overrides)
    before = launcher.time_estimate(config, made)
    started = time.monotonic()
    run = launcher.launch(config, project.id)
    final = supervisor.wait(run.id, timeout=3600)
    real = time.monotonic() - started
    after = launcher.time_estimate(config, made)
    out = {"run": label, "status": final.status, "steps": before.steps, "estimate_s": round(before.seconds, 1),
           "real_s": round(real, 1), "ratio": round(before.seconds / real, 2),
           "estimate_after_s": round(after.seconds, 1), "ratio_after": round(after.seconds / real, 2),
           "basis_before": before.basis, "max_steps": config.max_steps}
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smol-steps", type=int, default=30)
    parser.add_argument("--no-smol", action="store_true")
    args = parser.parse_args()
    os.environ["STUDIO_HOME"] = tempfile.mkdtemp(prefix="studio-estimate-bench-") + "/workspace"
    from engine.data import demo_project, split
    from engine.store import workspace
    from engine.train import base_models

    project = demo_project.ensure_demo()
    made = split.splits_of_project(project.id)[0]
    print(f"{os.cpu_count()} CPU cores", flush=True)
    timed_run(project, made, str(workspace.current().demo_model), "demo-default", wandb_mode="offline")
    if not args.no_smol:
        smol = base_models.resolve(base_models.SMOLLM2_ID).path
        timed_run(project, made, smol, "smollm2-lora", max_steps=args.smol_steps, wandb_mode="offline")


if __name__ == "__main__":
    main()
