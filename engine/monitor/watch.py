"""A watched folder: log files that appear in it are imported as they arrive (once each: a file's bytes are imported
only once, so a restart or a copy never counts rows twice). A file is taken when its size has not changed between two
looks, so one still being written waits for the next round."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from engine.errors import StudioError
from engine.monitor import ingest

SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")


def scan_once(project_id: int, folder: Path, sizes: dict[Path, int], model: str | None = None,
              mapping: dict[str, str] | None = None) -> list[ingest.ImportResult | str]:
    """Import the files whose size is stable since the last look; returns the results (or error sentences)."""
    out: list[ingest.ImportResult | str] = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES):
        if sizes.get(path) == -1:
            continue
        size = path.stat().st_size
        if sizes.get(path) != size:
            sizes[path] = size  # first seen, or still growing: look again next round
            continue
        try:
            out.append(ingest.import_log(project_id, path, model, mapping))
        except StudioError as err:
            out.append(f"{path.name}: {err}")
        except OSError as err:  # the store could not be written (disk full, permissions): nothing was recorded
            out.append(f"{path.name}: could not be stored ({err.strerror or err}); trying again next round")
            continue
        sizes[path] = -1  # done (imported, already imported, or refused): not looked at again
    return out


def watch(project_id: int, folder: Path, interval: float = 5.0, model: str | None = None,
          mapping: dict[str, str] | None = None, say: Callable[[str], None] = print,
          rounds: int | None = None) -> None:
    """Look every `interval` seconds until stopped (or for `rounds` rounds)."""
    if not folder.is_dir():
        raise ingest.LogError(f"There is no folder at {folder}.")
    sizes: dict[Path, int] = {}
    done = 0
    while rounds is None or done < rounds:
        for result in scan_once(project_id, folder, sizes, model, mapping):
            if isinstance(result, str):
                say(f"refused {result}")
            else:
                say(result.summary())
        done += 1
        time.sleep(interval)
