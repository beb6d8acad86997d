"""The composition root: the one place that chooses and builds every adapter.

A serving node (``rushgate.http.app``) and a ``rushgate worker`` process build the same
:class:`Container` from settings; nothing else constructs an adapter."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from rushgate import __version__
from rushgate.adapters.breached_passwords import open_breached_list
from rushgate.adapters.files.local import LocalDocumentStore
from rushgate.adapters.mail.console import ConsoleMailer
from rushgate.adapters.mail.smtp import SmtpMailer
from rushgate.adapters.memory.coordination import MemoryCoordination
from rushgate.adapters.security import (
    AdmissionTokens,
    AesGcmFieldCipher,
    Argon2Hasher,
    JwtSigner,
    VerificationJwt,
)
from rushgate.adapters.sql.engine import SqlStorage
from rushgate.config import Settings
from rushgate.domain.clock import Clock, SystemClock
from rushgate.domain.passwords import PasswordPolicy
from rushgate.observability.errors import close_sentry, init_sentry
from rushgate.observability.logging import LogFormat
from rushgate.observability.logging import configure as configure_logging
from rushgate.observability.metrics import (
    NodeGauges,
    RateLimitCounters,
    RoomGauges,
    SectionGauges,
)
from rushgate.observability.metrics import time_queries as time_queries_of
from rushgate.services.admissions import AdmissionsService
from rushgate.services.audit import AuditService
from rushgate.services.auth import AuthService
from rushgate.services.catalog import MAX_BYTES as CATALOG_CACHE_BYTES
from rushgate.services.catalog import CatalogPages, RenderedPage
from rushgate.services.challenge import ChallengeGate
from rushgate.services.documents import DocumentService
from rushgate.services.enrollment import EnrollmentService, FrontDoor
from rushgate.services.login_guard import LoginGuard, LoginPolicy
from rushgate.services.notifications import Notifier
from rushgate.services.ports.coordination import Coordination
from rushgate.services.ports.documents import DocumentStore
from rushgate.services.ports.geo import CountryLookup
from rushgate.services.ports.mail import Mailer
from rushgate.services.qna import QnaService
from rushgate.services.rate_limits import RateLimits
from rushgate.services.registry import RegistryService
from rushgate.services.waiting_room import RoomFeed, TermDirectory, WaitingRoomService
from rushgate.workers.admitter import Admitter, database_health
from rushgate.workers.document_sweeper import DocumentSweeper
from rushgate.workers.outbox_relay import OutboxRelay
from rushgate.workers.seat_hints import SeatHintKeeper

if TYPE_CHECKING:
    from rushgate.observability.chat import WebhookKind

# Seat hints are rebuilt from the database this often, to heal what a crashed node left.
HINT_RECONCILE_SECONDS = 30.0
# Stored documents that no record refers to are looked for this often.
DOCUMENT_SWEEP_SECONDS = 3600.0
# How long the link in a sign-up verification mail works.
VERIFICATION_TTL = timedelta(hours=48)


CHAT_HANDLER = "rushgate-chat"


def configure_process(settings: Settings) -> LogFormat:
    """What a process that serves or works sets up once, before anything logs: structured
    logs, Sentry when a DSN is given, and the chat notifier when a webhook is. Sentry and
    the notifier flush what they hold when the process exits. Returns the log format
    chosen (``auto`` resolved)."""
    chosen_format = configure_logging(
        fmt=settings.log_format, level=settings.log_level, node=settings.node_name
    )
    if settings.sentry_dsn is not None:
        init_sentry(
            settings.sentry_dsn.get_secret_value(),
            release=__version__,
            environment=settings.sentry_environment,
            node=settings.node_name,
            traces_sample_rate=settings.sentry_traces_sample_rate,
        )
        atexit.register(close_sentry)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == CHAT_HANDLER:  # configured again (tests): replace it
            root.removeHandler(handler)
            handler.close()
    chosen: list[tuple[WebhookKind, str]] = []
    if settings.chat_discord_webhook_url is not None:
        chosen.append(("discord", settings.chat_discord_webhook_url.get_secret_value()))
    if settings.chat_slack_webhook_url is not None:
        chosen.append(("slack", settings.chat_slack_webhook_url.get_secret_value()))
    if not chosen:
        return chosen_format
    from rushgate.observability.chat import ChatLogHandler, ChatNotifier, Webhook

    notifier = ChatNotifier(
        [Webhook(kind, url) for kind, url in chosen],
        service="rushgate",
        node=settings.node_name,
        max_per_minute=settings.chat_max_per_minute,
        dedupe_seconds=settings.chat_dedupe_seconds,
    )
    handler = ChatLogHandler(notifier)
    handler.set_name(CHAT_HANDLER)
    root.addHandler(handler)
    atexit.register(notifier.close)
    return chosen_format


def build_coordination(settings: Settings, clock: Clock) -> Coordination:
    if settings.redis_url is None:
        return MemoryCoordination(clock)
    from rushgate.adapters.redis.coordination import RedisCoordination

    return RedisCoordination.from_url(settings.redis_url, prefix=settings.redis_key_prefix)


def build_country_lookup(settings: Settings) -> CountryLookup | None:
    if settings.geoip_db is None:
        return None
    from rushgate.adapters.geo.mmdb import MmdbCountries

    return MmdbCountries(settings.geoip_db)


def build_challenges(settings: Settings, coordination: Coordination) -> ChallengeGate:
    """The configured bot challenge; answers are remembered in the coordination store,
    so one is accepted once whichever node sees it."""
    if settings.challenge == "off":
        return ChallengeGate(None)
    if settings.challenge == "pow":
        from rushgate.adapters.challenge.pow import ProofOfWork

        pow_verifier = ProofOfWork(
            settings.effective_secret_key().encode(),
            coordination.used_answers,
            # Puzzles expire in real time, whatever clock the rules run on (demos).
            SystemClock(),
            difficulty=settings.pow_difficulty,
        )
        return ChallengeGate(pow_verifier, on_join=settings.challenge_on_join)
    from rushgate.adapters.challenge.captcha import HCAPTCHA, TURNSTILE, SiteverifyVerifier

    site_key, secret = settings.challenge_site_key, settings.challenge_secret_key
    if site_key is None or secret is None:  # Settings refuses this already
        raise ValueError("a CAPTCHA needs RUSHGATE_CHALLENGE_SITE_KEY and _SECRET_KEY")
    captcha = SiteverifyVerifier(
        TURNSTILE if settings.challenge == "turnstile" else HCAPTCHA,
        site_key=site_key,
        secret=secret.get_secret_value(),
        used=coordination.used_answers,
        verify_url=settings.challenge_verify_url,
        timeout_seconds=settings.challenge_timeout_seconds,
        hostname=settings.challenge_hostname,
    )
    return ChallengeGate(captcha, on_join=settings.challenge_on_join, close=captcha.aclose)


def build_password_policy(settings: Settings) -> PasswordPolicy:
    """The password rules, with the breached list read (or opened) once, at start."""
    breached = (
        None
        if settings.breached_passwords_file is None
        else open_breached_list(settings.breached_passwords_file)
    )
    return PasswordPolicy(min_length=settings.password_min_length, breached=breached)


def build_mailer(settings: Settings) -> Mailer:
    if settings.smtp_url is None:
        return ConsoleMailer()
    return SmtpMailer.from_url(settings.smtp_url.get_secret_value(), settings.mail_from)


def build_node_gauges(storage: SqlStorage, coordination: Coordination, clock: Clock) -> NodeGauges:
    relay = storage.outbox_relay()
    pool = storage.primary.pool

    def pool_usage() -> tuple[int, int]:
        # QueuePool (PostgreSQL, SQLite files) knows both; other pools report 0.
        checkedout = getattr(pool, "checkedout", None)
        size = getattr(pool, "size", None)
        return (
            int(checkedout()) if callable(checkedout) else 0,
            int(size()) if callable(size) else 0,
        )

    return NodeGauges(
        outbox_stats=lambda: relay.stats(now=clock.now()),
        replica_lag=storage.replica_lag_seconds,
        pool=pool_usage,
        clock=clock,
        db_ping=storage.ping,
        redis_ping=None if isinstance(coordination, MemoryCoordination) else coordination.ping,
    )


def time_queries(storage: SqlStorage) -> None:
    """Every engine's statements timed, labelled by the role the engine plays."""
    time_queries_of(storage.primary.sync_engine, "primary")
    if storage.primary_reads is not storage.primary:
        time_queries_of(storage.primary_reads.sync_engine, "primary")
    if storage.replica is not storage.primary_reads:
        time_queries_of(storage.replica.sync_engine, "replica")


