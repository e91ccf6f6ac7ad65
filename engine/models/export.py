"""Export a model version: the PEFT adapter folder as trained, or a merged model (safetensors, with its tokenizer and
chat template) that loads with `from_pretrained` alone. Full fine-tunes export as merged (there is no adapter); prompt
and prefix tuning as adapters (they cannot be merged). Every export carries the model card (README.md) and the
lineage (lineage.json); an existing path is refused, and a failed export leaves nothing behind."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import StudioError
from engine.jobs import supervisor
from engine.jobs.failures import is_disk_full
from engine.models import card, registry
from engine.store import partials, users, workspace
from engine.store.tables import ModelVersion, User
from engine.train import base_models, model_safety

FORMATS = ("adapter", "merged")
MERGEABLE = ("lora", "qlora")  # adapters whose weights fold into the base model


class ExportError(StudioError, ValueError):
    """An export that cannot be made; the message says why."""


def export(actor: User, ref: int | str, fmt: str, out: Path | str) -> Path:
    actor = users.require(actor, "admin", "analyst")
    version = registry.get_version(ref)
    out = Path(out).expanduser().resolve()
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}; choose adapter or merged.")
    if out.exists():
        raise ExportError(f"{out} already exists; choose a new path (an export never overwrites).")
    technique = version.lineage["facts"]["technique"]
    if fmt == "adapter" and technique == "full":
        raise ExportError(f"{version.label} is a full fine-tune: it has no adapter; export it as merged.")
    if fmt == "merged" and technique not in MERGEABLE and technique != "full":
        raise ExportError(f"{version.label} was trained with {technique}, which cannot be merged into the base "
                          "weights; export it as an adapter.")
    if not out.parent.is_dir():
        raise ExportError(f"The folder {out.parent} does not exist; create it first.")
    part = partials.part_of(out)  # a writer killed with kill -9 leaves NAME.part-PID, never NAME
    if out.parent == exports_folder():
        partials.sweep(out.parent)  # only the studio's own folder: a user's folder is theirs to tidy
    try:
        write_model(version, fmt, part)
        (part / "README.md").write_text(card.render(version), encoding="utf-8")
        (part / "lineage.json").write_text(json.dumps(registry.current_lineage(version), indent=2, default=str) + "\n",
                                           encoding="utf-8")
        part.rename(out)  # whole or not at all: a crash or a full disk leaves only the .part, removed below
    except Exception as err:  # noqa: BLE001 - safetensors and torch wrap a full disk in their own errors
        if not (is_disk_full(err) or isinstance(err, OSError | shutil.Error)):
            raise
        raise ExportError(_write_failure(err, out)) from None
    finally:
        shutil.rmtree(part, ignore_errors=True)
    registry.log_event(version, "export", actor.name, format=fmt, path=str(out))
    return out


def _write_failure(err: BaseException, out: Path) -> str:
    """One sentence for a failed write (shutil.copytree gathers its errors into a list; a full disk anywhere in it is
    the disk being full)."""
    if is_disk_full(err) or "No space left on device" in str(err):
        return (f"The disk is full: the export to {out.name} was not written (nothing half-written is left); free "
                "space and export again.")
    reason = getattr(err, "strerror", None) or "a file could not be written"
    return f"The export to {out.name} failed ({reason}); nothing half-written is left."


def write_model(version: ModelVersion, fmt: str, folder: Path) -> None:
    """The weights and tokenizer of `version` into `folder` (which is created)."""
    final = supervisor.run_path(registry.run_of(version)) / "final"
    if not final.is_dir():
        raise ExportError(f"The run of {version.label} has no saved model any more (its folder was removed).")
    technique = version.lineage["facts"]["technique"]
    if fmt == "adapter" or technique == "full":  # the trained folder is already the artifact
        shutil.copytree(final, folder, ignore=shutil.ignore_patterns("training_args.bin", "*.pt"))
        return
    merge(version.lineage["facts"]["base_model"], final, folder)


def merge(base_model: str, adapter: Path, folder: Path) -> None:
    """Fold a LoRA adapter into its base model and save both weights and tokenizer (chat template included)."""
    from peft import PeftModel  # the ML stack loads in seconds: only jobs that train or generate import it
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: loaded on first use
    from transformers.utils import logging as hf_logging  # heavy: loaded on first use

    hf_logging.disable_progress_bar()  # the CLI prints one line per export, not library progress bars
    hf_logging.set_verbosity_error()
    model_safety.check(base_models.local_folder(base_model))
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype="auto", **model_safety.LOAD_KWARGS)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(folder), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(adapter), trust_remote_code=False).save_pretrained(str(folder))


def served_model(version: ModelVersion) -> Path:
    """The folder a server loads, named after the version (the server then calls the model by that name): a merged
    copy made once under the workspace's models/served/, or a link to a full fine-tune's own folder."""
    final = supervisor.run_path(registry.run_of(version)) / "final"
    folder = workspace.current().root / "models" / "served" / version.label
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    if version.lineage["facts"]["technique"] == "full":
        folder.unlink(missing_ok=True)
        folder.symlink_to(final, target_is_directory=True)
        return folder
    if version.lineage["facts"]["technique"] not in MERGEABLE:
        raise ExportError(f"{version.label} was trained with {version.lineage['facts']['technique']}; servers load "
                          "merged or full models, so it cannot be served.")
    partials.sweep(folder.parent)  # a serving job killed while merging left its part: the merge starts over
    part = partials.part_of(folder)
    try:
        merge(version.lineage["facts"]["base_model"], final, part)
        part.rename(folder)
    finally:
        shutil.rmtree(part, ignore_errors=True)
    return folder


def export_in_workspace(actor: User, ref: int | str, fmt: str) -> Path:
    """The page's export: a new folder under the workspace's exports/ (the dashboard never writes elsewhere)."""
    version = registry.get_version(ref)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = exports_folder() / f"{version.label}-{fmt}-{stamp}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    return export(actor, version.id, fmt, folder)


def exports_folder() -> Path:
    return workspace.current().root / "exports"
