"""Lock-free reads: catalog, schedules, rosters, accounts. Plain SELECTs, no row locks."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import Select, and_, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from rushgate.adapters.sql.codec import meetings_from_json, window_from_row
from rushgate.adapters.sql.tables import enrollments as E
from rushgate.adapters.sql.tables import sections as S
from rushgate.adapters.sql.tables import students as ST
from rushgate.adapters.sql.tables import terms as T
from rushgate.adapters.sql.tables import users as U
from rushgate.domain.errors import NotFound
from rushgate.domain.model import HoldingStatus
from rushgate.services.ports.auth import Account
from rushgate.services.ports.enrollment import Roster, RosterEntry, ScheduleEntry, SectionView
from rushgate.services.ports.registry import Term

_SECTION_COLUMNS = (
    S.c.section_id,
    S.c.course_code,
    S.c.title,
    S.c.credits,
    S.c.capacity,
    S.c.enrolled,
    S.c.waitlist_capacity,
    S.c.waitlisted,
    S.c.meetings,
)


def _section_view(row: Any) -> SectionView:
    return SectionView(
        section_id=row.section_id,
        course_code=row.course_code,
        title=row.title,
        credits=row.credits,
        capacity=row.capacity,
        enrolled=row.enrolled,
        waitlist_capacity=row.waitlist_capacity,
        waitlisted=row.waitlisted,
        meetings=meetings_from_json(row.meetings),
    )


def _waitlist_position() -> ColumnElement[Any]:
    """1-based place of a waitlisted row among its section's waitlisted rows."""
    ahead = E.alias("ahead")
    return (
        select(func.count())
        .where(
            ahead.c.section_id == E.c.section_id,
            ahead.c.status == HoldingStatus.WAITLISTED.value,
            ahead.c.waitlist_seq <= E.c.waitlist_seq,
        )
        .scalar_subquery()
    )


_T = TypeVar("_T")
# After a replica failed, reads skip it for this long rather than pay its timeout again.
REPLICA_BACKOFF_SECONDS = 10.0

log = logging.getLogger("rushgate.sql")


async def _on(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
    async with engine.connect() as conn:
        return await work(conn)


class ReplicaRouting:
    """Whether to read from the replica: yes, unless it failed in the last few seconds."""

    def __init__(self) -> None:
        self._down_until = 0.0

    @property
    def usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, exc: BaseException) -> None:
        if self.usable:
            log.warning("replica unreachable (%s); reading from the primary", type(exc).__name__)
        self._down_until = time.monotonic() + REPLICA_BACKOFF_SECONDS


