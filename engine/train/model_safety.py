"""A model folder is untrusted input: loading it must never run code from it.

Two ways a folder can run code when transformers loads it: an `auto_map` in its config (custom Python classes, which
transformers imports when trust_remote_code is on, and which can silently be ignored when it is off, so the model
then is not what its author meant), and pickle weights (`*.bin`, `*.pt`: torch.load can run code; transformers' own
weights_only guard speaks PyTorch's words when it refuses). The studio refuses both before anything is loaded, with
one sentence, and loads with trust_remote_code=False and safetensors only."""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import StudioError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
CONFIG_FILES = ("config.json", "tokenizer_config.json", "adapter_config.json", "preprocessor_config.json")
# Loader arguments every from_pretrained of a user's model gets: no remote code, safetensors only.
LOAD_KWARGS = {"trust_remote_code": False, "use_safetensors": True}


class UntrustedModel(StudioError):
    """A model folder the studio will not load; the message says why and what to do instead."""


def problems(folder: Path | str) -> list[str]:
    """Why this folder must not be loaded (empty when it may)."""
    folder = Path(folder)
    found = []
    for name in CONFIG_FILES:
        file = folder / name
        try:
            config = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
        except (OSError, ValueError):
            found.append(f"The model's {name} is not valid JSON; the studio cannot read it.")
            continue
        if isinstance(config, dict) and config.get("auto_map"):
            found.append(f"The model asks to run its own Python code ('auto_map' in {name}); the studio never runs "
                         "code from a model folder. Use a model whose architecture transformers itself knows.")
    files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    weights = [p for p in files if p.suffix == ".safetensors"]
    pickles = sorted(p.name for p in files if p.suffix.lower() in PICKLE_SUFFIXES and p.name != "training_args.bin")
    if pickles and not weights:
        found.append(f"The model's weights are in PyTorch's pickle format ({pickles[0]}), which can run code when "
                     "loaded; the studio loads only safetensors. Use the model's safetensors files (most hub models "
                     "have them) or convert the weights to safetensors first.")
    return found


def check(folder: Path | str | None) -> None:
    """Raise UntrustedModel when the folder must not be loaded; nothing for a hub id not on this machine."""
    if folder is None or not Path(folder).is_dir():
        return
    found = problems(folder)
    if found:
        raise UntrustedModel(found[0])
