"""All configuration: one settings object, read from ``RUSHGATE_*`` environment variables.

Built explicitly (``Settings()``) by the command line or the app factory; never at import.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rushgate.adapters.sql.engine import sqlite_url_for

_MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUSHGATE_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".rushgate"),
        description="Where the embedded default keeps its SQLite database and secret key.",
    )
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL primary, e.g. postgresql://user@host:5432/db. "
        "Unset: the embedded SQLite database in the data dir.",
    )
    database_replica_url: str | None = Field(
        default=None, description="A read replica for catalog and lists. Unset: the primary."
    )
    database_pool_size: int = Field(
        default=20,
        ge=1,
        le=200,
        description="PostgreSQL connections per process and engine, kept open (no overflow).",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for the waiting room, seat hints and locks, e.g. "
        "redis://127.0.0.1:6379/0. Unset: in-process coordination (one process only).",
    )
    redis_key_prefix: str = Field(
        default="rg:",
        pattern=r"^[A-Za-z0-9:_.-]{1,64}$",
        description="Prefix of every Redis key, to share one Redis between deployments.",
    )
    queue_tick_ms: int = Field(
        default=250, ge=20, le=5000, description="How often the admitter advances rooms."
    )
    queue_max_db_latency_ms: int = Field(
        default=500,
        ge=1,
        le=60_000,
        description="Admission pauses while a database ping takes longer than this.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs tokens. Required once a database URL is set; "
        "the embedded default keeps a generated one in the data dir.",
    )
    token_ttl_seconds: int = Field(default=4 * 3600, ge=60, le=7 * 24 * 3600)
    password_hash_cost: Literal["standard", "low"] = "standard"  # noqa: S105
    admin_username: str | None = None
    admin_password: SecretStr | None = None
    shutdown_drain_seconds: float = Field(
        default=0.0,
        ge=0,
        le=120,
        description="After SIGTERM, answer /readyz with 503 and keep serving this long "
        "before shutting down (for load balancers that poll readiness).",
    )
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if (self.database_url or self.redis_url) and self.secret_key is None:
            raise ValueError(
                "RUSHGATE_SECRET_KEY is required when RUSHGATE_DATABASE_URL or "
                "RUSHGATE_REDIS_URL is set"
            )
        if (
            self.secret_key is not None
            and len(self.secret_key.get_secret_value()) < _MIN_SECRET_LENGTH
        ):
            raise ValueError(
                f"RUSHGATE_SECRET_KEY must be at least {_MIN_SECRET_LENGTH} characters"
            )
        if (self.admin_username is None) != (self.admin_password is None):
            raise ValueError(
                "set both RUSHGATE_ADMIN_USERNAME and RUSHGATE_ADMIN_PASSWORD, or neither"
            )
        return self

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def effective_database_url(self) -> str:
        return self.database_url or sqlite_url_for(self.data_dir)

    def effective_secret_key(self) -> str:
        """The configured key, or the embedded default's own, created on first use."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip()
