"""An augmentation job's settings (its config.json) and how it is launched: the source records are the train part of
a split only (a paraphrase of a validation or test record in training would be leakage), and the job is a supervised
job of kind "augment", listed by `studio runs`, stopped by `studio cancel`, resumed by `studio resume`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.augment import methods
from engine.augment.teacher import PAGE_KEY_ENV, TeacherSettings
from engine.data import split as splits
from engine.data.loading import load_records
from engine.data.quality import usable
from engine.data.shapes import Record
from engine.errors import StudioError
from engine.jobs import secret_env, supervisor
from engine.store import users
from engine.store.tables import Run, User


class AugmentError(StudioError, ValueError):
    """An augmentation that cannot run as asked (one sentence)."""


class AugmentOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "augment"
    device: str = "net"  # the teacher does the work: one augmentation at a time, beside training
    max_steps: int = 0
    version_id: int
    split_id: int
    method: str = Field(default="paraphrase", pattern="^(paraphrase|synthetic|backtranslate)$")
    scope: str = Field(default="user", pattern="^(user|exchange)$")
    per_record: int = Field(default=2, ge=1, le=10)
    count: int = Field(default=50, ge=1, le=100_000)  # synthetic conversations
    topic: str = Field(default="", max_length=2000)
    language: str = Field(default="French", min_length=2, max_length=40)
    source_language: str = Field(default="English", min_length=2, max_length=40)
    templates: dict[str, str] = Field(default_factory=lambda: dict(methods.TEMPLATES))
    teacher: TeacherSettings
    budget_requests: int = Field(default=1000, ge=1, le=1_000_000)
    budget_tokens: int = Field(default=2_000_000, ge=1, le=1_000_000_000)
    price_per_million_tokens: float = Field(default=0.0, ge=0, le=10_000)  # for the cost shown; 0: not shown
    seed: int = 0

    @model_validator(mode="after")
    def _complete(self) -> AugmentOptions:
        self.templates = {**methods.TEMPLATES, **{k: v[:8000] for k, v in self.templates.items()
                                                  if k in methods.TEMPLATES}}
        if self.method == "synthetic" and not self.topic.strip():
            raise ValueError("synthetic generation needs a topic description")
        return self

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")


def build(**values) -> AugmentOptions:
    """AugmentOptions from the page's or the CLI's values; a bad value is one sentence."""
    try:
        return AugmentOptions(**values)
    except ValidationError as err:
        first = err.errors()[0]
        where = " ".join(str(p) for p in first["loc"]).replace("_", " ")
        raise AugmentError(f"The augmentation setting {where or 'values'} is not valid: "
                           f"{first['msg'].removeprefix('Value error, ')}.") from None


def plan(options: AugmentOptions) -> dict:
    """What a launch will ask for: tasks, requests (within the budget) and, at most, tokens."""
    n = len(methods.tasks(options.method, source_records(options), options.per_record, options.count,
                          options.seed))
    requests = min(n * (2 if options.method == "backtranslate" else 1), options.budget_requests)
    tokens = min(requests * (options.teacher.max_tokens * options.per_record + 400), options.budget_tokens)
    return {"tasks": n, "requests": requests, "max_tokens": tokens,
            "max_cost": tokens * options.price_per_million_tokens / 1e6}


def source_records(options: AugmentOptions) -> list[Record]:
    made = splits.get_split(options.split_id)
    if made is None:
        raise AugmentError(f"Split {options.split_id} no longer exists.")
    return usable(load_records(splits.split_path(made, "train")).records)


def launch(actor: User, options: AugmentOptions, project_id: int, key: str | None = None) -> Run:
    """Queue the job. key: an API key typed on the page, handed to the job's environment only."""
    users.require(actor, "admin", "analyst")
    made = splits.get_split(options.split_id)
    if made is None or made.dataset_version_id != options.version_id:
        raise AugmentError("Augment a dataset version through one of its splits (make the default split first).")
    n_tasks = len(methods.tasks(options.method, source_records(options), options.per_record, options.count,
                                options.seed))
    if not n_tasks:
        raise AugmentError("The split's train part has no record with a user turn to augment.")
    options.max_steps = n_tasks
    request = hashlib.sha256(json.dumps([options.model_dump(), actor.id, _nonce()]).encode()).hexdigest()[:32]
    if key:
        secret_env.hold(request, {PAGE_KEY_ENV: key})
    return supervisor.launch(options, ["{python}", "-m", "engine.augment.job", "{run_dir}"], project_id,
                             request_key=request, kind="augment", device=options.device)


def _nonce() -> str:
    import uuid

    return uuid.uuid4().hex
