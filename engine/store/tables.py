"""The database tables (SQLAlchemy 2 declarative). Schema changes ship as Alembic migrations in engine/migrations."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def now() -> datetime:
    return datetime.now(UTC)


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
    # user and assistant turns, case and whitespace folded, no system prompt (engine.data.test_lock.content_key)
    content_key: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)


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
    command: Mapped[list | None] = mapped_column(JSON, nullable=True)  # with {python} and {run_dir} placeholders
    then_command: Mapped[list | None] = mapped_column(JSON, nullable=True)  # run by the monitor after a success
    request_key: Mapped[str] = mapped_column(String(64), unique=True)  # a double click launches one run
    device: Mapped[str] = mapped_column(String(16), default="cpu")
    backend: Mapped[str] = mapped_column(String(16), default="local", server_default="local")  # local | ray
    backend_job: Mapped[str | None] = mapped_column(String(80), nullable=True)  # Ray's submission id
    node: Mapped[str | None] = mapped_column(String(120), nullable=True)  # where it runs (Ray: the node's address)
    resume: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    proc_start: Mapped[float | None] = mapped_column(nullable=True)  # start, s since boot: tells a reused pid
    monitor_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)  # engine.jobs.monitor, the job's parent
    monitor_start: Mapped[float | None] = mapped_column(nullable=True)
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


class User(Base):
    """A person who signs in: admin, analyst or reviewer. Local accounts keep an Argon2 hash, never the password;
    OIDC accounts are matched by email and have no hash."""
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    email: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Campaign(Base):
    """A human review of stored evaluation outputs (single-answer ratings or blind pairwise votes), or of low-rated
    production answers that reviewers correct (kind "correction")."""
    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))  # rating | pairwise | correction
    run_id: Mapped[int] = mapped_column(Integer)
    baseline: Mapped[str] = mapped_column(String(16), default="base")
    overlap: Mapped[int] = mapped_column(Integer, default=1)
    per_criterion: Mapped[bool] = mapped_column(Boolean, default=False)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class CampaignItem(Base):
    """What reviewers judge: one answer (rating; `model` says whose, never shown) or both answers (pairwise).
    The texts are copied here, so a later evaluation cannot change a campaign under its reviewers."""
    __tablename__ = "campaign_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    example_index: Mapped[int] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String(16), nullable=True)  # rating: base | finetuned
    prompt: Mapped[list] = mapped_column(JSON)
    reference: Mapped[str] = mapped_column(Text, default="")
    answers: Mapped[dict] = mapped_column(JSON)  # {"base": text, "finetuned": text} or {"answer": text}
    gold: Mapped[str | None] = mapped_column(String(16), nullable=True)  # expected vote, or expected accuracy 1-5


class Assignment(Base):
    """One item in one reviewer's queue, with the order and the left/right sides drawn for that reviewer."""
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("item_id", "reviewer_id", name="uq_assignment_item_reviewer"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("campaign_items.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    order_key: Mapped[int] = mapped_column(Integer)
    left_model: Mapped[str | None] = mapped_column(String(16), nullable=True)  # pairwise: whose answer is "A"
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Rating(Base):
    """A reviewer's answer to one item: at most one per reviewer and item (a resubmission updates it)."""
    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("item_id", "reviewer_id", name="uq_rating_item_reviewer"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("campaign_items.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    scores: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # criterion -> 1..5
    safety_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str] = mapped_column(Text, default="")
    vote: Mapped[str | None] = mapped_column(String(16), nullable=True)  # base | finetuned | tie | both_bad
    criterion_votes: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # criterion -> base|finetuned|tie
    correction: Mapped[str | None] = mapped_column(Text, nullable=True)  # correction campaigns: the better answer
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class SigninAttempt(Base):
    """One sign-in attempt: who was named, from which address, and what happened (never the password)."""
    __tablename__ = "signin_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now, index=True)
    user_name: Mapped[str] = mapped_column(String(80), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # ok | wrong | throttled | locked


class SetupToken(Base):
    """The one-time token `studio ui` prints on a fresh install: creating the first administrator from another
    machine needs it. Only its SHA-256 is stored."""
    __tablename__ = "setup_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class UserSession(Base):
    """A signed-in browser: the cookie holds the id, the expiry, a random token and their HMAC; only the token's
    SHA-256 is stored. Sign-out (or an admin) revokes it; it expires on its own."""
    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AppSecret(Base):
    """Secrets the studio makes for itself (the session-cookie signing key), shared by every dashboard process."""
    __tablename__ = "app_secrets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class ModelVersion(Base):
    """A registered model: NAME-vMAJOR.MINOR.PATCH made from a succeeded run, its stage, and the lineage that ties it
    to its data, split, config, evaluations, reviews and A/B decisions (a JSON snapshot taken at registration and
    extended as evidence arrives)."""
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("project_id", "name", "major", "minor", "patch",
                                       name="uq_model_version_number"),
                      Index("uq_one_production_per_project", "project_id", unique=True,
                            sqlite_where=text("stage = 'production'"), postgresql_where=text("stage = 'production'")))
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer)
    patch: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16), index=True)  # candidate staging production archived
    bump_reason: Mapped[str] = mapped_column(Text, default="")
    lineage: Mapped[dict] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)

    @property
    def number(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def label(self) -> str:
        """What people call it: customer-support-v2.1.0."""
        return f"{self.name}-v{self.number}"


class ModelEvent(Base):
    """The audit log of a model version: registration, every stage change (with the evidence, or an admin's
    override and written reason), exports, serving and A/B decisions."""
    __tablename__ = "model_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))  # registered stage export serve ab_decision
    actor: Mapped[str] = mapped_column(String(80))
    from_stage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_stage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    override: Mapped[bool] = mapped_column(Boolean, default=False)
    details: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class MonitorImport(Base):
    """One production log file imported into the monitor store (by its BLAKE3 digest: a file is imported once)."""
    __tablename__ = "monitor_imports"
    __table_args__ = (UniqueConstraint("project_id", "digest", name="uq_monitor_import_file"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    rows: Mapped[int] = mapped_column(Integer)
    stored: Mapped[int] = mapped_column(Integer)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    columns: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
