"""What a reader yields and raises: shared by the readers of each container (engine.data.readers, csv_rows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import StudioError


class InputError(StudioError):
    """The input as a whole cannot be read; the message is one sentence for the user."""


@dataclass(slots=True)
class Item:
    location: int
    value: Any = None
    problem: str | None = None  # set when this record could not be parsed
