"""The GPU check suite's code paths on the CPU with tiny shapes (`bench/gpu_suite.py --cpu-smoke`): both trainings
run, the studio's settings pad less than TRL's defaults, and the GPU-only checks say they were not run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.xdist_group("gpu_suite")


def test_the_gpu_suite_runs_its_code_paths_on_the_cpu(tmp_path):
    out = tmp_path / "suite.json"
    proc = subprocess.run([sys.executable, "bench/gpu_suite.py", "--cpu-smoke", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    plain, studio = result["lora"]["plain"], result["lora"]["studio"]
    assert result["device"] == "cpu" and result["shape"] == "tiny"
    assert plain["batching"] == "padding" and studio["batching"] == "length_grouping"
    assert plain["tokens_per_second"] > 0 and studio["tokens_per_second"] > 0 and plain["params"] == studio["params"]
    assert studio["padding_share"] < plain["padding_share"]  # grouping by length is the point of the preset
    assert result["oom_classification"]["status"] == "not run" and result["qlora"]["status"] == "not run"
