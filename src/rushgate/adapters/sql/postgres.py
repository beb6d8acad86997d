"""PostgreSQL's unit of work and enrollment repository: the hot path of a rush.

The enrollment statements run as asyncpg prepared statements on the unit of work's
connection, inside the same transaction as anything done through SQLAlchemy there (the
administrative repository). SQLAlchemy's per-statement machinery costs several times
what PostgreSQL spends on these statements, and an enroll is the request every student
sends at the same second; so the hot path speaks SQL directly, and every statement here
is the same one ``bench/enroll.py`` hands to raw ``pgbench``.

How the transaction is owned: the writer engine runs SQLAlchemy in AUTOCOMMIT mode (it
never sends BEGIN/COMMIT itself) and the unit of work opens an asyncpg transaction on the
connection. Everything sent on that connection, through SQLAlchemy or not, is then inside
that one transaction, committed or rolled back here.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any, Self

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rushgate.adapters.sql.admissions import SqlAdmissionsRepository
from rushgate.adapters.sql.audit import SqlAuditLog
from rushgate.adapters.sql.codec import meetings_from_json, window_from_row
from rushgate.adapters.sql.documents import SqlDocumentsRepository
from rushgate.adapters.sql.qna import SqlQnaRepository
from rushgate.adapters.sql.repositories import SqlRegistryRepository
from rushgate.domain.clock import Clock
from rushgate.domain.errors import AlreadyEnrolled, NotFound
from rushgate.domain.model import Holding, HoldingStatus, SectionRef
from rushgate.services.ports.enrollment import (
    EnrollmentContext,
    LockedStudent,
    Promotion,
    Receipt,
    SectionForEnrollment,
    StoredResult,
)
from rushgate.services.ports.outbox import OutboxMessage

_LOCK_STUDENT = """
SELECT student_id, class_year, max_credits, user_id FROM students WHERE id = $1 FOR UPDATE
"""

# Read after the student's row is locked, so a concurrent request of the same student that
# committed while this one waited is visible here (a new statement, a new snapshot).
_CONTEXT = """
SELECT s.id, s.term_id, s.section_id, s.course_code, s.title, s.credits, s.capacity,
       s.waitlist_capacity, s.meetings, t.opens_at, t.closes_at, t.class_year_opens_at,
       (SELECT coalesce(json_agg(json_build_object(
                   'section_id', hs.section_id, 'course_code', hs.course_code,
                   'credits', hs.credits, 'meetings', hs.meetings, 'status', e.status)),
               '[]'::json)
          FROM enrollments e JOIN sections hs ON hs.id = e.section_id
         WHERE e.student_id = $1 AND e.term_id = t.id) AS holdings,
       (SELECT json_build_object('request_hash', k.request_hash, 'response', k.response)
          FROM idempotency_keys k
         WHERE k.student_id = $1 AND k.key = $4) AS stored
  FROM (SELECT 1) AS one
  LEFT JOIN (sections s JOIN terms t ON t.id = s.term_id)
         ON t.code = $2 AND s.section_id = $3
"""

_FIND_SECTION = """
SELECT s.id, s.term_id, s.section_id, s.course_code, s.title, s.credits, s.capacity,
       s.waitlist_capacity, s.meetings, t.opens_at, t.closes_at, t.class_year_opens_at
  FROM sections s JOIN terms t ON t.id = s.term_id
 WHERE t.code = $1 AND s.section_id = $2
