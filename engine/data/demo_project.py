"""The built-in demo workspace: a demo project holding the sample dataset, and the tiny demo model.

`make run` calls `studio ui --demo`, which runs `ensure_demo()` before the dashboard starts (sample imported, split
with its test part locked, model built), so every page has something real to show on a fresh machine without a GPU
or a network.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.data import split, versions
from engine.data.quality import report_for_version
from engine.demo import sample
from engine.demo.model import build_demo_model
from engine.store import projects, workspace
from engine.store.tables import DatasetVersion, Project

SAMPLE_NAME = "support-sample.jsonl"


def import_sample(project_id: int) -> DatasetVersion:
    """Write the built-in sample (deterministic) and register it in the project."""
    path = workspace.current().uploads / SAMPLE_NAME
    if not path.exists():
        sample.write_sample(path)
    return versions.import_file(project_id, path, SAMPLE_NAME)


def ensure_demo(build_model: bool = True, progress: Callable[[str], None] | None = None) -> Project:
    """The demo project, its sample (imported, checked, split) and the demo model, each made once; `progress` gets a
    line per step (the terminal of `make run` shows them)."""
    say = progress or (lambda line: None)
    project = projects.ensure_project(projects.DEMO_PROJECT, "chat", sample.SYSTEM_PROMPT)
    if not versions.list_versions(project.id):
        say("Importing the sample dataset (600 support conversations with a few planted flaws)...")
        version = import_sample(project.id)
        say("Checking its quality (the report is kept for the pages)...")

        report_for_version(version)
        say("Splitting it 80/10/10 without leakage (the test part is locked)...")
        split.create_split(version)  # the default locked split, so the Train page is ready
    ws = workspace.current()
    if build_model and not (ws.demo_model / "config.json").is_file():
        say("Building the demo model offline (a tokenizer, then a short pre-training)...")
        build_demo_model(ws.demo_model, progress=say)
    return project
