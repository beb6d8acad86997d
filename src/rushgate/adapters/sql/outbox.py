"""The transactional outbox on SQL: rows written inside a unit of work, claimed by relays.

A claim is one statement: it picks the due rows, moves their ``available_at`` to the end
of the lease and counts the attempt. On PostgreSQL the pick is ``FOR UPDATE SKIP LOCKED``,
so relays in any number of processes claim at the same moment without waiting for each
other or taking the same row; once the claim commits, the moved ``available_at`` keeps
the rows away from everyone else until the lease ends. SQLite has one writer at a time
(``BEGIN IMMEDIATE``), which gives the same guarantee without row locks.

Writing a row: ``SqlOutboxWriter`` on SQLite's unit of work; PostgreSQL's unit of work
writes through a prepared statement on its driver connection (``PgOutboxWriter`` in
``adapters/sql/postgres.py``), because an enroll writes one and enroll is the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rushgate.adapters.sql.tables import outbox as O
from rushgate.domain.clock import Clock
from rushgate.services.ports.outbox import (
    ClaimedMessage,
    OutboxMessage,
    OutboxState,
    OutboxStats,
)

# What a stored error may take up: enough to diagnose, not a whole SMTP transcript.
_MAX_ERROR = 2000


class SqlOutboxWriter:
    """``OutboxWriter`` on SQLite's unit of work connection (Core)."""

    def __init__(self, conn: AsyncConnection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock

    async def add(self, message: OutboxMessage) -> None:
        now = self._clock.now()
        await self._conn.execute(
            sqlite_insert(O)
            .values(
                kind=message.kind,
                dedupe_key=message.dedupe_key,
                user_id=message.user_pk,
                payload=message.payload,
                state=OutboxState.PENDING.value,
                attempts=0,
                available_at=now,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=[O.c.dedupe_key])
        )


def _claimed(row: Any) -> ClaimedMessage:
    return ClaimedMessage(
        id=int(row.id),
        message=OutboxMessage(
            kind=row.kind,
            dedupe_key=row.dedupe_key,
            user_pk=int(row.user_id),
            payload=dict(row.payload),
        ),
        attempts=int(row.attempts),
        created_at=row.created_at,
        lease_until=row.available_at,
    )


class SqlOutboxRelayStore:
    """``OutboxRelayStore``: each call one statement, its own transaction, on the primary
    (on PostgreSQL the engine runs in autocommit mode; on SQLite ``begin`` is IMMEDIATE)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def claim(
        self, *, limit: int, lease_seconds: float, now: datetime
    ) -> list[ClaimedMessage]:
        due = (
            select(O.c.id)
            .where(O.c.state == OutboxState.PENDING.value, O.c.available_at <= now)
            .order_by(O.c.available_at, O.c.id)
            .limit(limit)
            # PostgreSQL only (SQLite has no row locks and SQLAlchemy leaves it out there):
            # rows another relay is claiming right now are passed over, not waited for.
            .with_for_update(skip_locked=True)
            .cte("due")
        )
        statement = (
            update(O)
            .where(O.c.id == due.c.id)
            .values(
                available_at=now + timedelta(seconds=lease_seconds),
                attempts=O.c.attempts + 1,
            )
            .returning(
                O.c.id,
                O.c.kind,
                O.c.dedupe_key,
                O.c.user_id,
                O.c.payload,
                O.c.attempts,
                O.c.created_at,
                O.c.available_at,
            )
        )
        async with self._engine.begin() as conn:
            rows = (await conn.execute(statement)).all()
        # RETURNING has no order of its own.
        return sorted((_claimed(r) for r in rows), key=lambda c: (c.created_at, c.id))

    async def delivered(self, message_ids: Sequence[int], *, now: datetime) -> None:
        if not message_ids:
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                update(O)
                .where(O.c.id.in_(message_ids), O.c.state == OutboxState.PENDING.value)
                .values(state=OutboxState.DELIVERED.value, delivered_at=now)
            )

    async def failed(
        self, message_id: int, *, error: str, retry_at: datetime | None, now: datetime
    ) -> None:
        values: dict[str, Any] = {"last_error": error[:_MAX_ERROR]}
        if retry_at is None:
            values["state"] = OutboxState.DEAD.value
        else:
            values["available_at"] = retry_at
        async with self._engine.begin() as conn:
            await conn.execute(
                update(O)
                .where(O.c.id == message_id, O.c.state == OutboxState.PENDING.value)
                .values(**values)
            )

    async def release(self, claimed: Sequence[ClaimedMessage], *, now: datetime) -> None:
        if not claimed:
            return
        # Still carrying the lease this claim set: nobody has claimed it since.
        ours = or_(*(and_(O.c.id == c.id, O.c.available_at == c.lease_until) for c in claimed))
        async with self._engine.begin() as conn:
            await conn.execute(
                update(O)
                .where(ours, O.c.state == OutboxState.PENDING.value, O.c.attempts > 0)
                .values(available_at=now, attempts=O.c.attempts - 1)
            )

    async def purge_delivered(self, *, before: datetime, limit: int) -> int:
        old = (
            select(O.c.id)
            .where(O.c.state == OutboxState.DELIVERED.value, O.c.delivered_at < before)
            .order_by(O.c.delivered_at, O.c.id)
            .limit(limit)
            # PostgreSQL: relays purging at once take different rows instead of waiting.
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(O).where(O.c.id.in_(old)))
        return int(result.rowcount or 0)

    async def stats(self, *, now: datetime) -> OutboxStats:
        pending = O.c.state == OutboxState.PENDING.value
        statement = select(
            func.count().filter(pending),
            func.count().filter(O.c.state == OutboxState.DEAD.value),
            func.min(O.c.created_at).filter(pending),
        ).where(O.c.state.in_([OutboxState.PENDING.value, OutboxState.DEAD.value]))
        async with self._engine.connect() as conn:
            row = (await conn.execute(statement)).one()
        return OutboxStats(pending=int(row[0]), dead=int(row[1]), oldest_pending_at=row[2])
