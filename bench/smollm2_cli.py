"""What a user does with SmolLM2 on a fresh workspace, for the benchmarks that measure a gain: `studio train` (quick
form, recommended settings, a step cap) on a data file, then `studio eval RUN --json`; each in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


def train_and_evaluate(home: Path, data: Path, steps: int, *eval_args: str) -> tuple[dict, float, float] | None:
    """(the evaluation report, seconds to train, seconds to evaluate), or None when a command failed (its output
    printed)."""
    env = {**os.environ, "STUDIO_HOME": str(home)}
    began = time.time()
    done = subprocess.run([sys.executable, "-m", "engine.cli", "train", "--model", SMOLLM2, "--data", str(data),
                           "--max-steps", str(steps)], cwd=ROOT, env=env, text=True, capture_output=True)
    trained = time.time() - began
    if done.returncode:
        print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
        return None
    run_id = next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("Run "))
    began = time.time()
    done = subprocess.run([sys.executable, "-m", "engine.cli", "eval", run_id, "--json", *eval_args], cwd=ROOT,
                          env=env, text=True, capture_output=True)
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(done.stdout), trained, time.time() - began
