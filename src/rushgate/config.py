"""All configuration: one settings object, read from ``RUSHGATE_*`` environment variables.

Built explicitly (``Settings()``) by the command line or the app factory; never at import.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import re
import secrets
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rushgate.adapters.sql.engine import sqlite_url_for

_MIN_SECRET_LENGTH = 32


def _networks(text: str) -> tuple[str, ...]:
    """Comma-separated addresses or CIDRs, each checked (``ValueError`` otherwise)."""
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    for item in items:
        ipaddress.ip_network(item, strict=False)
    return items


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
    personal_data_key: SecretStr | None = Field(
        default=None,
        description="32 bytes in base64url: encrypts applicants' phone numbers and birth "
        "dates at rest. Unset: derived from the secret key (set it to rotate that alone).",
    )
    require_email_verification: bool | None = Field(
        default=None,
        description="Applicants confirm their email before submitting. Unset: on, except "
        "in the embedded demo.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        pattern=r"^https?://[^\s]+$",
        description="Where users reach this site: the base of links in mails.",
    )
    smtp_url: SecretStr | None = Field(
        default=None,
        description="Mail server, e.g. smtp://user:pass@host:587?starttls=1 (smtps:// for TLS "
        "from the start). Unset: mails are printed to the console.",
    )
    mail_from: str = Field(
        default="rushgate <no-reply@localhost>", min_length=3, description="From of every mail."
    )
    mail_default_locale: Literal["ko", "en"] = Field(
        default="ko", description="Language of mails to users who chose none."
    )
    outbox_batch: int = Field(
        default=50, ge=1, le=1000, description="Outbox messages a relay claims at a time."
    )
    outbox_max_attempts: int = Field(
        default=8, ge=1, le=100, description="Sends of a message before it is dead-lettered."
    )
    outbox_retention_days: int = Field(
        default=14,
        ge=0,
        le=3650,
        description="Delivered outbox messages (sent mail) are deleted after this many "
        "days; 0 keeps them. Pending and dead-lettered ones are always kept.",
    )
    catalog_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="How long a node reuses a rendered catalog page (seats left that old at "
        "most) and the max-age it tells browsers and nginx. 0: read every request afresh.",
    )
    token_ttl_seconds: int = Field(default=4 * 3600, ge=60, le=7 * 24 * 3600)
    password_hash_cost: Literal["standard", "low"] = "standard"  # noqa: S105
    password_min_length: int = Field(
        default=10,
        ge=8,
        le=128,
        description="Shortest password an applicant may choose at sign-up. Passwords an "
        "operator sets (students' initial ones, admins) need at least 8.",
    )
    breached_passwords_file: Path | None = Field(
        default=None,
        description="Refuse passwords listed here: SHA-1 hex digests, one a line, optionally "
        "with :count (the Pwned Passwords format). Up to 16 MiB it is loaded at start; "
        "larger files are searched on disk and must be sorted by hash.",
    )
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
    max_upload_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Largest document an applicant may upload; its route accepts bodies this "
        "large (plus the form's own bytes) whatever RUSHGATE_MAX_BODY_BYTES says.",
    )
    documents_dir: Path | None = Field(
        default=None,
        description="Where uploaded documents are kept. Unset: documents/ in the data dir. "
        "Shared by every node (one file system), or documents uploaded through one node "
        "cannot be downloaded through another.",
    )

    node_name: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="This node in logs, error reports and chat messages. Unset: the host name.",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="json: one JSON object per line (for Loki and friends); console: for "
        "people. auto: console on a terminal, else json.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Least severe log records written."
    )
    access_log: bool = Field(
        default=True,
        description="One log line per request (route template, status, latency, request id).",
    )
    sentry_dsn: SecretStr | None = Field(
        default=None,
        description="Report unhandled errors to Sentry (no personal data: no bodies, "
        "cookies, IP addresses or local variables). Unset: no Sentry.",
    )
    sentry_environment: str = Field(
        default="production", min_length=1, max_length=64, description="Sentry environment."
    )
    sentry_traces_sample_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of requests traced to Sentry."
    )
    chat_discord_webhook_url: SecretStr | None = Field(
        default=None,
        description="A Discord webhook told of unhandled errors and critical events "
        "(rate-limited, deduplicated, no personal data).",
    )
    chat_slack_webhook_url: SecretStr | None = Field(
        default=None, description="A Slack incoming webhook, told the same."
    )
    chat_max_per_minute: int = Field(
        default=6, ge=1, le=60, description="Chat messages a process sends per minute at most."
    )
    chat_dedupe_seconds: int = Field(
        default=600,
        ge=0,
        le=86_400,
        description="The same error or event is told at most once this often (repeats are "
        "counted in the next message).",
    )
    rate_limits: bool = Field(
        default=True,
        description="Per-address and per-account budgets on login, sign-up, waiting-room "
        "join, enroll/drop and Q&A posts (429 beyond them). Off: no app-side limits.",
    )
    rate_limit_scale: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        description="Multiplies every budget's burst and rate (2: twice as generous).",
    )
    rate_limit_exempt: str = Field(
        default="127.0.0.1/8,::1",
        description="Comma-separated client addresses or CIDRs the rate limits never apply "
        "to, per address or per account (load generators, this machine). Empty: none.",
    )
    trusted_proxies: str = Field(
        default="127.0.0.1,::1",
        description="Comma-separated addresses or CIDRs of the proxies in front of the "
        "nodes (nginx). Only their X-Forwarded-For / X-Real-IP and country header are "
        "believed. Empty: the socket peer is always the client.",
    )
    allowed_countries: str = Field(
        default="",
        description="Comma-separated ISO country codes (e.g. KR) allowed to sign up, log "
        "in, join and enroll; a request whose country is unknown is refused too. Empty: "
        "no country rule.",
    )
    country_header: str = Field(
        default="CF-IPCountry",
        pattern=r"^[A-Za-z0-9-]{0,64}$",
        description="Header with the client's country set by a trusted edge (CDN), "
        "believed only from a trusted proxy. Empty: only RUSHGATE_GEOIP_DB is asked.",
    )
    geoip_db: Path | None = Field(
        default=None,
        description="A MaxMind or DB-IP country .mmdb file, for the country rule when no "
        "trusted header says it.",
    )

    challenge: Literal["off", "turnstile", "hcaptcha", "pow"] = Field(
        default="off",
        description="Bot challenge asked on sign-up, on login after failures and (with "
        "RUSHGATE_CHALLENGE_ON_JOIN) on waiting-room join: a CAPTCHA (turnstile, hcaptcha), "
        "self-hosted proof of work (pow), or off.",
    )
    challenge_on_join: bool = Field(
        default=False, description="Joining a waiting room needs a solved challenge too."
    )
    challenge_site_key: str | None = Field(
        default=None,
        max_length=256,
        description="The CAPTCHA widget's site key (public); required for turnstile and hcaptcha.",
    )
    challenge_secret_key: SecretStr | None = Field(
        default=None,
        description="The CAPTCHA provider's secret key, for its siteverify API; required for "
        "turnstile and hcaptcha.",
    )
    challenge_verify_url: str | None = Field(
        default=None,
        description="Override the provider's siteverify URL (a proxy, or a fake in tests).",
    )
    challenge_hostname: str | None = Field(
        default=None,
        max_length=253,
        description="Refuse CAPTCHA tokens solved on any other host name than this. Unset: "
        "not checked.",
    )
    challenge_timeout_seconds: float = Field(
        default=3.0,
        gt=0,
        le=30,
        description="How long siteverify may take; slower (or failing) counts as not solved.",
    )
    pow_difficulty: int = Field(
        default=18,
        ge=1,
        le=32,
        description="Leading zero bits of the proof of work: 2^n hashes on average (18: "
        "about a second in a browser).",
    )
    login_max_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Failed logins for one account from one address before that pair waits "
        "(30 s, then 5 min after twice as many, 30 min after four times).",
    )
    login_account_step_up_failures: int = Field(
        default=10,
        ge=1,
        le=100_000,
        description="Failed logins for one account from every address (one forgiven a "
        "minute) before its login needs a solved challenge; never a lock.",
    )
    login_ip_step_up_failures: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="Failed logins from one address across accounts (one forgiven every "
        "30 s) before its logins need a challenge and are slowed to one a second.",
    )

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
        for name, url in (
            ("RUSHGATE_CHAT_DISCORD_WEBHOOK_URL", self.chat_discord_webhook_url),
            ("RUSHGATE_CHAT_SLACK_WEBHOOK_URL", self.chat_slack_webhook_url),
        ):
            if url is not None and not url.get_secret_value().startswith(("https://", "http://")):
                raise ValueError(f"{name} must be an http(s) URL")
        for name, networks in (
            ("RUSHGATE_TRUSTED_PROXIES", self.trusted_proxies),
            ("RUSHGATE_RATE_LIMIT_EXEMPT", self.rate_limit_exempt),
        ):
            try:
                _networks(networks)
            except ValueError:
                raise ValueError(f"{name}: comma-separated addresses or CIDRs") from None
        if any(not re.fullmatch(r"[A-Z]{2}", c) for c in self.allowed_country_codes):
            raise ValueError("RUSHGATE_ALLOWED_COUNTRIES: comma-separated ISO codes, e.g. KR")
        if self.geoip_db is not None and not self.geoip_db.is_file():
            raise ValueError(f"RUSHGATE_GEOIP_DB: no such file {self.geoip_db}")
        if self.challenge in ("turnstile", "hcaptcha") and (
            self.challenge_site_key is None or self.challenge_secret_key is None
        ):
            raise ValueError(
                f"RUSHGATE_CHALLENGE={self.challenge} needs RUSHGATE_CHALLENGE_SITE_KEY and "
                "RUSHGATE_CHALLENGE_SECRET_KEY"
            )
        if self.challenge_verify_url is not None and not self.challenge_verify_url.startswith(
            ("https://", "http://")
        ):
            raise ValueError("RUSHGATE_CHALLENGE_VERIFY_URL must be an http(s) URL")
        if self.personal_data_key is not None:
            key = self.personal_data_key.get_secret_value()
            try:
                raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
            except ValueError:
                raw = b""
            if len(raw) != 32:
                raise ValueError("RUSHGATE_PERSONAL_DATA_KEY must be 32 bytes in base64url")
        return self

    @property
    def trusted_proxy_networks(self) -> tuple[str, ...]:
        return _networks(self.trusted_proxies)

    @property
    def rate_limit_exempt_networks(self) -> tuple[str, ...]:
        return _networks(self.rate_limit_exempt)

    @property
    def allowed_country_codes(self) -> frozenset[str]:
        return frozenset(c.strip().upper() for c in self.allowed_countries.split(",") if c.strip())

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def effective_database_url(self) -> str:
        return self.database_url or sqlite_url_for(self.data_dir)

    @property
    def effective_documents_dir(self) -> Path:
        return self.documents_dir or self.data_dir / "documents"

    @property
    def effective_require_email_verification(self) -> bool:
        if self.require_email_verification is not None:
            return self.require_email_verification
        return not self.embedded

    def effective_personal_data_key(self) -> str:
        """The configured key, else one derived from the secret key for this use only."""
        if self.personal_data_key is not None:
            return self.personal_data_key.get_secret_value()
        derived = hmac.new(
            self.effective_secret_key().encode(), b"rushgate personal data", "sha256"
        ).digest()
        return base64.urlsafe_b64encode(derived).decode().rstrip("=")

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
