"""Example lengths as a model sees them: every training record rendered with the model's own chat template and
counted with its own tokenizer (engine.data.loss_mask), for the max_length recommendation. Kept per (model, file
content) in the workspace, so the Train page asks once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from engine.data.chat_template import ModelTemplate, TemplateError, record_tools
from engine.data.loading import load_records
from engine.data.loss_mask import encode_conversation
from engine.data.quality import usable
from engine.data.readers import InputError
from engine.stat_helpers import nearest_rank
from engine.store import workspace
from engine.train.base_models import local_folder


def quantile(values: list[int], q: float) -> float:
    """The q-quantile by the nearest-rank method (what is at or above q of the examples)."""
    return nearest_rank(values, q) or 0.0


def example_lengths(folder: Path, path: Path) -> list[int]:
    template = ModelTemplate.from_folder(folder)
    out = []
    for rec in usable(load_records(path).records):
        try:
            encoded = encode_conversation(template, rec.turns, record_tools(rec.extra), all_tokens=True)
        except TemplateError:
            continue  # the launch names records the template refuses; here they only lack a length
        out += [len(e.input_ids) for e in encoded.examples]
    return out


GRID = [i / 20 for i in range(21)]  # the length profile: the 0th, 5th, ..., 100th percentiles


def length_profile(base_model: str, train_file: str | Path) -> dict | None:
    """{"p99", "percentiles" (on GRID), "mean", "examples", "source"} of the training examples' token lengths under
    the model's own tokenizer and template, or None when that tokenizer is not on this machine or the file cannot be
    read. Kept per (model, file content) in the workspace."""
    folder = local_folder(base_model)
    path = Path(train_file)
    if folder is None or not (folder / "tokenizer.json").is_file() or not path.is_file():
        return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    key = hashlib.sha256(f"{folder.resolve()}:{digest}".encode()).hexdigest()[:24]
    cache = workspace.current().cache / "lengths" / f"{key}.json"
    if cache.is_file():
        data = json.loads(cache.read_text(encoding="utf-8"))
        if "percentiles" in data:  # older entries held the p99 alone
            return data
    try:
        lengths = example_lengths(folder, path)
    except (InputError, TemplateError, OSError):
        return None
    if not lengths:
        return None
    data = {"p99": quantile(lengths, 0.99), "percentiles": [quantile(lengths, q) if q else float(min(lengths))
                                                             for q in GRID],
            "mean": sum(lengths) / len(lengths), "examples": len(lengths),
            "source": "this model's tokenizer and chat template"}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(data), encoding="utf-8")
    return data


def length_p99(base_model: str, train_file: str | Path) -> tuple[float, str] | None:
    """(99th percentile of the training examples' token lengths, what counted them), or None (see length_profile)."""
    data = length_profile(base_model, train_file)
    return (data["p99"], data["source"]) if data else None


def profile_from_report(distribution: dict, source: str) -> dict | None:
    """A coarser profile from the quality report's length distribution (min, 5th, 50th, 95th percentile, max): what
    the estimate uses when the model's own tokenizer is not on this machine."""
    if not distribution:
        return None
    points = [(0.0, distribution["min"]), (0.05, distribution["p5"]), (0.5, distribution["median"]),
              (0.95, distribution["p95"]), (1.0, distribution["max"])]
    percentiles = []
    for q in GRID:
        (q0, v0), (q1, v1) = next((a, b) for a, b in zip(points, points[1:]) if a[0] <= q <= b[0])
        percentiles.append(v0 + (v1 - v0) * ((q - q0) / (q1 - q0) if q1 > q0 else 0.0))
    return {"p99": distribution["p95"], "percentiles": percentiles, "mean": distribution["mean"],
            "examples": None, "source": source}
