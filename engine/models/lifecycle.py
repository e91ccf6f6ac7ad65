"""What people do to a model version, as the page and the CLI call it: register a run, move a version between
stages, roll production back. Each also logs the version as a W&B model artifact with its new stage as the alias
(in the background: engine.models.wandb_artifact)."""

from __future__ import annotations

from engine.models import export, registry, stages, wandb_artifact
from engine.store.tables import ModelVersion, User


def register(actor: User, run_id: int, name: str | None = None, number: str | None = None) -> ModelVersion:
    version = registry.register(actor, run_id, name, number)
    wandb_artifact.start(version, version.stage)
    return version


def promote(actor: User, ref: int | str, to: str, reason: str = "", override: bool = False) -> ModelVersion:
    version = stages.promote(actor, ref, to, reason, override)
    wandb_artifact.start(version, version.stage)
    return version


def rollback(actor: User, project_id: int, reason: str = "") -> ModelVersion:
    version = stages.rollback(actor, project_id, reason)
    wandb_artifact.start(version, version.stage)
    return version


def starting_weights(ref: int | str) -> str:
    """The folder a run that starts from a registered version trains on: that version merged (made once, kept under
    the workspace's models/served/, which serving uses too)."""
    return str(export.served_model(registry.get_version(ref)))
