"""Records of application documents on SQLAlchemy Core (both engines); bytes live in a
``DocumentStore``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from rushgate.adapters.sql.tables import application_documents as D
from rushgate.domain.errors import Conflict, NotFound
from rushgate.services.ports.documents import DocumentRecord, NewDocument


def _record(row: Row[Any]) -> DocumentRecord:
    return DocumentRecord(
        pk=row.id,
        application_pk=row.application_id,
        kind=row.kind,
        filename=row.filename,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        storage_key=row.storage_key,
        uploaded_at=row.uploaded_at,
    )


class SqlDocumentsRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(
        self, application_pk: int, document: NewDocument, *, now: datetime
    ) -> DocumentRecord:
        dialect = postgresql if self._conn.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(D)
            .values(
                application_id=application_pk,
                kind=document.kind,
                filename=document.filename,
                content_type=document.content_type,
                size=document.size,
                sha256=document.sha256,
                storage_key=document.storage_key,
                uploaded_at=now,
            )
            .on_conflict_do_nothing(index_elements=[D.c.storage_key])
            .returning(*D.c)
        )
        row = (await self._conn.execute(statement)).first()
        if row is None:
            raise Conflict("a document with this storage key exists")
        return _record(row)

    async def of_application(self, application_pk: int) -> list[DocumentRecord]:
        rows = await self._conn.execute(
            select(D).where(D.c.application_id == application_pk).order_by(D.c.id)
        )
        return [_record(row) for row in rows]

    async def get(self, application_pk: int, document_pk: int) -> DocumentRecord:
        row = (
            await self._conn.execute(
                select(D).where(D.c.application_id == application_pk, D.c.id == document_pk)
            )
        ).first()
        if row is None:
            raise NotFound("no such document in this application", document=document_pk)
        return _record(row)

    async def remove(self, document_pk: int) -> None:
        await self._conn.execute(delete(D).where(D.c.id == document_pk))

    async def referenced(self, storage_keys: Sequence[str]) -> set[str]:
        if not storage_keys:
            return set()
        rows = await self._conn.execute(
            select(D.c.storage_key).where(D.c.storage_key.in_(list(storage_keys)))
        )
        return set(rows.scalars())

    async def count(self, application_pk: int) -> int:
        total = await self._conn.execute(
            select(func.count()).select_from(D).where(D.c.application_id == application_pk)
        )
        return int(total.scalar_one())