"""

# The seat: conditional increment, the row it counts, and the idempotency receipt, in one
# statement. Nothing is written unless a seat was free. Answers the seats left after it.
_TAKE_SEAT = """
WITH seat AS (
    UPDATE sections SET enrolled = enrolled + 1
     WHERE id = $1 AND enrolled < capacity
    RETURNING id, term_id, course_code, capacity - enrolled AS seats_left
), taken AS (
    INSERT INTO enrollments (term_id, student_id, section_id, course_code, status, created_at)
    SELECT term_id, $2, id, course_code, 'enrolled', $3 FROM seat
    RETURNING id
), receipt AS (
    INSERT INTO idempotency_keys (student_id, key, request_hash, response, created_at)
    SELECT $2, $4::varchar, $5::varchar, $6::jsonb, $3 FROM taken WHERE $4::varchar IS NOT NULL
)
SELECT seat.seats_left FROM seat, taken
"""

# Only a full section takes waitlist entries (see the enrollment service).
_JOIN_WAITLIST = """
WITH slot AS (
    UPDATE sections SET waitlisted = waitlisted + 1, waitlist_seq = waitlist_seq + 1
     WHERE id = $1 AND enrolled >= capacity AND waitlisted < waitlist_capacity
    RETURNING id, term_id, course_code, waitlisted, waitlist_seq
), queued AS (
    INSERT INTO enrollments
           (term_id, student_id, section_id, course_code, status, waitlist_seq, created_at)
    SELECT term_id, $2, id, course_code, 'waitlisted', waitlist_seq, $3 FROM slot
    RETURNING id
)
SELECT slot.waitlisted FROM slot, queued
"""

_SEATS_FREE = "SELECT enrolled < capacity FROM sections WHERE id = $1"

_LOCK_SECTION = "SELECT id FROM sections WHERE id = $1 FOR UPDATE"

_REMOVE_HOLDING = """
WITH gone AS (
    DELETE FROM enrollments WHERE student_id = $1 AND section_id = $2 RETURNING status
), uncounted AS (
    UPDATE sections SET waitlisted = waitlisted - 1
     WHERE id = $2 AND EXISTS (SELECT 1 FROM gone WHERE status = 'waitlisted')
)
SELECT status FROM gone
"""

# The seat passes straight to the promoted student: `enrolled` does not change. The
# student's row is only read (for where the mail goes), not locked.
_PROMOTE_HEAD = """
WITH head AS (
    SELECT id FROM enrollments
     WHERE section_id = $1 AND status = 'waitlisted'
     ORDER BY waitlist_seq LIMIT 1
       FOR UPDATE
), promoted AS (
    UPDATE enrollments e SET status = 'enrolled', waitlist_seq = NULL
      FROM head WHERE e.id = head.id
    RETURNING e.student_id
), uncounted AS (
    UPDATE sections SET waitlisted = waitlisted - 1
     WHERE id = $1 AND EXISTS (SELECT 1 FROM promoted)
)
SELECT p.student_id, st.user_id FROM promoted p JOIN students st ON st.id = p.student_id
"""

_RELEASE_SEAT = "UPDATE sections SET enrolled = enrolled - 1 WHERE id = $1"

_REMEMBER = """
INSERT INTO idempotency_keys (student_id, key, request_hash, response, created_at)
VALUES ($1, $2, $3, $4::jsonb, $5)
"""

# An outbox row in the unit of work's transaction (see adapters/sql/outbox.py).
_OUTBOX_ADD = """
INSERT INTO outbox (kind, dedupe_key, user_id, payload, state, attempts, available_at,
                    created_at)
VALUES ($1, $2, $3, $4::jsonb, 'pending', 0, $5, $5)
ON CONFLICT (dedupe_key) DO NOTHING
"""


def _json(value: Any) -> Any:
    """asyncpg hands JSON back as text on SQLAlchemy-managed connections."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _section(row: asyncpg.Record) -> SectionForEnrollment:
    return SectionForEnrollment(
        pk=row["id"],
        term_pk=row["term_id"],
        ref=SectionRef(
            row["section_id"],
            row["course_code"],
            row["credits"],
            meetings_from_json(_json(row["meetings"])),
        ),
        title=row["title"],
        capacity=row["capacity"],
        waitlist_capacity=row["waitlist_capacity"],
        window=window_from_row(
            row["opens_at"], row["closes_at"], _json(row["class_year_opens_at"])
        ),
    )


