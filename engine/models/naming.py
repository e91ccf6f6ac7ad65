"""Version numbers: the name of a model series (the project's slug by default), the bump the studio proposes for a
new run and why (semantic versioning applied to models), and the label people use, e.g. customer-support-v2.1.0."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import StudioError

_SLUG = re.compile(r"[^a-z0-9]+")
_LABEL = re.compile(r"^(?P<name>[a-z0-9][a-z0-9-]{0,79})-v(?P<major>\d{1,6})\.(?P<minor>\d{1,6})\.(?P<patch>\d{1,6})$")
_NUMBER = re.compile(r"^v?(\d{1,6})\.(\d{1,6})\.(\d{1,6})$")
# The settings whose change makes a different model family (major), and those that are only tuning (patch).
MAJOR_KEYS = ("base_model", "technique")


class VersionError(StudioError, ValueError):
    """A version name or number that cannot be used; the message says why."""


@dataclass(frozen=True)
class Bump:
    major: int
    minor: int
    patch: int
    reason: str

    @property
    def number(self) -> tuple[int, int, int]:
        return self.major, self.minor, self.patch


def slug(text: str) -> str:
    """A series name from a project name: lowercase letters, digits and dashes (at most 80 characters)."""
    made = _SLUG.sub("-", text.lower()).strip("-")[:80].strip("-")
    return made or "model"


def check_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,79}", name or ""):
        raise VersionError("A model name is lowercase letters, digits and dashes (up to 80), starting with a letter "
                           "or digit, e.g. customer-support.")
    return name


def parse_label(label: str) -> tuple[str, tuple[int, int, int]]:
    """"customer-support-v2.1.0" -> ("customer-support", (2, 1, 0))."""
    found = _LABEL.match((label or "").strip())
    if not found:
        raise VersionError(f"{label[:100]!r} is not a model version; write it as NAME-vMAJOR.MINOR.PATCH, e.g. "
                           "customer-support-v1.0.0 (`studio models` lists them).")
    return found["name"], (int(found["major"]), int(found["minor"]), int(found["patch"]))


def parse_number(text: str) -> tuple[int, int, int]:
    found = _NUMBER.match((text or "").strip())
    if not found:
        raise VersionError(f"{text[:40]!r} is not a version number; write MAJOR.MINOR.PATCH, e.g. 2.1.0.")
    return int(found[1]), int(found[2]), int(found[3])


def propose(previous: dict | None, current: dict) -> Bump:
    """The next number after `previous` (the series' latest version: its number and lineage facts) for a model with
    the facts `current` ({"base_model", "technique", "task", "dataset_version_id", "config"}), and why."""
    if previous is None:
        return Bump(1, 0, 0, "the first version of this model")
    major, minor, patch = previous["number"]
    before = previous["facts"]
    objective = str(current.get("objective") or "sft")
    if current.get("parent_version") and objective != before.get("objective", "sft") and \
            _origin(before) == _origin(current):
        data = "feedback" if objective == "kto" else "preference"
        return Bump(major, minor + 1, 0, f"minor: {objective.upper()} on {data} data (dataset "
                                          f"version {current.get('dataset_version_id')}) from "
                                          f"{current['parent_version']}")
    before, current = {**before, "base_model": _origin(before)}, {**current, "base_model": _origin(current)}
    for key, what in (("base_model", "the base model"), ("technique", "the technique"), ("task", "the task")):
        if before.get(key) != current.get(key):
            return Bump(major + 1, 0, 0, f"major: {what} changed ({before.get(key)} -> {current.get(key)})")
    if before.get("dataset_version_id") != current.get("dataset_version_id"):
        return Bump(major, minor + 1, 0, f"minor: the training data changed (dataset version "
                                          f"{before.get('dataset_version_id')} -> {current.get('dataset_version_id')})")
    changed = sorted(k for k in set(before.get("config", {})) | set(current.get("config", {}))
                     if k not in _NOT_SETTINGS and before.get("config", {}).get(k) != current.get("config", {}).get(k))
    if changed:
        return Bump(major, minor, patch + 1, "patch: only hyper-parameters changed (" + ", ".join(changed[:6])
                    + (" and more" if len(changed) > 6 else "") + ")")
    return Bump(major, minor, patch + 1, "patch: retrained with the same data and settings")


def _origin(facts: dict) -> str | None:
    """The base model a line of versions began with (older versions recorded only base_model)."""
    return facts.get("origin") or facts.get("base_model")


# Config keys that name or place a run rather than set how it trains.
_NOT_SETTINGS = {"name", "train_file", "eval_file", "dataset_version_id", "split_id", "base_model", "technique",
                 "wandb_project", "wandb_mode", "device", "parent_version"}


def check_override(number: tuple[int, int, int], proposed: Bump, taken: set[tuple[int, int, int]],
                   latest: tuple[int, int, int] | None) -> tuple[int, int, int]:
    """A number the user chose instead: upward only (at least the proposal, above the latest), never one in use."""
    if number in taken:
        raise VersionError(f"Version {'.'.join(map(str, number))} already exists; a number is never reused.")
    if number < proposed.number or (latest is not None and number <= latest):
        raise VersionError(f"Version {'.'.join(map(str, number))} is lower than the proposed "
                           f"{'.'.join(map(str, proposed.number))} ({proposed.reason}); a version can only be "
                           "numbered upward.")
    return number
