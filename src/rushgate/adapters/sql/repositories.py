"""Write-side repositories on SQLAlchemy Core: the administrative registry (both engines)
and the enrollment repository of the embedded SQLite default. The seat-changing statements
are the ones the enrollment service's concurrency routine (see
``rushgate.services.enrollment``) relies on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from rushgate.adapters.sql.codec import (
    meetings_from_json,
    meetings_to_json,
    window_from_row,
    window_to_json,
)
from rushgate.adapters.sql.reads import term_view
from rushgate.adapters.sql.tables import enrollments as E
from rushgate.adapters.sql.tables import idempotency_keys as K
from rushgate.adapters.sql.tables import sections as S
from rushgate.adapters.sql.tables import students as ST
from rushgate.adapters.sql.tables import terms as T
from rushgate.adapters.sql.tables import users as U
from rushgate.domain.clock import Clock
from rushgate.domain.errors import AlreadyEnrolled, Conflict, NotFound
from rushgate.domain.model import Holding, HoldingStatus, SectionRef
from rushgate.services.ports.enrollment import (
    EnrollmentContext,
    LockedStudent,
    Promotion,
    Receipt,
    SectionForEnrollment,
    StoredResult,
)
from rushgate.services.ports.registry import NewSection, NewStudent, Term

_CHUNK = 1000


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@contextmanager
def _raced(detail: str) -> Iterator[None]:
    """The checks before an insert name what exists already; a concurrent request can
    still create the same key between the check and the insert, and then the unique
    index refuses it. That is the same conflict, not a server error."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict(f"{detail} (created by a concurrent request)") from exc


