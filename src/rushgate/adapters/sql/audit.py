"""The audit log on SQLAlchemy Core (both engines), inside a unit of work's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from rushgate.adapters.sql.tables import audit_log as A
from rushgate.services.ports.audit import Actor, AuditEntry, AuditRecord


def _record(row: Row[Any]) -> AuditRecord:
    return AuditRecord(
        pk=row.id,
        entry=AuditEntry(
            at=row.at,
            actor=Actor(
                user_pk=row.actor_user_id,
                username=row.actor_username,
                request_id=row.request_id,
                client_ip=row.client_ip,
            ),
            action=row.action,
            target=row.target,
            details=dict(row.details),
        ),
    )


class SqlAuditLog:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def append(self, entry: AuditEntry) -> int:
        result = await self._conn.execute(
            insert(A)
            .values(
                at=entry.at,
                actor_user_id=entry.actor.user_pk,
                actor_username=entry.actor.username,
                action=entry.action,
                target=entry.target,
                details=entry.details,
                request_id=entry.actor.request_id,
                client_ip=entry.actor.client_ip,
            )
            .returning(A.c.id)
        )
        return int(result.scalar_one())

    async def entries(self, *, limit: int, before: int | None = None) -> list[AuditRecord]:
        query = select(A).order_by(A.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(A.c.id < before)
        return [_record(row) for row in await self._conn.execute(query)]
