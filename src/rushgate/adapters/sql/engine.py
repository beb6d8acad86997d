"""Engines, transactions and read/write routing for PostgreSQL and the embedded SQLite."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncTransaction,
    create_async_engine,
)

from rushgate.adapters.sql import unavailable
from rushgate.adapters.sql.admissions import SqlAdmissionsRepository
from rushgate.adapters.sql.audit import SqlAuditLog
from rushgate.adapters.sql.contacts import SqlContacts
from rushgate.adapters.sql.documents import SqlDocumentsRepository
from rushgate.adapters.sql.outbox import SqlOutboxRelayStore, SqlOutboxWriter
from rushgate.adapters.sql.postgres import PgUnitOfWork
from rushgate.adapters.sql.qna import SqlQnaRepository
from rushgate.adapters.sql.reads import ReplicaRouting, SqlReadModel
from rushgate.adapters.sql.repositories import SqliteEnrollmentRepository, SqlRegistryRepository
from rushgate.domain.clock import Clock


def async_url(url: str) -> URL:
    """Accept plain ``postgresql://`` / ``sqlite:///`` URLs and pick the async driver."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


def sqlite_url_for(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'rushgate.sqlite3').resolve()}"


def _configure_sqlite(engine: AsyncEngine, *, immediate: bool) -> None:
    """WAL, a busy timeout, foreign keys, and explicit BEGINs (IMMEDIATE for writers).

    The sqlite3 module's own transaction handling would begin lazily and upgrade read locks
    to write locks mid-transaction, which deadlocks across processes; so it is switched off
    and every transaction is begun here.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: every acknowledged enrollment survives a power loss, not only a crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine(
    url: str, *, writer: bool, pool_size: int = 20, own_transactions: bool = False
) -> AsyncEngine:
    """An engine for ``url``. ``own_transactions`` (PostgreSQL): SQLAlchemy sends no
    BEGIN/COMMIT of its own; the caller runs transactions on the driver connection."""
    target = async_url(url)
    if target.get_backend_name() == "sqlite":
        database = target.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(target, pool_size=pool_size, max_overflow=pool_size)
        _configure_sqlite(engine, immediate=writer)
        return engine
    return create_async_engine(
        target,
        pool_size=pool_size,
        # A fixed pool: overflow connections were opened and closed again under a rush's
        # uneven load, each costing a fork on the server and a handshake here.
        max_overflow=0,
        pool_pre_ping=False,
        connect_args={"server_settings": {"application_name": "rushgate"}},
        **({"isolation_level": "AUTOCOMMIT"} if own_transactions else {}),
    )


class SqliteUnitOfWork:
    """One write transaction on the embedded SQLite (BEGIN IMMEDIATE, see ``create_engine``)."""

    enrollments: SqliteEnrollmentRepository
    registry: SqlRegistryRepository
    outbox: SqlOutboxWriter
    admissions: SqlAdmissionsRepository
    qna: SqlQnaRepository
    documents: SqlDocumentsRepository
    audit: SqlAuditLog

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None

    async def __aenter__(self) -> Self:
        self._conn = await self._engine.connect()
        try:
            self._tx = await self._conn.begin()
        except BaseException:
            await self._conn.close()
            raise
        self.enrollments = SqliteEnrollmentRepository(self._conn, self._clock)
        self.registry = SqlRegistryRepository(self._conn, self._clock)
        self.outbox = SqlOutboxWriter(self._conn, self._clock)
        self.admissions = SqlAdmissionsRepository(self._conn, self._clock)
        self.qna = SqlQnaRepository(self._conn)
        self.documents = SqlDocumentsRepository(self._conn)
        self.audit = SqlAuditLog(self._conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._conn is not None
        assert self._tx is not None
        try:
            if self._tx.is_active:
                await self._tx.rollback()
        finally:
            await self._conn.close()

    async def commit(self) -> None:
        assert self._tx is not None
        await self._tx.commit()


# Caught up when it has replayed everything it received; else the age of the last replayed
# transaction (an idle primary sends nothing, so that age alone would look like lag).
_REPLICA_LAG = """
SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END
"""


class SqlStorage:
    """``Storage`` on SQL: writes on the primary, reads on the replica unless fresh."""

    def __init__(
        self,
        primary: AsyncEngine,
        primary_reads: AsyncEngine,
        replica: AsyncEngine,
        clock: Clock,
    ) -> None:
        self.primary = primary
        # Reads that must see the primary's latest commits. On PostgreSQL that is the
        # primary itself; on SQLite a deferred-BEGIN engine on the same file, because the
        # writer engine begins IMMEDIATE and would take the write lock for a mere read.
        self.primary_reads = primary_reads
        self.replica = replica
        self._replica_routing = ReplicaRouting()
        self._clock = clock

    @classmethod
    def from_urls(
        cls, url: str, replica_url: str | None, clock: Clock, *, pool_size: int = 20
    ) -> SqlStorage:
        primary = create_engine(url, writer=True, pool_size=pool_size, own_transactions=True)
        primary_reads = (
            create_engine(url, writer=False, pool_size=pool_size)
            if primary.dialect.name == "sqlite"
            else primary
        )
        replica = (
            create_engine(replica_url, writer=False, pool_size=pool_size)
            if replica_url
            else primary_reads
        )
        return cls(primary, primary_reads, replica, clock)

    @property
    def dialect(self) -> str:
        return self.primary.dialect.name

    def unit_of_work(self) -> SqliteUnitOfWork | PgUnitOfWork:
        if self.dialect == "postgresql":
            return PgUnitOfWork(self.primary, self._clock)
        return SqliteUnitOfWork(self.primary, self._clock)

    def outbox_relay(self) -> SqlOutboxRelayStore:
        return SqlOutboxRelayStore(self.primary)

    def contacts(self) -> SqlContacts:
        """Mail addresses, read where the latest sign-ups are: the primary."""
        return SqlContacts(self.primary_reads)

    def reads(self, *, fresh: bool = False) -> SqlReadModel:
        if fresh or self.replica is self.primary_reads:
            return SqlReadModel(self.primary_reads)
        return SqlReadModel(self.replica, self.primary_reads, self._replica_routing)

    async def replica_lag_seconds(self) -> float | None:
        """How far the replica's replay is behind (0 when it has replayed all it received);
        None without a replica. Raises when the replica cannot answer."""
        if self.replica is self.primary_reads or self.replica.dialect.name != "postgresql":
            return None
        async with self.replica.connect() as conn:
            lag = (await conn.execute(text(_REPLICA_LAG))).scalar()
        return None if lag is None else float(lag)

    @property
    def outage_errors(self) -> tuple[type[Exception], ...]:
        return unavailable.CANDIDATES

    def is_outage(self, error: BaseException) -> bool:
        return unavailable.database_unavailable(error)

    async def ping(self) -> None:
        async with self.primary_reads.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        for engine in {self.primary, self.primary_reads, self.replica}:
            await engine.dispose()
