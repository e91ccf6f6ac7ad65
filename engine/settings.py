"""Every STUDIO_* setting in one typed class (pydantic-settings): its type, default, meaning and where its value came
from. Modules ask `current()` for a fresh read (tests and `studio ui` change the environment of a running process),
`studio config show` prints them with their sources, and the README's configuration table is `markdown_table()`.

Values come from the environment; a value that does not parse is one sentence naming the variable."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.errors import StudioError

PREFIX = "STUDIO_"


class SettingsError(StudioError, ValueError):
    """A STUDIO_* variable whose value cannot be used."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True, env_ignore_empty=True)

    home: Path = Field(Path("workspace"), description="The workspace: database, datasets, splits, reports, models, "
                       "uploads and every library cache (HF, W&B, temp files); the only place the studio writes.")
    db_url: str | None = Field(None, description="Another database than the workspace's SQLite: PostgreSQL "
                               "(postgresql+psycopg://user@host:5432/studio, with the postgres extra) or any "
                               "SQLAlchemy URL; Alembic creates and upgrades the schema.")
    job_backend: Literal["local", "ray"] = Field("local", description="Where jobs run: this machine, or a Ray "
                                                 "cluster (see A team's GPU hosts).")
    ray_address: str = Field("http://127.0.0.1:8265", description="The Ray cluster's job server.")
    cancel_grace: float = Field(20.0, ge=0, description="Seconds between a cancel's SIGTERM and the SIGKILL of the "
                                "job's process group.")
    max_file_mb: float = Field(200.0, gt=0, description="The largest data file accepted (the uploader's own limit "
                               "is server.maxUploadSize in .streamlit/config.toml).")
    phone_regions: str = Field("US,GB,DE,FR,IN", description="Regions whose national phone-number formats the "
                               "personal-data check knows (international numbers are found from anywhere).")
    sandbox: Literal["bubblewrap", "unshare", "python-level"] | None = Field(
        None, description="Force the code-test sandbox; unset: the strongest that works here.")
    session_hours: float = Field(12.0, ge=0, description="Hours a sign-in lasts.")
    signin_lockout_after: int = Field(10, ge=1, description="Wrong passwords from one address before that "
                                      "(account, address) pair is locked.")
    signin_lockout_minutes: float = Field(15.0, ge=0, description="How long a locked pair stays locked.")
    signin_delay_base_s: float = Field(1.0, ge=0, description="The first delay after a wrong password; it doubles "
                                       "per failure, up to 60 s.")
    trusted_proxies: str = Field("", description="Addresses or CIDRs of reverse proxies whose forwarded headers are "
                                 "believed (comma-separated); empty: none are.")
    oidc_role_claim: str = Field("groups", description="Single sign-on: the claim that lists a person's groups.")
    oidc_role_map: str = Field("", description="Single sign-on: GROUP=ROLE pairs, comma-separated (the "
                               "[studio_oidc] table of the secrets wins).")
    wandb_init_timeout: float = Field(20.0, gt=0, description="Seconds W&B may take to start before a run falls "
                                      "back to offline.")
    teacher_key: SecretStr | None = Field(None, description="Set by the studio, not by you: a teacher API key typed "
                                          "on the Augment page, on its way to the augmentation job (environment "
                                          "only, never stored).")
    on_ray: bool = Field(False, description="Set by the studio, not by you: this process is a job's monitor on a Ray "
                         "node.")
    fault: str = Field("", description="Tests only: a fault the trainer injects (gpu_oom, disk_full, crash).")

    @field_validator("job_backend", "sandbox", mode="before")
    @classmethod
    def _lowercase(cls, value):
        return value.strip().lower() if isinstance(value, str) else value


def current() -> Settings:
    """The settings as the environment says now (parsed once per distinct environment: pydantic-settings takes about
    a millisecond, and the database asks on every session)."""
    return _parsed(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(PREFIX))))


@lru_cache(maxsize=16)
def _parsed(environment: tuple[tuple[str, str], ...]) -> Settings:
    try:
        return Settings()  # type: ignore[call-arg]  # every field has a default; mypy cannot see through Field()
    except ValidationError as err:
        raise SettingsError(_describe(err)) from None


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    name = PREFIX + str(first["loc"][0]).upper() if first["loc"] else "A STUDIO_ setting"
    shown = str(first.get("input"))[:60]
    msg = first["msg"].removeprefix("Value error, ")
    return f"{name}={shown!r} cannot be used: {msg[0].lower() + msg[1:]}."


def variable(field: str) -> str:
    return PREFIX + field.upper()


def rows() -> list[dict]:
    """Each setting: its variable, value (secrets masked), default, whether the environment set it, and meaning."""
    now = current()
    out = []
    for name, field in Settings.model_fields.items():
        value = getattr(now, name)
        if isinstance(value, SecretStr):
            value = "********" if value.get_secret_value() else ""
        default = field.default
        out.append({"variable": variable(name), "value": _plain(value), "default": _plain(default),
                    "source": "environment" if variable(name) in os.environ else "default",
                    "meaning": field.description or ""})
    return out


def _plain(value) -> str | float | int | bool | None:
    return str(value) if isinstance(value, Path) else value


def markdown_table() -> str:
    """The README's configuration table (a test keeps the README equal to it)."""
    lines = ["| setting | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "unset" if default in (None, "") else f"`{_plain(default)}`"
        lines.append(f"| `{variable(name)}` | {shown} | {field.description} |")
    return "\n".join(lines)
