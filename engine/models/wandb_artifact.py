"""A registered version (and each stage change) logged as a W&B model artifact, with the stage as its alias, so teams
that use W&B's registry see it there. Offline by default (the run's own W&B mode decides; `wandb sync` uploads
later); the artifact references the run's model folder instead of copying it. It runs in its own process, started
in the background: W&B's start-up never slows a registration, and its failure never fails one.

    python -m engine.models.wandb_artifact VERSION_ID ALIAS
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from engine.jobs import supervisor
from engine.models import registry
from engine.store import workspace
from engine.store.tables import ModelVersion


def start(version: ModelVersion, alias: str) -> None:
    """Log the artifact in a background process (its output in the workspace's logs/wandb-models.log)."""
    ws = workspace.current()
    log = ws.root / "logs" / "wandb-models.log"
    log.parent.mkdir(mode=0o700, exist_ok=True)
    with log.open("ab") as out:
        subprocess.Popen([sys.executable, "-m", "engine.models.wandb_artifact", str(version.id), alias],
                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def log(version: ModelVersion, alias: str) -> str:
    """Log the artifact now; returns the W&B run folder it was written to."""
    import wandb  # the ML stack loads in seconds: only this background process imports it

    run = registry.run_of(version)
    config = run.config
    mode: Any = "online" if config.get("wandb_mode") == "online" else "offline"
    folder = workspace.current().cache / "wandb" / "models"
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["WANDB_SILENT"] = "true"
    made = wandb.init(project=config.get("wandb_project") or "finetune-studio", name=f"{version.label} {alias}",
                      job_type="model-registry", dir=str(folder), mode=mode, reinit="finish_previous",
                      settings=wandb.Settings(x_disable_stats=True))
    try:
        artifact = wandb.Artifact(version.name, type="model", metadata={
            "version": version.label, "stage": alias, "run": run.id, "base_model": config.get("base_model"),
            "technique": config.get("technique"), "dataset_version_id": config.get("dataset_version_id")})
        artifact.add_reference(f"file://{supervisor.run_path(run) / 'final'}", checksum=True)
        made.log_artifact(artifact, aliases=[alias, f"v{version.number}"])
        return str(made.dir)
    finally:
        made.finish()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    workspace.apply_library_env(workspace.current())
    version = registry.get_version(int(argv[0]))
    where = log(version, argv[1])
    registry.log_event(version, "wandb_artifact", "W&B", alias=argv[1], dir=where)
    print(f"Logged {version.label} as a W&B model artifact ({argv[1]}) in {where}.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
