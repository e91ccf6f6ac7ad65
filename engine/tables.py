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
