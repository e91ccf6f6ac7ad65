"""A job's checkpoints: the ones whose save finished (marked by the job once it is complete), so a resume never
starts from a half-written one."""

from __future__ import annotations

from pathlib import Path

COMPLETE_MARKER = "studio_complete"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints whose save finished (marked by the callback), oldest first; half-written ones are skipped."""
    folder = Path(run_dir) / "checkpoints"
    found = [p for p in folder.glob("checkpoint-*") if (p / COMPLETE_MARKER).is_file()] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))