class PgEnrollmentRepository:
    def __init__(self, conn: asyncpg.Connection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock

    async def lock_student(self, student_pk: int) -> LockedStudent:
        row = await self._conn.fetchrow(_LOCK_STUDENT, student_pk)
        if row is None:
            raise NotFound("no such student")
        return LockedStudent(
            row["student_id"], row["class_year"], row["max_credits"], row["user_id"]
        )

    async def enrollment_context(
        self, student_pk: int, term_code: str, section_id: str, idempotency_key: str | None
    ) -> EnrollmentContext:
        row = await self._conn.fetchrow(
            _CONTEXT, student_pk, term_code, section_id, idempotency_key
        )
        assert row is not None  # the query always returns its one row
        stored = _json(row["stored"])
        return EnrollmentContext(
            section=None if row["id"] is None else _section(row),
            holdings=[
                Holding(
                    SectionRef(
                        h["section_id"],
                        h["course_code"],
                        h["credits"],
                        meetings_from_json(h["meetings"]),
                    ),
                    HoldingStatus(h["status"]),
                )
                for h in _json(row["holdings"])
            ],
            stored=None
            if stored is None
            else StoredResult(stored["request_hash"], dict(stored["response"])),
        )

    async def find_section(self, term_code: str, section_id: str) -> SectionForEnrollment:
        row = await self._conn.fetchrow(_FIND_SECTION, term_code, section_id)
        if row is None:
            raise NotFound("no such section in this term", term=term_code, section_id=section_id)
        return _section(row)

    async def lock_section(self, section_pk: int) -> None:
        await self._conn.execute(_LOCK_SECTION, section_pk)

    async def take_seat(
        self, section: SectionForEnrollment, student_pk: int, receipt: Receipt | None = None
    ) -> int | None:
        try:
            row = await self._conn.fetchrow(
                _TAKE_SEAT,
                section.pk,
                student_pk,
                self._clock.now(),
                None if receipt is None else receipt.key,
                None if receipt is None else receipt.result.request_hash,
                None if receipt is None else json.dumps(receipt.result.body),
            )
        except asyncpg.UniqueViolationError as exc:
            # The constraint caught what the checks should have; the statement wrote nothing.
            raise AlreadyEnrolled("you already hold a section of this course") from exc
        return None if row is None else int(row[0])

    async def join_waitlist(self, section: SectionForEnrollment, student_pk: int) -> int | None:
        try:
            position = await self._conn.fetchval(
                _JOIN_WAITLIST, section.pk, student_pk, self._clock.now()
            )
        except asyncpg.UniqueViolationError as exc:
            raise AlreadyEnrolled("you already hold a section of this course") from exc
        return None if position is None else int(position)

    async def seats_free(self, section_pk: int) -> bool:
        return bool(await self._conn.fetchval(_SEATS_FREE, section_pk))

    async def remove_holding(self, student_pk: int, section_pk: int) -> HoldingStatus | None:
        status = await self._conn.fetchval(_REMOVE_HOLDING, student_pk, section_pk)
        return None if status is None else HoldingStatus(status)

    async def promote_waitlist_head(self, section_pk: int) -> Promotion | None:
        row = await self._conn.fetchrow(_PROMOTE_HEAD, section_pk)
        return None if row is None else Promotion(int(row[0]), int(row[1]))

    async def release_seat(self, section_pk: int) -> None:
        await self._conn.execute(_RELEASE_SEAT, section_pk)

    async def remember_result(self, student_pk: int, key: str, result: StoredResult) -> None:
        await self._conn.execute(
            _REMEMBER,
            student_pk,
            key,
            result.request_hash,
            json.dumps(result.body),
            self._clock.now(),
        )


class PgOutboxWriter:
    """``OutboxWriter`` on the unit of work's driver connection: an enroll writes a row,
    so it is a prepared statement like the rest of the hot path."""

    def __init__(self, conn: asyncpg.Connection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock

    async def add(self, message: OutboxMessage) -> None:
        await self._conn.execute(
            _OUTBOX_ADD,
            message.kind,
            message.dedupe_key,
            message.user_pk,
            json.dumps(message.payload),
            self._clock.now(),
        )


# Errors of a connection that cannot be used, rather than of what was sent on it.
_BROKEN = (
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    OSError,
)
# Right after a restart most of a pool can be broken at once; each failed BEGIN drops its
# connection for good, so this only bounds a pool larger than any sane configuration.
_BEGIN_ATTEMPTS = 64


class PgUnitOfWork:
    """One transaction on the primary, owned through asyncpg (see the module docstring)."""

    enrollments: PgEnrollmentRepository
    registry: SqlRegistryRepository
    outbox: PgOutboxWriter
    admissions: SqlAdmissionsRepository
    qna: SqlQnaRepository
    documents: SqlDocumentsRepository
    audit: SqlAuditLog

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._conn: AsyncConnection | None = None
        self._driver: asyncpg.Connection | None = None
        self._tx: Any = None

    async def _checkout(self) -> tuple[AsyncConnection, asyncpg.Connection]:
        """A pooled connection the server has not closed. After a restart or failover
        every idle connection in the pool is dead; SQLAlchemy would notice only on its
        own statements, and these go to the driver, so each would fail one request and
        go back to the pool to fail the next. asyncpg knows a connection whose socket the
        server closed without a round trip: drop those here instead."""
        while True:  # each dead one leaves the pool for good: at most pool-size rounds
            conn = await self._engine.connect()
            try:
                raw = await conn.get_raw_connection()
            except BaseException:
                await conn.close()
                raise
            driver: asyncpg.Connection = raw.driver_connection
            if not driver.is_closed():
                return conn, driver
            await conn.invalidate()
            await conn.close()

    async def __aenter__(self) -> Self:
        attempt = 0
        while True:
            conn, driver = await self._checkout()
            try:
                tx = driver.transaction()
                await tx.start()
                break
            except BaseException as exc:
                # Whether a BEGIN that failed or was cancelled reached the server is
                # unknown: the connection must not serve anyone else.
                await conn.invalidate()
                await conn.close()
                # Nothing was done yet, so a connection that turned out broken (the
                # server went away, or left it mid-protocol) is simply replaced.
                attempt += 1
                if not isinstance(exc, _BROKEN) or attempt == _BEGIN_ATTEMPTS:
                    raise
        self._conn, self._driver, self._tx = conn, driver, tx
        self.enrollments = PgEnrollmentRepository(driver, self._clock)
        self.registry = SqlRegistryRepository(conn, self._clock)
        self.outbox = PgOutboxWriter(driver, self._clock)
        self.admissions = SqlAdmissionsRepository(conn, self._clock)
        self.qna = SqlQnaRepository(conn)
        self.documents = SqlDocumentsRepository(conn)
        self.audit = SqlAuditLog(conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._conn is not None
        assert self._driver is not None
        try:
            if self._tx is not None:
                await self._tx.rollback()
        except (asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
            # The connection broke under us: make sure the pool throws it away.
            await self._conn.invalidate()
        except BaseException:
            # Cancelled mid-rollback, or the driver's state is off: whatever the
            # connection is in the middle of, nobody else may inherit it.
            await self._conn.invalidate()
            raise
        finally:
            if self._driver.is_closed() and not self._conn.invalidated:
                await self._conn.invalidate()  # e.g. lost during COMMIT
            await self._conn.close()

    async def commit(self) -> None:
        assert self._tx is not None
        tx, self._tx = self._tx, None
        await tx.commit()
