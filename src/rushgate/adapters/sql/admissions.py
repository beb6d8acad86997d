"""Admission rounds, applicants and applications on SQLAlchemy Core (both engines).

Uniqueness that users race for (one account per email, one application per person and
round, one receipt number per application) is enforced by constraints and written with
``ON CONFLICT DO NOTHING``, so a lost race is a ``Conflict`` rather than a driver error.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from rushgate.adapters.sql.tables import admission_rounds as R
from rushgate.adapters.sql.tables import applicants as AP
from rushgate.adapters.sql.tables import application_history as H
from rushgate.adapters.sql.tables import applications as A
from rushgate.adapters.sql.tables import users as U
from rushgate.domain.admissions import AdmissionRound, ApplicationStatus, FilingWindow, Track
from rushgate.domain.clock import Clock
from rushgate.domain.errors import Conflict, NotFound
from rushgate.services.ports.admissions import (
    Applicant,
    ApplicationDraft,
    ApplicationFilter,
    ApplicationRecord,
    ApplicationRow,
    HistoryEntry,
    StoredRound,
)


def _round(row: Row[Any]) -> StoredRound:
    tracks = tuple(Track(t["code"], t["name"], t.get("capacity")) for t in row.tracks)
    return StoredRound(
        pk=row.id,
        round=AdmissionRound(
            code=row.code,
            name=row.name,
            window=FilingWindow(row.opens_at, row.closes_at),
            tracks=tracks,
            required_documents=tuple(row.required_documents),
            receipt_prefix=row.receipt_prefix,
        ),
    )


def _applicant(row: Row[Any]) -> Applicant:
    return Applicant(
        pk=row.id,
        user_pk=row.user_id,
        email=row.email,
        name=row.name,
        locale=row.locale,
        verified_at=row.verified_at,
    )


def _record(row: Row[Any]) -> ApplicationRecord:
    return ApplicationRecord(
        pk=row.id,
        round_pk=row.round_id,
        applicant_pk=row.applicant_id,
        status=ApplicationStatus(row.status),
        track=row.track,
        personal=row.personal,
        statement=row.statement,
        consent_at=row.consent_at,
        receipt_number=row.receipt_number,
        submitted_at=row.submitted_at,
        updated_at=row.updated_at,
        version=row.version,
    )


def _values(draft: ApplicationDraft) -> dict[str, Any]:
    return {
        "status": draft.status.value,
        "track": draft.track,
        "personal": draft.personal,
        "statement": draft.statement,
        "consent_at": draft.consent_at,
        "receipt_number": draft.receipt_number,
        "submitted_at": draft.submitted_at,
    }


class SqlAdmissionsRepository:
    def __init__(self, conn: AsyncConnection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock

    def _insert_ignoring_conflicts(self, table: Any) -> Any:
        """``INSERT … ON CONFLICT DO NOTHING`` in this connection's dialect."""
        if self._conn.dialect.name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

    async def add_round(self, round_: AdmissionRound, *, now: datetime) -> None:
        statement = (
            self._insert_ignoring_conflicts(R)
            .values(
                code=round_.code,
                name=round_.name,
                opens_at=round_.window.opens_at,
                closes_at=round_.window.closes_at,
                tracks=[
                    {"code": t.code, "name": t.name, "capacity": t.capacity} for t in round_.tracks
                ],
                required_documents=list(round_.required_documents),
                receipt_prefix=round_.receipt_prefix,
                receipt_seq=0,
                created_at=now,
            )
            .returning(R.c.id)
        )
        if (await self._conn.execute(statement)).first() is None:
            raise Conflict("an admission round with this code exists", round=round_.code)

    async def round(self, code: str) -> StoredRound:
        row = (await self._conn.execute(select(R).where(R.c.code == code))).first()
        if row is None:
            raise NotFound("no such admission round", round=code)
        return _round(row)

    async def rounds_open_after(self, at: datetime, *, limit: int) -> list[StoredRound]:
        rows = await self._conn.execute(
            select(R).where(R.c.closes_at > at).order_by(R.c.closes_at, R.c.id).limit(limit)
        )
        return [_round(row) for row in rows]

    async def add_applicant(
        self, *, email: str, name: str, password_hash: str, locale: str | None, now: datetime
    ) -> Applicant:
        user = (
            await self._conn.execute(
                self._insert_ignoring_conflicts(U)
                .values(
                    username=email, password_hash=password_hash, role="applicant", created_at=now
                )
                .returning(U.c.id)
            )
        ).first()
        if user is None:
            raise Conflict("an account with this email exists", field="email")
        row = (
            await self._conn.execute(
                insert(AP)
                .values(user_id=user.id, email=email, name=name, locale=locale, created_at=now)
                .returning(*AP.c)
            )
        ).one()
        return _applicant(row)

    async def applicant(self, applicant_pk: int) -> Applicant:
        row = (await self._conn.execute(select(AP).where(AP.c.id == applicant_pk))).first()
        if row is None:
            raise NotFound("no such applicant")
        return _applicant(row)

    async def applicant_of(self, user_pk: int, *, lock: bool = False) -> Applicant:
        query = select(AP).where(AP.c.user_id == user_pk)
        row = (await self._conn.execute(query.with_for_update() if lock else query)).first()
        if row is None:
            raise NotFound("no applicant account for this login")
        return _applicant(row)

    async def mark_verified(self, applicant_pk: int, *, now: datetime) -> bool:
        result = await self._conn.execute(
            update(AP)
            .where(AP.c.id == applicant_pk, AP.c.verified_at.is_(None))
            .values(verified_at=now)
        )
        return bool(result.rowcount)

    async def application(
        self, round_pk: int, applicant_pk: int, *, lock: bool = False
    ) -> ApplicationRecord | None:
        query = select(A).where(A.c.round_id == round_pk, A.c.applicant_id == applicant_pk)
        row = (await self._conn.execute(query.with_for_update() if lock else query)).first()
        return None if row is None else _record(row)

    async def application_by_receipt(
        self, round_pk: int, receipt_number: str, *, lock: bool = False
    ) -> ApplicationRecord:
        query = select(A).where(A.c.round_id == round_pk, A.c.receipt_number == receipt_number)
        row = (await self._conn.execute(query.with_for_update() if lock else query)).first()
        if row is None:
            raise NotFound("no application with this receipt number", receipt=receipt_number)
        return _record(row)

    async def insert_application(
        self, round_pk: int, applicant_pk: int, draft: ApplicationDraft, *, now: datetime
    ) -> ApplicationRecord:
        row = (
            await self._conn.execute(
                self._insert_ignoring_conflicts(A)
                .values(
                    round_id=round_pk,
                    applicant_id=applicant_pk,
                    created_at=now,
                    updated_at=now,
                    version=1,
                    **_values(draft),
                )
                .returning(*A.c)
            )
        ).first()
        if row is None:
            raise Conflict("you have an application in this round already")
        return _record(row)

    async def update_application(
        self, record: ApplicationRecord, draft: ApplicationDraft, *, now: datetime
    ) -> ApplicationRecord:
        row = (
            await self._conn.execute(
                update(A)
                .where(A.c.id == record.pk)
                .values(updated_at=now, version=A.c.version + 1, **_values(draft))
                .returning(*A.c)
            )
        ).one()
        return _record(row)

    async def next_receipt_sequence(self, round_pk: int) -> int:
        sequence = (
            await self._conn.execute(
                update(R)
                .where(R.c.id == round_pk)
                .values(receipt_seq=R.c.receipt_seq + 1)
                .returning(R.c.receipt_seq)
            )
        ).scalar_one()
        return int(sequence)

    async def append_history(self, application_pk: int, entry: HistoryEntry) -> None:
        await self._conn.execute(
            insert(H).values(
                application_id=application_pk,
                at=entry.at,
                actor_user_id=entry.actor_user_pk,
                action=entry.action,
                status=entry.status.value,
                snapshot=entry.snapshot,
            )
        )

    async def history(self, application_pk: int) -> list[HistoryEntry]:
        rows = await self._conn.execute(
            select(H).where(H.c.application_id == application_pk).order_by(H.c.id)
        )
        return [
            HistoryEntry(
                at=row.at,
                actor_user_pk=row.actor_user_id,
                action=row.action,
                status=ApplicationStatus(row.status),
                snapshot=row.snapshot,
            )
            for row in rows
        ]

    async def list_applications(
        self, round_pk: int, where: ApplicationFilter
    ) -> Sequence[ApplicationRow]:
        query = (
            select(A, *[c.label(f"ap_{c.name}") for c in AP.c])
            .join(AP, AP.c.id == A.c.applicant_id)
            .where(A.c.round_id == round_pk)
            .order_by(A.c.id)
            .limit(where.limit)
        )
        if where.status is not None:
            query = query.where(A.c.status == where.status.value)
        if where.track is not None:
            query = query.where(A.c.track == where.track)
        if where.after_pk is not None:
            query = query.where(A.c.id > where.after_pk)
        rows = await self._conn.execute(query)
        return [
            ApplicationRow(
                record=_record(row),
                applicant=Applicant(
                    pk=row.ap_id,
                    user_pk=row.ap_user_id,
                    email=row.ap_email,
                    name=row.ap_name,
                    locale=row.ap_locale,
                    verified_at=row.ap_verified_at,
                ),
            )
            for row in rows
        ]