@dataclass
class Container:
    settings: Settings
    clock: Clock
    storage: SqlStorage
    coordination: Coordination
    auth: AuthService
    challenges: ChallengeGate
    login_guard: LoginGuard
    enrollment: EnrollmentService
    registry: RegistryService
    admissions: AdmissionsService
    qna: QnaService
    audit: AuditService
    document_store: DocumentStore
    documents: DocumentService
    waiting_room: WaitingRoomService
    admitter: Admitter
    hint_keeper: SeatHintKeeper
    document_sweeper: DocumentSweeper
    outbox_relay: OutboxRelay
    feed: RoomFeed
    terms: TermDirectory
    catalog_pages: CatalogPages[RenderedPage]
    room_gauges: RoomGauges
    section_gauges: SectionGauges
    node_gauges: NodeGauges
    rate_limits: RateLimits
    countries: CountryLookup | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None) -> Container:
        clock = clock or SystemClock()
        storage = SqlStorage.from_urls(
            settings.effective_database_url,
            settings.database_replica_url,
            clock,
            pool_size=settings.database_pool_size,
        )
        time_queries(storage)
        secret = settings.effective_secret_key()
        hasher = Argon2Hasher(settings.password_hash_cost)
        passwords = build_password_policy(settings)
        signer = JwtSigner(secret, clock, timedelta(seconds=settings.token_ttl_seconds))
        coordination = build_coordination(settings, clock)
        auth = AuthService(storage, hasher, signer)
        challenges = build_challenges(settings, coordination)
        document_store = LocalDocumentStore(settings.effective_documents_dir)
        documents = DocumentService(
            storage, document_store, clock, max_bytes=settings.max_upload_bytes
        )
        terms = TermDirectory(storage.reads)
        feed = RoomFeed()
        gauges = RoomGauges()
        section_gauges = SectionGauges()
        tick_seconds = settings.queue_tick_ms / 1000
        waiting_room = WaitingRoomService(
            coordination.store,
            AdmissionTokens(secret, clock),
            terms,
            feed,
            clock,
            tick_seconds=tick_seconds,
        )
        admitter = Admitter(
            coordination.store,
            coordination.lock,
            coordination.bus,
            feed,
            terms,
            clock,
            gauges,
            tick_seconds=tick_seconds,
            backend_healthy=database_health(storage, settings.queue_max_db_latency_ms / 1000),
        )
        return cls(
            settings=settings,
            clock=clock,
            storage=storage,
            coordination=coordination,
            auth=auth,
            challenges=challenges,
            login_guard=LoginGuard(
                auth,
                coordination.limits,
                challenges,
                LoginPolicy(
                    pair_failures=settings.login_max_failures,
                    account_step_up_failures=settings.login_account_step_up_failures,
                    ip_step_up_failures=settings.login_ip_step_up_failures,
                ),
            ),
            enrollment=EnrollmentService(
                storage, clock, FrontDoor(terms, coordination.hints, waiting_room)
            ),
            registry=RegistryService(
                storage, hasher, hasher.hash_many, clock=clock, passwords=passwords
            ),
            admissions=AdmissionsService(
                storage,
                hasher,
                AesGcmFieldCipher.from_secret(settings.effective_personal_data_key()),
                VerificationJwt(secret, clock, VERIFICATION_TTL),
                clock,
                require_verification=settings.effective_require_email_verification,
                # The page that verifies and says so (the API's link answers 204).
                verify_url=settings.public_url.rstrip("/") + "/verify?token={token}",
                passwords=passwords,
            ),
            qna=QnaService(storage, clock),
            audit=AuditService(storage, clock),
            document_store=document_store,
            documents=documents,
            document_sweeper=DocumentSweeper(
                documents, coordination.lock, every_seconds=DOCUMENT_SWEEP_SECONDS
            ),
            waiting_room=waiting_room,
            admitter=admitter,
            hint_keeper=SeatHintKeeper(
                coordination.hints,
                coordination.lock,
                storage,
                terms,
                clock,
                reconcile_seconds=HINT_RECONCILE_SECONDS,
                metrics=section_gauges,
            ),
            # On every process, with no lock: claims are leased (see the relay).
            outbox_relay=OutboxRelay(
                storage.outbox_relay(),
                storage.contacts(),
                Notifier(default_locale=settings.mail_default_locale),
                build_mailer(settings),
                clock,
                batch=settings.outbox_batch,
                max_attempts=settings.outbox_max_attempts,
                retention=timedelta(days=settings.outbox_retention_days)
                if settings.outbox_retention_days
                else None,
            ),
            feed=feed,
            terms=terms,
            catalog_pages=CatalogPages(
                settings.catalog_cache_seconds,
                max_weight=CATALOG_CACHE_BYTES,
                weigh=lambda page: len(page.body),
            ),
            room_gauges=gauges,
            section_gauges=section_gauges,
            node_gauges=build_node_gauges(storage, coordination, clock),
            rate_limits=RateLimits(
                coordination.limits,
                enabled=settings.rate_limits,
                scale=settings.rate_limit_scale,
                metrics=RateLimitCounters(),
            ),
            countries=build_country_lookup(settings),
        )

    def start(self) -> None:
        """Background work of a serving node: follow room snapshots, take part in the
        admitter election, keep seat hints rebuilt, deliver the outbox's mail, sweep
        unreferenced documents."""
        self._tasks = [
            asyncio.create_task(self.feed.follow(self.coordination.bus), name="room-feed"),
            asyncio.create_task(self.admitter.run(), name="admitter"),
            asyncio.create_task(self.hint_keeper.run(), name="seat-hints"),
            asyncio.create_task(self.document_sweeper.run(), name="document-sweep"),
            asyncio.create_task(self.outbox_relay.run(), name="outbox-relay"),
            asyncio.create_task(self.node_gauges.run(), name="pool-gauges"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._tasks:
            for holder in (self.admitter, self.hint_keeper, self.document_sweeper):
                with contextlib.suppress(Exception):
                    await holder.release()
        with contextlib.suppress(Exception):
            await self.outbox_relay.close()
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.challenges.close()
        await self.coordination.close()
        await self.storage.close()