class SqliteEnrollmentRepository:
    """The enrollment repository of the embedded SQLite default, on SQLAlchemy Core.

    Every write transaction on SQLite begins IMMEDIATE, so it holds the database's one
    write lock from its first statement: no row locks are needed here. (PostgreSQL uses
    ``PgEnrollmentRepository``: the same contract in prepared statements and row locks.)
    """

    def __init__(self, conn: AsyncConnection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock

    async def lock_student(self, student_pk: int) -> LockedStudent:
        row = (
            await self._conn.execute(
                select(ST.c.student_id, ST.c.class_year, ST.c.max_credits, ST.c.user_id).where(
                    ST.c.id == student_pk
                )
            )
        ).first()
        if row is None:
            raise NotFound("no such student")
        return LockedStudent(row.student_id, row.class_year, row.max_credits, row.user_id)

    async def find_section(self, term_code: str, section_id: str) -> SectionForEnrollment:
        row = (
            await self._conn.execute(
                select(
                    S.c.id,
                    S.c.term_id,
                    S.c.section_id,
                    S.c.course_code,
                    S.c.title,
                    S.c.credits,
                    S.c.capacity,
                    S.c.waitlist_capacity,
                    S.c.meetings,
                    T.c.opens_at,
                    T.c.closes_at,
                    T.c.class_year_opens_at,
                )
                .join(T, T.c.id == S.c.term_id)
                .where(T.c.code == term_code, S.c.section_id == section_id)
            )
        ).first()
        if row is None:
            raise NotFound("no such section in this term", term=term_code, section_id=section_id)
        return SectionForEnrollment(
            pk=row.id,
            term_pk=row.term_id,
            ref=SectionRef(
                row.section_id, row.course_code, row.credits, meetings_from_json(row.meetings)
            ),
            title=row.title,
            capacity=row.capacity,
            waitlist_capacity=row.waitlist_capacity,
            window=window_from_row(row.opens_at, row.closes_at, row.class_year_opens_at),
        )

    async def enrollment_context(
        self, student_pk: int, term_code: str, section_id: str, idempotency_key: str | None
    ) -> EnrollmentContext:
        stored = (
            None
            if idempotency_key is None
            else await self.recall_result(student_pk, idempotency_key)
        )
        try:
            section = await self.find_section(term_code, section_id)
        except NotFound:
            return EnrollmentContext(None, [], stored)
        return EnrollmentContext(section, await self.holdings(student_pk, section.term_pk), stored)

    async def lock_section(self, section_pk: int) -> None:
        """Held already: the transaction's write lock covers the whole database."""

    async def holdings(self, student_pk: int, term_pk: int) -> list[Holding]:
        rows = await self._conn.execute(
            select(S.c.section_id, S.c.course_code, S.c.credits, S.c.meetings, E.c.status)
            .join(S, S.c.id == E.c.section_id)
            .where(E.c.student_id == student_pk, E.c.term_id == term_pk)
        )
        return [
            Holding(
                SectionRef(r.section_id, r.course_code, r.credits, meetings_from_json(r.meetings)),
                HoldingStatus(r.status),
            )
            for r in rows
        ]

    def _enrollment_values(self, section: SectionForEnrollment, student_pk: int) -> dict[str, Any]:
        return {
            "term_id": section.term_pk,
            "student_id": student_pk,
            "course_code": section.ref.course_code,
            "created_at": self._clock.now(),
        }

    async def _insert_guarded(self, statement: Any) -> Any:
        try:
            return (await self._conn.execute(statement)).first()
        except IntegrityError as exc:
            # The unique constraint caught what the checks should have: report, never count.
            raise AlreadyEnrolled("you already hold a section of this course") from exc

    async def take_seat(
        self, section: SectionForEnrollment, student_pk: int, receipt: Receipt | None = None
    ) -> int | None:
        values = self._enrollment_values(section, student_pk)
        seat = (
            update(S)
            .where(S.c.id == section.pk, S.c.enrolled < S.c.capacity)
            .values(enrolled=S.c.enrolled + 1)
            .returning(S.c.capacity - S.c.enrolled)
        )
        seats_left = (await self._conn.execute(seat)).scalar()
        if seats_left is None:
            return None
        await self._insert_guarded(
            insert(E)
            .values(section_id=section.pk, status=HoldingStatus.ENROLLED.value, **values)
            .returning(E.c.id)
        )
        if receipt is not None:
            await self.remember_result(student_pk, receipt.key, receipt.result)
        return int(seats_left)

    async def join_waitlist(self, section: SectionForEnrollment, student_pk: int) -> int | None:
        # Only a full section takes waitlist entries: if a seat freed up since take_seat,
        # this writes nothing and the caller tries the seat again.
        slot = (
            update(S)
            .where(
                S.c.id == section.pk,
                S.c.enrolled >= S.c.capacity,
                S.c.waitlisted < S.c.waitlist_capacity,
            )
            .values(waitlisted=S.c.waitlisted + 1, waitlist_seq=S.c.waitlist_seq + 1)
            .returning(S.c.waitlisted, S.c.waitlist_seq)
        )
        row = (await self._conn.execute(slot)).first()
        if row is None:
            return None
        await self._insert_guarded(
            insert(E)
            .values(
                section_id=section.pk,
                status=HoldingStatus.WAITLISTED.value,
                waitlist_seq=row.waitlist_seq,
                **self._enrollment_values(section, student_pk),
            )
            .returning(E.c.id)
        )
        return int(row.waitlisted)

    async def seats_free(self, section_pk: int) -> bool:
        row = (
            await self._conn.execute(
                select(S.c.enrolled < S.c.capacity).where(S.c.id == section_pk)
            )
        ).scalar_one()
        return bool(row)

    async def remove_holding(self, student_pk: int, section_pk: int) -> HoldingStatus | None:
        row = (
            await self._conn.execute(
                E.delete()
                .where(E.c.student_id == student_pk, E.c.section_id == section_pk)
                .returning(E.c.status)
            )
        ).first()
        if row is None:
            return None
        status = HoldingStatus(row.status)
        if status is HoldingStatus.WAITLISTED:
            await self._conn.execute(
                update(S).where(S.c.id == section_pk).values(waitlisted=S.c.waitlisted - 1)
            )
        return status

    async def promote_waitlist_head(self, section_pk: int) -> Promotion | None:
        head = (
            select(E.c.id)
            .where(E.c.section_id == section_pk, E.c.status == HoldingStatus.WAITLISTED.value)
            .order_by(E.c.waitlist_seq)
            .limit(1)
        )
        row = (
            await self._conn.execute(
                update(E)
                .where(E.c.id == head.scalar_subquery())
                .values(status=HoldingStatus.ENROLLED.value, waitlist_seq=None)
                .returning(E.c.student_id)
            )
        ).first()
        if row is None:
            return None
        # The freed seat passes straight to the promoted student: `enrolled` is unchanged.
        await self._conn.execute(
            update(S).where(S.c.id == section_pk).values(waitlisted=S.c.waitlisted - 1)
        )
        user_pk = (
            await self._conn.execute(select(ST.c.user_id).where(ST.c.id == row.student_id))
        ).scalar_one()
        return Promotion(int(row.student_id), int(user_pk))

    async def release_seat(self, section_pk: int) -> None:
        await self._conn.execute(
            update(S).where(S.c.id == section_pk).values(enrolled=S.c.enrolled - 1)
        )

    async def recall_result(self, student_pk: int, key: str) -> StoredResult | None:
        row = (
            await self._conn.execute(
                select(K.c.request_hash, K.c.response).where(
                    K.c.student_id == student_pk, K.c.key == key
                )
            )
        ).first()
        return None if row is None else StoredResult(row.request_hash, dict(row.response))

    async def remember_result(self, student_pk: int, key: str, result: StoredResult) -> None:
        await self._conn.execute(
            insert(K).values(
                student_id=student_pk,
                key=key,
                request_hash=result.request_hash,
                response=result.body,
                created_at=self._clock.now(),
            )
        )


class SqlRegistryRepository:
    """Administrative writes on SQLAlchemy Core, for both engines."""

    def __init__(self, conn: AsyncConnection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock

    async def term_pk(self, code: str) -> int:
        pk = (await self._conn.execute(select(T.c.id).where(T.c.code == code))).scalar()
        if pk is None:
            raise NotFound("no such term", term=code)
        return int(pk)

    async def add_term(self, term: Term) -> None:
        exists = (await self._conn.execute(select(T.c.id).where(T.c.code == term.code))).first()
        if exists is not None:
            raise Conflict("a term with this code exists", term=term.code)
        with _raced("a term with this code exists"):
            await self._insert_term(term)

    async def _insert_term(self, term: Term) -> None:
        await self._conn.execute(
            insert(T).values(
                code=term.code,
                name=term.name,
                opens_at=term.window.opens_at,
                closes_at=term.window.closes_at,
                class_year_opens_at=window_to_json(term.window),
                waiting_room_enabled=term.waiting_room_enabled,
                admit_per_second=term.admit_per_second,
                max_active=term.max_active,
                admission_ttl_seconds=term.admission_ttl_seconds,
                admission_paused=term.admission_paused,
            )
        )

    async def term(self, code: str) -> Term:
        row = (
            await self._conn.execute(select(T).where(T.c.code == code).with_for_update())
        ).first()
        if row is None:
            raise NotFound("no such term", term=code)
        return term_view(row)

    async def update_term(self, term: Term) -> None:
        result = await self._conn.execute(
            update(T)
            .where(T.c.code == term.code)
            .values(
                opens_at=term.window.opens_at,
                closes_at=term.window.closes_at,
                class_year_opens_at=window_to_json(term.window),
                admit_per_second=term.admit_per_second,
                max_active=term.max_active,
                admission_ttl_seconds=term.admission_ttl_seconds,
                admission_paused=term.admission_paused,
            )
        )
        if result.rowcount == 0:
            raise NotFound("no such term", term=term.code)

    async def add_sections(self, term_pk: int, sections: Sequence[NewSection]) -> None:
        existing: list[str] = []
        for chunk in _chunks(sections):
            ids = [s.section_id for s in chunk]
            existing += (
                await self._conn.execute(
                    select(S.c.section_id).where(S.c.term_id == term_pk, S.c.section_id.in_(ids))
                )
            ).scalars()
        if existing:
            raise Conflict("some sections exist already", existing=sorted(existing)[:50])
        with _raced("some sections exist already"):
            await self._insert_sections(term_pk, sections)

    async def _insert_sections(self, term_pk: int, sections: Sequence[NewSection]) -> None:
        for chunk in _chunks(sections):
            await self._conn.execute(
                insert(S),
                [
                    {
                        "term_id": term_pk,
                        "section_id": s.section_id,
                        "course_code": s.course_code,
                        "title": s.title,
                        "credits": s.credits,
                        "capacity": s.capacity,
                        "enrolled": 0,
                        "waitlist_capacity": s.waitlist_capacity,
                        "waitlisted": 0,
                        "waitlist_seq": 0,
                        "meetings": meetings_to_json(s.meetings),
                    }
                    for s in chunk
                ],
            )

    async def add_students(self, students: Sequence[NewStudent]) -> None:
        taken: list[str] = []
        for chunk in _chunks(students):
            ids = [s.student_id for s in chunk]
            taken += (
                await self._conn.execute(select(U.c.username).where(U.c.username.in_(ids)))
            ).scalars()
            taken += (
                await self._conn.execute(select(ST.c.student_id).where(ST.c.student_id.in_(ids)))
            ).scalars()
        if taken:
            raise Conflict("some student ids exist already", existing=sorted(set(taken))[:50])
        await self._refuse_taken_emails(students)
        with _raced("some student ids or emails exist already"):
            await self._insert_students(students)

    async def _insert_students(self, students: Sequence[NewStudent]) -> None:
        now = self._clock.now()
        for chunk in _chunks(students):
            user_pks = (
                (
                    await self._conn.execute(
                        insert(U).returning(U.c.id, sort_by_parameter_order=True),
                        [
                            {
                                "username": s.student_id,
                                "password_hash": s.password_hash,
                                "role": "student",
                                "created_at": now,
                            }
                            for s in chunk
                        ],
                    )
                )
                .scalars()
                .all()
            )
            await self._conn.execute(
                insert(ST),
                [
                    {
                        "user_id": pk,
                        "student_id": s.student_id,
                        "name": s.name,
                        "email": s.email,
                        "class_year": s.class_year,
                        "max_credits": s.max_credits,
                    }
                    for s, pk in zip(chunk, user_pks, strict=True)
                ],
            )

    async def _refuse_taken_emails(self, students: Sequence[NewStudent]) -> None:
        """Emails are one student each whatever their case: checked here so that a clash
        is a ``Conflict`` naming the addresses, not the unique index's error (the index
        on ``lower(email)`` stays the guarantee under races)."""
        emails = [s.email.lower() for s in students]
        repeated = sorted(e for e, n in Counter(emails).items() if n > 1)
        if repeated:
            raise Conflict("the batch repeats emails", duplicates=repeated[:50])
        taken: set[str] = set()
        lowered = func.lower(ST.c.email)
        for chunk in _chunks(emails):
            taken.update(
                (await self._conn.execute(select(lowered).where(lowered.in_(chunk)))).scalars()
            )
        if taken:
            raise Conflict("some emails exist already", existing=sorted(taken)[:50])

    async def add_admin(self, username: str, password_hash: str) -> bool:
        exists = (await self._conn.execute(select(U.c.id).where(U.c.username == username))).first()
        if exists is not None:
            return False
        await self._conn.execute(
            insert(U).values(
                username=username,
                password_hash=password_hash,
                role="admin",
                created_at=self._clock.now(),
            )
        )
        return True

    async def set_password(self, username: str, password_hash: str) -> bool:
        result = await self._conn.execute(
            update(U).where(U.c.username == username).values(password_hash=password_hash)
        )
        return bool(result.rowcount)

    async def is_empty(self) -> bool:
        return (await self._conn.execute(select(func.count()).select_from(T))).scalar_one() == 0
