"""The workspace: the one folder (STUDIO_HOME) where the studio writes anything.

It holds the SQLite database, dataset versions, splits, models, runs and every library cache.
Uploaded file names are never used as paths: stored files are named by content hash.

    STUDIO_HOME=/data/studio studio ui
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from engine import settings
from engine.errors import StudioError

# A few MB kept in reserve (CockroachDB calls its own an emergency ballast): on a full disk the supervisor deletes
# it to record how the job that filled the disk ended. Made again once 16 MB are free.
RESERVE_FILE = ".reserve"
RESERVE_BYTES = 4 << 20
RESERVE_WHEN_FREE = 16 << 20


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

    def ensure(self) -> Workspace:
        """Create the workspace (readable by its owner only: it holds data, models and the user database)."""
        if not self.root.is_dir():
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.root, 0o700)  # mkdir's mode is masked by the umask
        for folder in (self.datasets, self.splits, self.reports, self.models, self.uploads, self.tmp, self.cache):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._keep_reserve()
        return self

    def _keep_reserve(self) -> None:

        path = self.root / RESERVE_FILE
        if path.exists():
            return
        try:
            if shutil.disk_usage(self.root).free < RESERVE_WHEN_FREE:
                return
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"\0" * RESERVE_BYTES)  # written, not sparse: the blocks must really be held
            finally:
                os.close(fd)
        except OSError:
            path.unlink(missing_ok=True)

    def release_reserve(self) -> bool:
        """Free the reserve (on a full disk); True when there was one to free."""
        path = self.root / RESERVE_FILE
        try:
            path.unlink()
            return True
        except OSError:
            return False

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
            "POLARS_TEMP_DIR": str(self.tmp),  # the streaming engine spills here when a log outgrows memory
        }


def root() -> Path:
    """The folder STUDIO_HOME names (default ./workspace), whether it exists or not."""
    return settings.current().home.expanduser().resolve()


def current() -> Workspace:
    """The workspace named by STUDIO_HOME (default ./workspace), created if missing."""
    return Workspace(root()).ensure()


class WorkspaceMissing(StudioError):
    """A command that only reads found no workspace (or no database in it); nothing was created."""


def exists() -> bool:
    """The workspace folder is there and, with the default SQLite database, so is its database file."""
    folder = root()
    if not folder.is_dir():
        return False
    return bool(settings.current().db_url) or (folder / "studio.db").is_file()


def existing() -> Workspace:
    """The workspace for a command that only reads: never created here; WorkspaceMissing with one sentence if absent."""
    folder = root()
    if not folder.is_dir():
        raise WorkspaceMissing(f"There is no workspace at {folder} (STUDIO_HOME); nothing was created. Point "
                               "STUDIO_HOME at your workspace, or start one with `studio ui` or `studio split`.")
    if not exists():
        raise WorkspaceMissing(f"The workspace {folder} has no database (studio.db); nothing was created. Point "
                               "STUDIO_HOME at your workspace, or restore its database with `studio db restore`.")
    return Workspace(folder)


def apply_library_env(ws: Workspace) -> None:
    """Point library caches at the workspace for this process (called by the CLI and the trainer)."""
    for key, value in ws.library_env().items():
        os.environ.setdefault(key, value)