class SqlReadModel:
    """Reads on ``engine``; with ``fallback``, an unreachable ``engine`` (the replica)
    degrades to ``fallback`` (the primary) instead of failing the request."""

    def __init__(
        self,
        engine: AsyncEngine,
        fallback: AsyncEngine | None = None,
        routing: ReplicaRouting | None = None,
    ) -> None:
        self._engine = engine
        self._fallback = fallback
        self._routing = routing

    async def _run(self, work: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """``work`` on one connection of the engine, or of the fallback while the engine
        is unreachable (refused, or its pooled connections died with it)."""
        if self._fallback is None or self._routing is None:
            return await _on(self._engine, work)
        if self._routing.usable:
            try:
                return await _on(self._engine, work)
            except DBAPIError as exc:
                if not (exc.connection_invalidated or isinstance(exc.orig, OSError)):
                    raise
                self._routing.failed(exc)
            except (OSError, TimeoutError) as exc:
                self._routing.failed(exc)
        return await _on(self._fallback, work)

    async def _all(self, query: Select[Any]) -> list[Any]:
        async def fetch(conn: AsyncConnection) -> list[Any]:
            return list(await conn.execute(query))

        return await self._run(fetch)

    async def terms(self) -> list[Term]:
        return [term_view(r) for r in await self._all(select(T).order_by(T.c.opens_at))]

    async def term(self, code: str) -> Term:
        rows = await self._all(select(T).where(T.c.code == code))
        if not rows:
            raise NotFound("no such term", term=code)
        return term_view(rows[0])

    async def catalog(
        self,
        term_code: str,
        *,
        after: str | None = None,
        limit: int | None = None,
        course_prefix: str | None = None,
    ) -> list[SectionView]:
        async def work(conn: AsyncConnection) -> list[SectionView]:
            term_pk = (await conn.execute(select(T.c.id).where(T.c.code == term_code))).scalar()
            if term_pk is None:
                raise NotFound("no such term", term=term_code)
            # Keyset paging on the (term_id, section_id) unique index: each page is an
            # index range scan from the cursor, however deep into the catalog it is,
            # and sections added meanwhile never shift the pages after the cursor.
            query = select(*_SECTION_COLUMNS).where(S.c.term_id == term_pk)
            if after is not None:
                query = query.where(S.c.section_id > after)
            if course_prefix:
                # substr, not LIKE: LIKE ignores case on SQLite but not on PostgreSQL.
                prefix = func.substr(S.c.course_code, 1, len(course_prefix))
                query = query.where(prefix == course_prefix)
            query = query.order_by(S.c.section_id)
            if limit is not None:
                query = query.limit(limit)
            return [_section_view(r) for r in await conn.execute(query)]

        return await self._run(work)

    async def schedule(self, student_pk: int, term_code: str) -> list[ScheduleEntry]:
        position = _waitlist_position()
        rows = await self._all(
            select(*_SECTION_COLUMNS, E.c.status, position.label("position"))
            .select_from(E.join(S, S.c.id == E.c.section_id).join(T, T.c.id == E.c.term_id))
            .where(E.c.student_id == student_pk, T.c.code == term_code)
            .order_by(S.c.section_id)
        )
        return [
            ScheduleEntry(
                section=_section_view(r),
                status=HoldingStatus(r.status),
                waitlist_position=(r.position if r.status == HoldingStatus.WAITLISTED else None),
            )
            for r in rows
        ]

    async def roster(self, term_code: str, section_id: str) -> Roster:
        async def work(conn: AsyncConnection) -> list[Any]:
            section_pk = (
                await conn.execute(
                    select(S.c.id)
                    .join(T, T.c.id == S.c.term_id)
                    .where(T.c.code == term_code, S.c.section_id == section_id)
                )
            ).scalar()
            if section_pk is None:
                raise NotFound("no such section in this term", section_id=section_id)
            rows = list(
                await conn.execute(
                    select(
                        ST.c.student_id,
                        ST.c.name,
                        ST.c.email,
                        E.c.status,
                        E.c.created_at,
                        _waitlist_position().label("position"),
                    )
                    .join(ST, ST.c.id == E.c.student_id)
                    .where(E.c.section_id == section_pk)
                    .order_by(E.c.waitlist_seq, E.c.created_at, E.c.id)
                )
            )
            return rows

        rows = await self._run(work)
        entries = {
            status: [
                RosterEntry(
                    student_id=r.student_id,
                    name=r.name,
                    email=r.email,
                    enrolled_at=r.created_at,
                    waitlist_position=r.position if status is HoldingStatus.WAITLISTED else None,
                )
                for r in rows
                if r.status == status.value
            ]
            for status in HoldingStatus
        }
        return Roster(
            enrolled=entries[HoldingStatus.ENROLLED], waitlisted=entries[HoldingStatus.WAITLISTED]
        )

    async def account(self, username: str) -> Account | None:
        rows = await self._all(
            select(U.c.id, U.c.username, U.c.password_hash, U.c.role, ST.c.id.label("student_pk"))
            .select_from(U.outerjoin(ST, and_(ST.c.user_id == U.c.id)))
            .where(U.c.username == username)
        )
        if not rows:
            return None
        r = rows[0]
        return Account(r.id, r.username, r.password_hash, r.role, r.student_pk)


def term_view(row: Any) -> Term:
    return Term(
        code=row.code,
        name=row.name,
        window=window_from_row(row.opens_at, row.closes_at, row.class_year_opens_at),
        waiting_room_enabled=row.waiting_room_enabled,
        admit_per_second=row.admit_per_second,
        max_active=row.max_active,
        admission_ttl_seconds=row.admission_ttl_seconds,
        admission_paused=row.admission_paused,
    )
