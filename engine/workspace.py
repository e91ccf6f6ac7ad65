"""The workspace: the one folder (STUDIO_HOME) where the studio writes anything.

It holds the SQLite database, dataset versions, splits, models, runs and every library cache.
Uploaded file names are never used as paths: stored files are named by content hash.

    STUDIO_HOME=/data/studio studio ui
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "workspace"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def splits(self) -> Path:
        return self.root / "splits"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def demo_model(self) -> Path:
        return self.models / "demo"

    def ensure(self) -> "Workspace":
        """Create the workspace (readable by its owner only: it holds data, models and the user database)."""
        if not self.root.is_dir():
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.root, 0o700)  # mkdir's mode is masked by the umask
        for folder in (self.datasets, self.splits, self.reports, self.models, self.uploads, self.tmp, self.cache):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self

    def library_env(self) -> dict[str, str]:
        """Environment that keeps every library cache inside the workspace (HF, W&B, temp files)."""
        cache = self.cache
        return {
            "HF_HOME": str(cache / "huggingface"),
            "HF_DATASETS_CACHE": str(cache / "huggingface" / "datasets"),
            "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
            "WANDB_DIR": str(cache / "wandb"),
            "WANDB_CACHE_DIR": str(cache / "wandb" / "cache"),
            "WANDB_CONFIG_DIR": str(cache / "wandb" / "config"),
            "WANDB_DATA_DIR": str(cache / "wandb" / "data"),
            "TMPDIR": str(self.tmp),
            "MPLCONFIGDIR": str(cache / "matplotlib"),
            "TRITON_CACHE_DIR": str(cache / "triton"),
        }


def current() -> Workspace:
    """The workspace named by STUDIO_HOME (default ./workspace), created if missing."""
    root = Path(os.environ.get("STUDIO_HOME", DEFAULT_HOME)).expanduser().resolve()
    return Workspace(root).ensure()


def apply_library_env(ws: Workspace) -> None:
    """Point library caches at the workspace for this process (called by the CLI and the trainer)."""
    for key, value in ws.library_env().items():
        os.environ.setdefault(key, value)
