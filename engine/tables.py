"""The database tables (SQLAlchemy 2 declarative). Schema changes ship as Alembic migrations in engine/migrations."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    task_type: Mapped[str] = mapped_column(String(32), default="chat")
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class DatasetVersion(Base):
    """An immutable, content-addressed dataset file; fixes create children that record their parent."""
    __tablename__ = "dataset_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(String(400))  # relative to the workspace
    container: Mapped[str] = mapped_column(String(16))
    shape: Mapped[str] = mapped_column(String(32))
    mapping: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    records: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"), nullable=True)
    fixes: Mapped[list] = mapped_column(JSON, default=list)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Split(Base):
    """A train/validation/test split of one dataset version. Its test part is locked."""
    __tablename__ = "splits"
    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    seed: Mapped[int] = mapped_column(Integer)
    ratios: Mapped[list] = mapped_column(JSON)
    folder: Mapped[str] = mapped_column(String(400))  # relative to the workspace
    counts: Mapped[dict] = mapped_column(JSON)
    overlap: Mapped[dict] = mapped_column(JSON)
    test_sha256: Mapped[str] = mapped_column(String(64))
    locked: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class LockedRecord(Base):
    """One record of a locked test split; the engine refuses training or model selection data that contains it."""
    __tablename__ = "locked_records"
    id: Mapped[int] = mapped_column(primary_key=True)
    split_id: Mapped[int] = mapped_column(ForeignKey("splits.id"), index=True)
    record_hash: Mapped[str] = mapped_column(String(32), index=True)


class Run(Base):
    """A job of the supervisor: a training run, or the evaluation of one (kind "eval", target_run_id the run
    evaluated). Written before its process starts; the supervisor is the only writer of its state."""
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), default="train", server_default="train", index=True)
    target_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued running succeeded failed cancelled
    run_dir: Mapped[str] = mapped_column(String(400))  # relative to the workspace
    config: Mapped[dict] = mapped_column(JSON)
    request_key: Mapped[str] = mapped_column(String(64), unique=True)  # a double click launches one run
    device: Mapped[str] = mapped_column(String(16), default="cpu")
    resume: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    proc_start: Mapped[float | None] = mapped_column(nullable=True)  # process create time: tells a reused pid
    heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    step: Mapped[int] = mapped_column(Integer, default=0)
    max_steps: Mapped[int] = mapped_column(Integer, default=0)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    log_tail: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
